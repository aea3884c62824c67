"""Erasure on request: scrub a Cliniko contact's personal fields, archive it, verify, record.

Cliniko's API cannot delete a contact (DELETE only archives, and the archived record keeps its
name, email and phones), so an honest erasure blanks every personal field first, then
archives, then reads the contact back to prove both happened. The audit trail written here
holds ids, field names, actions and a keyed hash of the email: never a personal value.

Erasure also reaches what this system keeps of the person: every submission body stored for
their email (by keyed hash; the queues carry only ids) is deleted, and a tombstone keeps
older submissions of theirs from bringing them back (see common/submission_store.py).

The trail is tamper-evident: each record carries `seq`, `prev_hash` and `hash` (SHA-256 over
its content and the previous record's hash, per request), and `verify_chain` recomputes it.

This module knows nothing of API Gateway or DynamoDB: it takes a Cliniko client, an
`AuditLog` and a `SubmissionStore` (see audit.py and common/submission_store.py for the
DynamoDB ones) so the API handler and the CLI share it.
"""

from __future__ import annotations

import calendar
import hashlib
import hmac
import json
import re
from collections.abc import Callable, Iterable, Mapping, Sequence
from datetime import UTC, date, datetime, time, timedelta
from decimal import Decimal
from typing import Any, Literal, Protocol

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from cliniko_automations.cliniko import errors as cliniko_errors
from cliniko_automations.cliniko.filters import DateTimeFilter, NumericFilter, StringFilter
from cliniko_automations.cliniko.rules import EMAIL_PATTERN, MAX_LENGTH

# A request is due one calendar month after receipt (GDPR art. 12(3), counted as the UK
# regulator does: the same date next month, or that month's last day), extendable once, within
# the first month, by two further months.
DUE_MONTHS = 1
EXTENSION_MONTHS = 2
# Longer than the API function's timeout (29 s) and than a CLI run is expected to take: an
# unfinished attempt younger than this may still be running.
ATTEMPT_LEASE = timedelta(minutes=2)

# Cliniko insists on a first name (a contact without one fails validation), so the scrubbed
# contact keeps this neutral placeholder: it says what happened and identifies nobody.
PLACEHOLDER_FIRST_NAME = "Erased"

# Every writable personal field of a contact and the value that erases it. Strings become ""
# (Cliniko returns blanks as ""), the enum and the country code become null (null is how
# Cliniko clears them), phone numbers become an empty list. type_code (Standard / Doctor /
# 3rd Party Payer) is a category, not personal data, so it stays.
SCRUBBED_VALUES: dict[str, Any] = {
    "title": "",
    "first_name": PLACEHOLDER_FIRST_NAME,
    "last_name": "",
    "preferred_name": "",
    "company_name": "",
    "occupation": "",
    "provider_number": "",
    "email": "",
    "address_1": "",
    "address_2": "",
    "address_3": "",
    "city": "",
    "state": "",
    "post_code": "",
    "country_code": None,
    "notes": "",
    "doctor_type": None,
    "phone_numbers": [],
}
# Read-only fields that still carry personal data: `country` follows country_code.
DERIVED_PERSONAL_FIELDS = ("country",)
PERSONAL_FIELDS = (*SCRUBBED_VALUES, *DERIVED_PERSONAL_FIELDS)

HONEST_NOTE = (
    "Cliniko keeps an archived record of each contact (its API has no way to remove one); "
    "that record now holds no personal data: every personal field is blank and the first name "
    f"is the placeholder '{PLACEHOLDER_FIRST_NAME}'."
)

GENESIS_HASH = "0" * 64
SUBMISSION_STORE = "submission_store"

Status = Literal["open", "completed", "failed"]
Result = Literal[
    "erased", "no_record_found", "dry_run", "awaiting_confirmation", "in_progress", "failed"
]
ContactAction = Literal[
    "scrubbed_and_archived",
    "already_scrubbed_and_archived",
    "would_scrub_and_archive",
    "nothing_to_do",
    "failed",
]

REQUEST_ID_PATTERN = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._:-]{0,127}$")
CONTACT_ID_PATTERN = re.compile(r"^[1-9][0-9]{0,19}$")
# A reason is a legal basis or a ticket reference. It is kept in the audit trail, so it must
# not carry personal data: refuse the two shapes that are surely personal (emails, phones).
# A phone number is a run of 8 or more digits, maybe spaced or punctuated; ISO dates (which
# a reason may well quote) are taken out first.
DIGIT_RUN = re.compile(r"\+?\d[\d\s().-]*\d")
ISO_DATE = re.compile(r"\b\d{4}-\d{2}-\d{2}\b")


def _looks_like_a_phone_number(text: str) -> bool:
    text = ISO_DATE.sub(" ", text)
    return any(sum(c.isdigit() for c in run) >= 8 for run in DIGIT_RUN.findall(text))


def check_reason(value: str) -> str:
    """A reason kept in the audit trail: short, and surely not personal data."""
    value = value.strip()
    if not 1 <= len(value) <= 200:
        raise ValueError("must be 1-200 characters")
    if "@" in value or _looks_like_a_phone_number(value):
        raise ValueError(
            "must not contain personal data such as an email or a phone number; "
            "give the legal basis or a ticket reference"
        )
    return value


# ---------------------------------------------------------------------------------------------
# Errors the API maps to HTTP once (see api_handler.py). Messages carry ids, never values.


class ErasureError(Exception):
    """Base of the domain errors."""


class InvalidRequest(ErasureError):
    def __init__(self, problems: Mapping[str, str]):
        self.problems = dict(problems)
        super().__init__("; ".join(f"{field}: {message}" for field, message in problems.items()))


class SeveralMatches(ErasureError):
    """One email identifies several contacts and the request did not say to erase them all."""

    def __init__(self, request_id: str, contact_ids: Sequence[str]):
        self.request_id = request_id
        self.contact_ids = list(contact_ids)
        super().__init__(
            f"{len(self.contact_ids)} contacts match; nothing was changed. Send the same request "
            "again with erase_all_matches set to erase all of them, or identify one by contact id."
        )


class RequestIdConflict(ErasureError):
    def __init__(self, request_id: str):
        self.request_id = request_id
        super().__init__(
            f"request id {request_id} was already used for a different request; use a new id"
        )


class RequestInProgress(ErasureError):
    def __init__(self, request_id: str):
        self.request_id = request_id
        super().__init__(f"request {request_id} is being processed by another call; try again")


class RequestNotFound(ErasureError):
    def __init__(self, request_id: str):
        self.request_id = request_id
        super().__init__(f"no erasure request with id {request_id}")


class ExtensionRefused(ErasureError):
    def __init__(self, request_id: str, why: str):
        self.request_id = request_id
        super().__init__(f"request {request_id} cannot be extended: {why}")


class AlreadyRecorded(Exception):
    """An audit record with this key exists (the log is append-only)."""


# ---------------------------------------------------------------------------------------------
# The request and its outcome.


class ErasureRequest(BaseModel):
    """What a caller asks for. The email never leaves this object except as a keyed hash."""

    model_config = ConfigDict(extra="forbid", frozen=True, str_strip_whitespace=True)

    request_id: str = Field(description="Caller-chosen id; the same id returns the same outcome.")
    contact_id: str | None = None
    email: str | None = Field(default=None, repr=False)
    reason: str = Field(description="Legal basis or ticket reference; no personal data.")
    dry_run: bool = False
    erase_all_matches: bool = False

    @field_validator("request_id")
    @classmethod
    def _request_id(cls, value: str) -> str:
        if not REQUEST_ID_PATTERN.match(value):
            raise ValueError(
                "must be 1-128 characters: letters, digits, '.', '_', ':' or '-', "
                "starting with a letter or digit"
            )
        return value

    @field_validator("contact_id", mode="before")
    @classmethod
    def _contact_id(cls, value: Any) -> Any:
        # Ids are 64-bit integers that Cliniko serialises as strings; accept an int, keep a str.
        if isinstance(value, bool):
            raise ValueError("must be a Cliniko contact id (digits)")
        if isinstance(value, int):
            value = str(value)
        if isinstance(value, str) and not CONTACT_ID_PATTERN.match(value.strip()):
            raise ValueError("must be a Cliniko contact id (digits)")
        return value

    @field_validator("email")
    @classmethod
    def _email(cls, value: str | None) -> str | None:
        if value is None:
            return None
        # Cliniko's email filter compares against the lower-cased stored email.
        value = value.lower()
        if len(value) > MAX_LENGTH or not EMAIL_PATTERN.match(value):
            raise ValueError("must be an email address")
        return value

    @field_validator("reason")
    @classmethod
    def _reason(cls, value: str) -> str:
        return check_reason(value)

    @model_validator(mode="after")
    def _identified(self) -> ErasureRequest:
        if not self.contact_id and not self.email:
            raise ValueError("give contact_id, email or both")
        return self

    @classmethod
    def parse(cls, data: Any) -> ErasureRequest:
        """Validate, raising InvalidRequest with messages that never echo the input values."""
        if not isinstance(data, Mapping):
            raise InvalidRequest({"body": "must be a JSON object"})
        try:
            return cls.model_validate(dict(data))
        except ValidationError as error:
            raise InvalidRequest(_problems(error)) from None


def _problems(error: ValidationError) -> dict[str, str]:
    problems: dict[str, str] = {}
    unknown = 0
    for item in error.errors(include_input=False, include_url=False):
        field = str(item["loc"][0]) if item["loc"] else "body"
        if field not in ErasureRequest.model_fields and field != "body":
            # An unknown key is the caller's text (it could be an email): count it, never
            # echo or log it.
            unknown += 1
            continue
        message = item["msg"].removeprefix("Value error, ")
        problems.setdefault(field, message)
    if unknown:
        problems.setdefault(
            "body",
            f"{unknown} unknown field(s); the fields are " + ", ".join(ErasureRequest.model_fields),
        )
    return problems


class ContactResult(BaseModel):
    contact_id: str
    action: ContactAction
    fields: list[str] = Field(
        default_factory=list, description="Names of the personal fields changed (or to change)."
    )
    archive: bool = Field(
        default=False, description="Archived by this request (or would be, in a dry run)."
    )
    verified: bool | None = None
    error: str | None = None


class Purged(BaseModel):
    """What an erasure removed from one of this system's own stores: ids, never values."""

    store: str
    count: int
    submission_ids: list[str] = Field(default_factory=list)


class Receipt(BaseModel):
    """What an operator can hand to the person: checkable against the audit trail's chain."""

    request_id: str
    status: Status
    outcome: Result
    completed_at: str | None = None
    chain_head: str = Field(description="Hash of the request's latest audit record.")
    records: int


class Outcome(BaseModel):
    """The answer to a request, stored in the audit trail and returned again on repeats."""

    request_id: str
    status: Status
    result: Result
    dry_run: bool
    received_at: str
    due_at: str
    due_extended: bool = False
    finished_at: str | None = None
    contact_ids: list[str] = Field(default_factory=list)
    contacts: list[ContactResult] = Field(default_factory=list)
    purged: list[Purged] = Field(default_factory=list)
    message: str
    cliniko_requests: int | None = Field(
        default=None, description="Requests sent to Cliniko by the call that produced this."
    )
    receipt: Receipt | None = None


# Not part of the stored outcome: per call (cliniko_requests) or read from the trail (receipt).
PER_CALL = {"cliniko_requests", "receipt"}


# ---------------------------------------------------------------------------------------------
# Ports.


class AuditLog(Protocol):
    def records(self, request_id: str) -> list[dict[str, Any]]:
        """Every record of a request, ordered by sort key."""

    def append(self, request_id: str, sk: str, record: Mapping[str, Any]) -> None:
        """Add one record; AlreadyRecorded when the key exists (the log is append-only)."""


class SubmissionStore(Protocol):  # see common/submission_store.py
    def tombstone(self, email_hmac: str, erased_at: datetime) -> None:
        """Keep submissions for this email made before `erased_at` from being processed."""

    def purge(self, email_hmac: str) -> list[str]:
        """Delete every stored submission body for this email; their submission ids."""


class ContactsClient(Protocol):  # the part of ClinikoClient the core uses
    def list_contacts(self, filters: Sequence[Any] = (), sort: str | None = None) -> list[Any]: ...
    def update_contact(self, contact_id: str, body: Mapping[str, Any]) -> Any: ...
    def archive_contact(self, contact_id: str) -> None: ...


# ---------------------------------------------------------------------------------------------
# Pure helpers.


def email_hash(pepper: str, email: str) -> str:
    """HMAC-SHA256 of the lower-cased email: lets the trail match repeats without the email."""
    return hmac.new(pepper.encode(), email.strip().lower().encode(), hashlib.sha256).hexdigest()


def contact_fields(contact: Any) -> dict[str, Any]:
    """A contact as a JSON-shaped dict (the generated model's to_dict, or a plain mapping)."""
    if isinstance(contact, Mapping):
        return dict(contact)
    return contact.to_dict()


def _is_blank(value: Any) -> bool:
    return value is None or value == "" or value == [] or value == ()


def fields_to_scrub(fields: Mapping[str, Any]) -> list[str]:
    """Names of the personal fields that still hold something other than the erased value."""
    names = []
    for name, target in SCRUBBED_VALUES.items():
        value = fields.get(name)
        if name == "first_name":
            if value not in (PLACEHOLDER_FIRST_NAME, "", None):
                names.append(name)
        elif not _is_blank(value) and value != target:
            names.append(name)
    # `country` is read-only and follows country_code; report it with its source field.
    if not _is_blank(fields.get("country")) and "country_code" not in names:
        names.append("country_code")
    return names


def is_archived(fields: Mapping[str, Any]) -> bool:
    return not _is_blank(fields.get("archived_at"))


def is_erased(fields: Mapping[str, Any]) -> bool:
    return not fields_to_scrub(fields) and is_archived(fields)


def add_months(day: date, months: int) -> date:
    """The same date `months` later, or that month's last day when it has no such date."""
    index = day.month - 1 + months
    year, month = day.year + index // 12, index % 12 + 1
    return date(year, month, min(day.day, calendar.monthrange(year, month)[1]))


def due_date(received: date) -> date:
    """One calendar month after receipt: 31 Jan -> 28/29 Feb, 31 Mar -> 30 Apr, 10 Feb -> 10 Mar."""
    return add_months(received, DUE_MONTHS)


def end_of_day(day: date) -> str:
    """A due date as a time: the request may be answered until that day ends (UTC)."""
    return iso(datetime.combine(day, time(23, 59, 59), tzinfo=UTC))


def overdue_request_ids(records: Iterable[Mapping[str, Any]], now: datetime) -> list[str]:
    """Requests past their (possibly extended) due date that are neither completed nor dry
    runs: a dry run erases nobody, so it can never be owed."""
    due: dict[str, str] = {}
    extended: dict[str, str] = {}
    settled: set[str] = set()
    for record in records:
        request_id = record["request_id"]
        if record["sk"] == RECEIVED_SK:
            due[request_id] = record["due_at"]
            if record.get("dry_run"):
                settled.add(request_id)
        elif record["sk"] == EXTENSION_SK:
            extended[request_id] = record["due_at"]
        elif record["sk"] == OUTCOME_SK and record.get("status") == "completed":
            settled.add(request_id)
    cutoff = iso(now)
    return sorted(
        rid
        for rid, due_at in due.items()
        if rid not in settled and extended.get(rid, due_at) < cutoff
    )


# ---------------------------------------------------------------------------------------------
# The tamper-evident chain.


def _plain(value: Any) -> Any:
    """A stored value as JSON: DynamoDB hands numbers back as Decimal."""
    if isinstance(value, Decimal):
        return int(value) if value == value.to_integral_value() else str(value)
    if isinstance(value, list | tuple):
        return [_plain(item) for item in value]
    if isinstance(value, Mapping):
        return {str(key): _plain(item) for key, item in value.items()}
    return value


def record_hash(request_id: str, sk: str, record: Mapping[str, Any]) -> str:
    """SHA-256 over a record's content (its `prev_hash` included, its own `hash` not)."""
    content = {k: _plain(v) for k, v in record.items() if k != "hash" and v is not None}
    content.update(request_id=request_id, sk=sk)
    canonical = json.dumps(content, sort_keys=True, separators=(",", ":"), ensure_ascii=False)
    return hashlib.sha256(canonical.encode("utf-8")).hexdigest()


def chain_head(records: Iterable[Mapping[str, Any]]) -> tuple[int, str]:
    """The latest (seq, hash) of a request's records, (0, GENESIS_HASH) when none is chained."""
    chained = [r for r in records if "seq" in r and "hash" in r]
    if not chained:
        return 0, GENESIS_HASH
    latest = max(chained, key=lambda r: int(r["seq"]))
    return int(latest["seq"]), str(latest["hash"])


class Verification(BaseModel):
    request_id: str
    records: int
    chain_head: str
    problems: list[str] = Field(default_factory=list)

    @property
    def intact(self) -> bool:
        return not self.problems


def verify_chain(request_id: str, records: Sequence[Mapping[str, Any]]) -> Verification:
    """Recompute a request's chain: a changed record no longer matches its hash, a missing one
    leaves a gap in `seq` (or a `prev_hash` that names nothing), an added one breaks both."""
    problems: list[str] = []
    by_seq: dict[int, Mapping[str, Any]] = {}
    for record in records:
        if "seq" not in record or "hash" not in record:
            problems.append(f"record {record.get('sk')} carries no chain hash")
            continue
        seq = int(record["seq"])
        if seq in by_seq:
            problems.append(f"records {by_seq[seq].get('sk')} and {record.get('sk')} share #{seq}")
        by_seq[seq] = record
    previous = GENESIS_HASH
    for seq in range(1, max(by_seq, default=0) + 1):
        record = by_seq.get(seq)
        if record is None:
            problems.append(f"record #{seq} is missing")
            previous = None
            continue
        sk = str(record.get("sk"))
        if record_hash(request_id, sk, record) != record["hash"]:
            problems.append(f"record #{seq} ({sk}) was changed: its hash does not match")
        if previous is not None and record.get("prev_hash") != previous:
            problems.append(f"record #{seq} ({sk}) does not follow record #{seq - 1}")
        previous = str(record["hash"])
    outcome = _find(records, OUTCOME_SK)
    if outcome is not None and by_seq and int(outcome.get("seq", 0)) != max(by_seq):
        problems.append("records were added after the outcome")
    _, head = chain_head(records)
    return Verification(
        request_id=request_id, records=len(records), chain_head=head, problems=problems
    )


def iso(moment: datetime) -> str:
    return moment.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def utcnow() -> datetime:
    return datetime.now(UTC)


# Sort keys: `000#received`, then per attempt NNN `NNN#lookup`, `NNN#contact#<id>`,
# `NNN#failed`, and `999#outcome` once the request is done. An attempt that failed (Cliniko
# unreachable, verification failed) or that stopped for confirmation leaves the request open,
# and the same request id may be sent again: the next attempt gets the next number.
RECEIVED_SK = "000#received"
EXTENSION_SK = "000#extension"
OUTCOME_SK = "999#outcome"
MAX_ATTEMPT = 998


def _attempt_of(sk: str) -> int | None:
    head = sk.split("#", 1)[0]
    if sk in (RECEIVED_SK, EXTENSION_SK, OUTCOME_SK) or not head.isdigit():
        return None
    return int(head)


# ---------------------------------------------------------------------------------------------
# The erasure itself.


class Eraser:
    def __init__(
        self,
        client: ContactsClient,
        audit: AuditLog,
        pepper: str,
        *,
        submissions: SubmissionStore | None = None,
        clock: Callable[[], datetime] = utcnow,
    ):
        if len(pepper) < 16:
            # A short pepper makes the email hash guessable by brute force.
            raise ValueError("the pepper must be at least 16 characters")
        self._client = client
        self._audit = audit
        self._pepper = pepper
        self._submissions = submissions
        self._clock = clock
        # The latest (seq, hash) of each request's chain, as read or written by this call.
        self._heads: dict[str, tuple[int, str]] = {}

    # -- public ---------------------------------------------------------------------------

    def status(self, request_id: str) -> Outcome:
        if not REQUEST_ID_PATTERN.match(request_id):
            raise RequestNotFound(request_id)
        records = self._audit.records(request_id)
        if not records:
            raise RequestNotFound(request_id)
        outcome = self._stored_state(request_id, records)
        outcome.receipt = _receipt(outcome, *chain_head(records))
        return outcome

    def extend(self, request_id: str, reason: str, caller: str) -> Outcome:
        """Extend a request's due date by two months: once, and only within its first month."""
        try:
            reason = check_reason(reason)
        except ValueError as error:
            raise InvalidRequest({"reason": str(error)}) from None
        records = self._audit.records(request_id) if REQUEST_ID_PATTERN.match(request_id) else []
        received = _find(records, RECEIVED_SK)
        if received is None:
            raise RequestNotFound(request_id)
        if received.get("dry_run"):
            raise ExtensionRefused(request_id, "a dry run erases nobody and is owed nothing")
        finished = _find(records, OUTCOME_SK)
        if finished is not None:
            raise ExtensionRefused(request_id, f"it is already {finished.get('status')}")
        if _find(records, EXTENSION_SK) is not None:
            raise ExtensionRefused(request_id, "it was already extended (the law allows once)")
        now = self._clock()
        if iso(now) > received["due_at"]:
            raise ExtensionRefused(
                request_id,
                f"an extension is only allowed within the first month (until {received['due_at']})",
            )
        due = date.fromisoformat(received["due_at"][:10])
        self._heads[request_id] = chain_head(records)
        try:
            self._append(
                request_id,
                EXTENSION_SK,
                {
                    "record": "extension",
                    "at": iso(now),
                    "caller": caller,
                    "reason": reason,
                    "previous_due_at": received["due_at"],
                    "due_at": end_of_day(add_months(due, EXTENSION_MONTHS)),
                },
            )
        except AlreadyRecorded:
            raise ExtensionRefused(request_id, "it was already extended") from None
        return self.status(request_id)

    def _append(self, request_id: str, sk: str, record: Mapping[str, Any]) -> dict[str, Any]:
        """Append one record, chained to the request's previous one."""
        seq, previous = self._heads.get(request_id, (0, GENESIS_HASH))
        chained = {key: value for key, value in record.items() if value is not None}
        chained.update(seq=seq + 1, prev_hash=previous)
        chained["hash"] = record_hash(request_id, sk, chained)
        self._audit.append(request_id, sk, chained)
        self._heads[request_id] = (seq + 1, chained["hash"])
        return chained

    def submit(self, request: ErasureRequest, caller: str) -> Outcome:
        before = self._request_count()
        outcome = self._submit(request, caller)
        after = self._request_count()
        if after is not None and before is not None:
            outcome.cliniko_requests = after - before
        return outcome

    def _submit(self, request: ErasureRequest, caller: str) -> Outcome:
        records = self._audit.records(request.request_id)
        fingerprint = self._fingerprint(request)
        self._heads[request.request_id] = chain_head(records)
        if records:
            received = _find(records, RECEIVED_SK)
            if received is None or received.get("fingerprint") != fingerprint:
                raise RequestIdConflict(request.request_id)
            outcome = _find(records, OUTCOME_SK)
            if outcome is not None:
                stored = Outcome.model_validate_json(outcome["outcome"])
                stored.receipt = _receipt(stored, *chain_head(records))
                return stored
            received = {**received, **_due(records)}
            if self._attempt_may_be_running(records):
                raise RequestInProgress(request.request_id)
            attempt = max((_attempt_of(r["sk"]) or 0) for r in records) + 1
            if attempt > MAX_ATTEMPT:
                raise RequestInProgress(request.request_id)
        else:
            received = self._receive(request, caller, fingerprint)
            attempt = 1
        outcome = _Attempt(self, request, caller, received, attempt).execute()
        outcome.receipt = _receipt(outcome, *self._heads[request.request_id])
        return outcome

    # -- internals ------------------------------------------------------------------------

    def _attempt_may_be_running(self, records: list[dict[str, Any]]) -> bool:
        """True when the latest attempt has not ended and wrote something within the lease.

        An attempt ends with a `failed` record, a lookup awaiting confirmation, or the outcome.
        One that did not end either crashed (timeout) or is still running in another call;
        only its age tells them apart, and a second attempt over a live one would repeat its
        writes, so a young unfinished attempt answers "in progress".
        """
        numbers = [n for r in records if (n := _attempt_of(r["sk"])) is not None]
        if numbers:
            latest = [r for r in records if _attempt_of(r["sk"]) == max(numbers)]
            if any(
                r.get("record") == "failed" or r.get("result") == "awaiting_confirmation"
                for r in latest
            ):
                return False
            stamps = [r.get("at", "") for r in latest]
        else:
            stamps = [r.get("received_at", "") for r in records if r["sk"] == RECEIVED_SK]
        return max(stamps, default="") > iso(self._clock() - ATTEMPT_LEASE)

    def _request_count(self) -> int | None:
        return getattr(self._client, "request_count", None)

    def _fingerprint(self, request: ErasureRequest) -> str:
        # What identifies the request: who is erased and whether for real. erase_all_matches
        # is left out on purpose: it is the confirmation a caller adds after a 409, and it
        # travels with the same request id.
        identity = {
            "contact_id": request.contact_id,
            "email_hmac": email_hash(self._pepper, request.email) if request.email else None,
            "dry_run": request.dry_run,
        }
        return hashlib.sha256(json.dumps(identity, sort_keys=True).encode()).hexdigest()

    def _receive(self, request: ErasureRequest, caller: str, fingerprint: str) -> dict[str, Any]:
        now = self._clock()
        record = {
            "record": "received",
            "received_at": iso(now),
            "due_at": end_of_day(due_date(now.date())),
            "caller": caller,
            "contact_id": request.contact_id,
            "email_hmac": email_hash(self._pepper, request.email) if request.email else None,
            "reason": request.reason,
            "dry_run": request.dry_run,
            "erase_all_matches": request.erase_all_matches,
            "fingerprint": fingerprint,
            "status": "open",
        }
        try:
            stored = self._append(request.request_id, RECEIVED_SK, record)
        except AlreadyRecorded:
            raise RequestInProgress(request.request_id) from None
        return {"request_id": request.request_id, "sk": RECEIVED_SK, **stored}

    def _stored_state(self, request_id: str, records: list[dict[str, Any]]) -> Outcome:
        outcome = _find(records, OUTCOME_SK)
        if outcome is not None:
            return Outcome.model_validate_json(outcome["outcome"])
        received = _find(records, RECEIVED_SK) or {}
        attempts = [r for r in records if _attempt_of(r["sk"]) is not None]
        last = max((_attempt_of(r["sk"]) or 0 for r in attempts), default=0)
        latest = [r for r in attempts if _attempt_of(r["sk"]) == last]
        contacts = [
            ContactResult.model_validate_json(r["result"])
            for r in latest
            if r.get("record") == "contact"
        ]
        lookup = next((r for r in latest if r.get("record") == "lookup"), None)
        failed = next((r for r in latest if r.get("record") == "failed"), None)
        contact_ids = list(lookup.get("contact_ids", [])) if lookup else []
        if failed is not None:
            status: Status = "failed"
            result: Result = "failed"
            message = _failed_message(failed.get("error", "unknown"), failed.get("hint"))
        elif lookup is not None and lookup.get("result") == "awaiting_confirmation":
            status, result = "open", "awaiting_confirmation"
            message = SeveralMatches(request_id, contact_ids).args[0]
        else:
            status, result = "open", "in_progress"
            message = "The request was received and is not finished; nothing is confirmed yet."
        return Outcome(
            request_id=request_id,
            status=status,
            result=result,
            dry_run=bool(received.get("dry_run")),
            received_at=received.get("received_at", ""),
            contact_ids=contact_ids,
            contacts=contacts,
            purged=_purged(latest),
            message=message,
            **_due(records),
        )


class _Attempt:
    """One pass over a request: look up, then scrub, archive and verify each contact."""

    def __init__(
        self,
        eraser: Eraser,
        request: ErasureRequest,
        caller: str,
        received: Mapping[str, Any],
        number: int,
    ):
        self.eraser = eraser
        self.client = eraser._client
        self.audit = eraser._audit
        self.request = request
        self.caller = caller
        self.received = received
        self.prefix = f"{number:03d}"
        self.purged: list[Purged] = []
        # What to check when Cliniko refused the key or its user while erasing a contact.
        self.access_hint: str | None = None

    def record(self, suffix: str, record: Mapping[str, Any]) -> None:
        try:
            self.eraser._append(self.request.request_id, f"{self.prefix}#{suffix}", record)
        except AlreadyRecorded:
            # Another call is working on the same attempt of this request.
            raise RequestInProgress(self.request.request_id) from None

    def outcome(self, **values: Any) -> Outcome:
        return Outcome(
            request_id=self.request.request_id,
            dry_run=self.request.dry_run,
            received_at=self.received["received_at"],
            due_at=self.received["due_at"],
            due_extended=bool(self.received.get("due_extended")),
            purged=self.purged,
            **values,
        )

    def execute(self) -> Outcome:
        try:
            matches = self.lookup()
        except cliniko_errors.ClinikoError as error:
            return self.fail(
                cliniko_errors.error_kind(error), [], [], cliniko_errors.access_hint(error)
            )
        contact_ids = [str(contact_fields(m)["id"]) for m in matches]
        awaiting = len(matches) > 1 and not self.request.erase_all_matches
        result = "found" if matches else "no_record_found"
        if awaiting:
            result = "awaiting_confirmation"
        self.record(
            "lookup",
            {
                "record": "lookup",
                "at": iso(self.eraser._clock()),
                "caller": self.caller,
                "erase_all_matches": self.request.erase_all_matches,
                "contact_ids": contact_ids,
                "result": result,
            },
        )
        if awaiting:
            raise SeveralMatches(self.request.request_id, contact_ids)
        if not self.request.dry_run:
            try:
                self.purge([contact_fields(m).get("email") for m in matches])
            except Exception as error:  # the store's own errors: the core knows no boto
                return self.fail(f"submission_store_error:{type(error).__name__}", contact_ids, [])
        if not matches:
            return self.finish(
                self.outcome(
                    status="completed",
                    result="no_record_found",
                    message=(
                        "No record was found: no Cliniko contact, archived ones included, "
                        "matches the request. Nothing was changed."
                    ),
                )
            )
        results = [self.handle(contact_fields(match)) for match in matches]
        failures = [r for r in results if r.action == "failed"]
        if failures:
            return self.fail("contact_failed", contact_ids, results, self.access_hint)
        if self.request.dry_run:
            message = (
                f"Dry run: nothing was changed. {len(results)} contact(s) would be scrubbed and "
                "archived; the field names that would change are listed. "
                "Cliniko would keep an archived record with no personal data."
            )
            result: Result = "dry_run"
        else:
            message = (
                f"{len(results)} contact(s) scrubbed and archived, and verified by reading them "
                "back. " + HONEST_NOTE
            )
            result = "erased"
        return self.finish(
            self.outcome(
                status="completed",
                result=result,
                contact_ids=contact_ids,
                contacts=results,
                message=message,
            )
        )

    def purge(self, contact_emails: Iterable[Any]) -> None:
        """Tombstone, then delete, every stored submission of the request's email and of the
        matched contacts' emails: nothing this system keeps brings the person back."""
        if self.eraser._submissions is None:
            return
        emails = {self.request.email} | {e for e in contact_emails if isinstance(e, str)}
        hashes = sorted({email_hash(self.eraser._pepper, e) for e in emails if e and e.strip()})
        if not hashes:
            return
        now = self.eraser._clock()
        deleted: list[str] = []
        for digest in hashes:
            # Tombstone first: a submission read after it is dropped, so none slips between.
            self.eraser._submissions.tombstone(digest, now)
            deleted += self.eraser._submissions.purge(digest)
        self.purged = [
            Purged(store=SUBMISSION_STORE, count=len(deleted), submission_ids=sorted(deleted))
        ]
        self.record(
            "purge",
            {
                "record": "purge",
                "at": iso(now),
                "tombstones": len(hashes),
                "purged": [p.model_dump() for p in self.purged],
            },
        )

    def lookup(self) -> list[Any]:
        filters: list[Any] = [DateTimeFilter("archived_at").any()]
        if self.request.contact_id:
            filters.append(NumericFilter("id").eq([self.request.contact_id]))
        if self.request.email:
            filters.append(StringFilter("email").eq(self.request.email))
        return list(self.client.list_contacts(filters))

    def handle(self, fields: dict[str, Any]) -> ContactResult:
        contact_id = str(fields["id"])
        changes = fields_to_scrub(fields)
        archive = not is_archived(fields)
        if self.request.dry_run:
            result = ContactResult(
                contact_id=contact_id,
                action="would_scrub_and_archive" if changes or archive else "nothing_to_do",
                fields=changes,
                archive=archive,
            )
        elif not changes and not archive:
            # Already scrubbed and archived (an earlier request, or by hand): nothing to write.
            result = ContactResult(
                contact_id=contact_id,
                action="already_scrubbed_and_archived",
                verified=True,
            )
        else:
            result = self.erase(contact_id, changes, archive)
        self.record(
            f"contact#{contact_id}",
            {
                "record": "contact",
                "at": iso(self.eraser._clock()),
                "contact_id": contact_id,
                "action": result.action,
                "fields": result.fields,
                "archive": result.archive,
                "verified": result.verified,
                "dry_run": self.request.dry_run,
                "result": result.model_dump_json(),
            },
        )
        return result

    def erase(self, contact_id: str, changes: list[str], archive: bool) -> ContactResult:
        try:
            if changes:
                # The whole scrub body, not only the changed fields: one write leaves no
                # personal field behind even if the read raced with an edit.
                self.client.update_contact(contact_id, dict(SCRUBBED_VALUES))
            if archive:
                self.client.archive_contact(contact_id)
            check = [DateTimeFilter("archived_at").any(), NumericFilter("id").eq([contact_id])]
            read_back = [contact_fields(c) for c in self.client.list_contacts(check)]
        except cliniko_errors.ClinikoError as error:
            self.access_hint = self.access_hint or cliniko_errors.access_hint(error)
            return ContactResult(
                contact_id=contact_id,
                action="failed",
                fields=changes,
                archive=archive,
                verified=False,
                error=cliniko_errors.error_kind(error),
            )
        verified = len(read_back) == 1 and is_erased(read_back[0])
        return ContactResult(
            contact_id=contact_id,
            action="scrubbed_and_archived" if verified else "failed",
            fields=changes,
            archive=archive,
            verified=verified,
            error=None if verified else "verification_failed",
        )

    def fail(
        self,
        error: str,
        contact_ids: list[str],
        results: list[ContactResult],
        hint: str | None = None,
    ) -> Outcome:
        self.record(
            "failed",
            {"record": "failed", "at": iso(self.eraser._clock()), "error": error, "hint": hint},
        )
        return self.outcome(
            status="failed",
            result="failed",
            contact_ids=contact_ids,
            contacts=results,
            message=_failed_message(error, hint),
        )

    def finish(self, outcome: Outcome) -> Outcome:
        outcome.finished_at = iso(self.eraser._clock())
        try:
            self.eraser._append(
                self.request.request_id,
                OUTCOME_SK,
                {
                    "record": "outcome",
                    "at": outcome.finished_at,
                    "caller": self.caller,
                    "status": outcome.status,
                    "result": outcome.result,
                    "dry_run": outcome.dry_run,
                    "contact_ids": outcome.contact_ids,
                    "outcome": outcome.model_dump_json(exclude=PER_CALL),
                },
            )
        except AlreadyRecorded:
            raise RequestInProgress(self.request.request_id) from None
        return outcome


def _find(records: Iterable[Mapping[str, Any]], sk: str) -> dict[str, Any] | None:
    return next((dict(r) for r in records if r["sk"] == sk), None)


def _failed_message(error: str, hint: str | None = None) -> str:
    if hint:
        # Misconfiguration: sending the request again changes nothing until it is fixed.
        return (
            f"The erasure did not finish ({error}): {hint} Sending the request again will fail "
            "the same way until that is fixed; then send it with the same request id."
        )
    return (
        f"The erasure did not finish ({error}). The request stays open: send it again with "
        "the same request id to retry. Contacts already scrubbed and archived count as done."
    )


def _due(records: Sequence[Mapping[str, Any]]) -> dict[str, Any]:
    """The request's due date: the extended one when it was extended."""
    extension = _find(records, EXTENSION_SK)
    if extension is not None:
        return {"due_at": extension["due_at"], "due_extended": True}
    received = _find(records, RECEIVED_SK) or {}
    return {"due_at": received.get("due_at", ""), "due_extended": False}


def _purged(records: Iterable[Mapping[str, Any]]) -> list[Purged]:
    purge = next((r for r in records if r.get("record") == "purge"), None)
    return [Purged.model_validate(_plain(p)) for p in purge.get("purged", [])] if purge else []


def _receipt(outcome: Outcome, records: int, head: str) -> Receipt:
    return Receipt(
        request_id=outcome.request_id,
        status=outcome.status,
        outcome=outcome.result,
        completed_at=outcome.finished_at if outcome.status == "completed" else None,
        chain_head=head,
        records=records,
    )
