"""The contract between the intake endpoint and the worker: one queued submission.

The endpoint builds a `Submission` from a verified provider payload, stores its JSON in the
submission store (common/submission_store.py) and queues a `QueuedSubmission`: the id and
source only (the claim-check pattern), so no queue ever holds a personal value and an erasure
can delete a person's submissions from the one place they live. The draft carries personal
data and is never logged: log `submission_id`, `source` and outcomes instead.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import hashlib
import json
import typing
from collections.abc import Mapping
from typing import Any, Literal, get_args

from cliniko_automations.cliniko import rules
from cliniko_automations.common.person_keys import clean_email, fold_name, phone_digits
from cliniko_automations.common.settings import parsed_setting

PhoneType = Literal["Mobile", "Home", "Work", "Other", "Fax"]
DoctorType = Literal["general_practitioner", "specialist"]
# fill_blanks: an existing contact only gains values for fields that are blank in Cliniko
# (staff edits are never overwritten). overwrite: submitted values replace Cliniko's.
# create_only: an existing contact is left alone.
UpdatePolicy = Literal["fill_blanks", "overwrite", "create_only"]
UPDATE_POLICIES: tuple[str, ...] = get_args(UpdatePolicy)

# Plain frozen dataclasses, not pydantic models, read back by hand (`from_json`): the intake
# API writes one and the worker reads one on every cold start, and importing pydantic and
# building its validators cost the worker 0.28x of a minimal handler's cold start. What they
# read is what `to_json` writes; a test holds the readers to what pydantic accepted.


@dataclasses.dataclass(frozen=True)
class PhoneNumber:
    number: str
    phone_type: PhoneType = "Mobile"


@dataclasses.dataclass(frozen=True, kw_only=True)
class ContactDraft:
    """A normalised contact from one submission: Cliniko's writable fields, None when absent."""

    title: str | None = None
    first_name: str | None = None
    last_name: str | None = None
    preferred_name: str | None = None
    company_name: str | None = None
    occupation: str | None = None
    provider_number: str | None = None
    email: str | None = None
    address_1: str | None = None
    address_2: str | None = None
    address_3: str | None = None
    city: str | None = None
    state: str | None = None
    post_code: str | None = None
    country_code: str | None = None
    notes: str | None = None
    doctor_type: DoctorType | None = None
    type_code: Literal[0, 1, 2] | None = None
    phone_numbers: tuple[PhoneNumber, ...] = ()

    @classmethod
    def from_fields(cls, fields: Mapping[str, Any]) -> ContactDraft:
        """The draft of a write body; `DraftInvalid` names every field the draft cannot hold
        (an unknown field, a value of another type or outside the choices), never a value."""
        invalid = [name for name, value in fields.items() if not _fits(name, value)]
        if invalid:
            raise DraftInvalid(invalid)
        values = dict(fields)
        if "phone_numbers" in values:
            values["phone_numbers"] = tuple(
                PhoneNumber(phone["number"], phone.get("phone_type", "Mobile"))
                for phone in values["phone_numbers"]
            )
        return cls(**values)

    def cliniko_fields(self) -> dict[str, Any]:
        """The fields this draft sets, shaped as a Cliniko write body."""
        body = {
            name: value
            for name, value in self._values().items()
            if value is not None and name != "phone_numbers"
        }
        if self.phone_numbers:
            body["phone_numbers"] = self._values()["phone_numbers"]
        return body

    def canonical_json(self) -> str:
        """The draft as compact JSON without its unset fields: the content a redelivery is
        recognised by (byte for byte what pydantic's `model_dump_json(exclude_none=True)`
        wrote, so keys made before this class left pydantic still match)."""
        values = {name: value for name, value in self._values().items() if value is not None}
        return _compact_json(values)

    def digest(self) -> str:
        """SHA-256 of `canonical_json`, in hex: what tells one submission's content from
        another's."""
        return hashlib.sha256(self.canonical_json().encode("utf-8")).hexdigest()

    def person_digest(self) -> str:
        """SHA-256, in hex, of whom the draft names as the worker finds them: the lower-cased
        email, else the folded first and last name with the phones' digits, else (nobody to
        find) the whole content, `digest`. Fields that name nobody (notes, defaults, a
        company) do not move it."""
        if self.lookup_email:
            material = f"email\x00{self.lookup_email}"
        else:
            phones = sorted({phone_digits(phone.number) for phone in self.phone_numbers} - {""})
            first, last = fold_name(self.first_name), fold_name(self.last_name)
            if not (first and last and phones):
                return self.digest()
            material = "\x00".join(("name", first, last, *phones))
        return hashlib.sha256(material.encode("utf-8")).hexdigest()

    @property
    def lookup_email(self) -> str | None:
        """The email as Cliniko's email filter compares it: lower-cased."""
        return clean_email(self.email).lower() if self.email else None

    def _values(self) -> dict[str, Any]:
        return dataclasses.asdict(self) | {
            "phone_numbers": [dataclasses.asdict(phone) for phone in self.phone_numbers]
        }


class DraftInvalid(ValueError):
    def __init__(self, fields: list[str]) -> None:
        self.fields = fields
        super().__init__(f"fields the draft cannot hold: {', '.join(fields)}")


def _fits(name: str, value: Any) -> bool:
    """Whether `value` has the type ContactDraft declares for field `name` (None: unset)."""
    if name not in rules.WRITABLE_FIELDS:
        return False
    if value is None:
        return name != "phone_numbers"
    if name == "doctor_type":
        return isinstance(value, str) and value in rules.DOCTOR_TYPES
    if name == "type_code":
        return type(value) is int and value in rules.TYPE_NAMES
    if name == "phone_numbers":
        return isinstance(value, list | tuple) and all(
            isinstance(phone, Mapping)
            and phone.keys() <= {"number", "phone_type"}
            and isinstance(phone.get("number"), str)
            and phone.get("phone_type", "Mobile") in rules.PHONE_TYPES
            for phone in value
        )
    return isinstance(value, str)


# The draft's fields are typed by hand (for the type checker) but must be exactly the
# contact's writable fields: a field openapi.yaml gains or loses stops every function's import.
if {f.name for f in dataclasses.fields(ContactDraft)} != rules.WRITABLE_FIELDS:  # pragma: no cover
    raise RuntimeError("ContactDraft's fields differ from the contact's writable fields")


@dataclasses.dataclass(frozen=True, kw_only=True)
class Submission:
    """One accepted submission, as queued.

    `submission_id` is our id, returned to the sender in the 202; `idempotency_key` is
    '<source>:<provider submission id>', '<source>:<sender's key>:<hash of the person>' or
    '<source>:sha256:<content hash>' (intake_api/accept.py); `account` names
    the Cliniko account (its key's secret) to write; `submitted_at` is the provider's own
    submission time, when its payload has one; `first_received_at`, when the API first
    received this idempotency key.
    """

    submission_id: str
    idempotency_key: str
    source: str
    provider: str
    account: str
    received_at: dt.datetime
    update_policy: UpdatePolicy = "fill_blanks"
    draft: ContactDraft
    submitted_at: dt.datetime | None = None
    first_received_at: dt.datetime | None = None
    # The draft's fields no answer of the person gave (a source's defaults, a notes template
    # whose every answer was blank): under overwrite they still only fill blanks.
    unanswered: tuple[str, ...] = ()

    @property
    def made_at(self) -> dt.datetime:
        """When the person made this submission, as far as we can know: the provider's time,
        else when we first received it (a redelivery days later is not a new submission).
        Never later than our first receipt: a submission cannot be made after it arrived."""
        first = self.first_received_at or self.received_at
        return min(self.submitted_at, first) if self.submitted_at else first

    def to_json(self) -> str:
        """What the submission store holds."""
        values = dataclasses.asdict(self)
        values["draft"] = self.draft._values()
        return _compact_json(values)

    @classmethod
    def from_json(cls, text: str | bytes) -> Submission:
        """A stored submission, checked; raises `SubmissionInvalid`."""
        values = _json_object(text)
        problems = _missing_or_unknown(cls, values)
        problems += [
            (name, "must be a string")
            for name in ("submission_id", "idempotency_key", "source", "provider", "account")
            if not isinstance(values.get(name, ""), str)
        ]
        if values.get("update_policy", "fill_blanks") not in UPDATE_POLICIES:
            problems.append(("update_policy", "must be one of " + ", ".join(UPDATE_POLICIES)))
        for name in ("received_at", "submitted_at", "first_received_at"):
            if name in values and (values[name] is not None or name == "received_at"):
                values[name] = _aware_time(values[name])
                if values[name] is None:
                    problems.append((name, "must be an ISO 8601 time with its offset"))
        problems += _draft_problems(values)
        unanswered = values.get("unanswered", [])
        if not isinstance(unanswered, list) or not all(
            isinstance(name, str) and name in rules.WRITABLE_FIELDS for name in unanswered
        ):
            problems.append(("unanswered", "must be a list of contact fields"))
        else:
            values["unanswered"] = tuple(unanswered)
        if problems:
            raise SubmissionInvalid(problems)
        return cls(**values)


@dataclasses.dataclass(frozen=True)
class QueuedSubmission:
    """What a queue message carries: ids only. The body is in the submission store."""

    submission_id: str
    source: str

    def __post_init__(self) -> None:
        if not 1 <= len(self.submission_id) <= 100 or not 1 <= len(self.source) <= 200:
            raise ValueError("submission_id is 1-100 characters, source 1-200")

    @classmethod
    def of(cls, submission: Submission) -> QueuedSubmission:
        return cls(submission_id=submission.submission_id, source=submission.source)

    def to_json(self) -> str:
        return _compact_json(dataclasses.asdict(self))

    @classmethod
    def from_json(cls, text: str | bytes) -> QueuedSubmission:
        """A queue message's body, checked; raises `SubmissionInvalid`."""
        values = _json_object(text)
        problems = _missing_or_unknown(cls, values)
        problems += [
            (name, "must be a string")
            for name in ("submission_id", "source")
            if not isinstance(values.get(name, ""), str)
        ]
        if problems:
            raise SubmissionInvalid(problems)
        try:
            return cls(**values)
        except ValueError as exc:  # its lengths: the message names no value
            raise SubmissionInvalid([("body", str(exc))]) from None


class SubmissionInvalid(ValueError):
    """A stored submission or a queue message that is not one. `problems` are (where, what)
    pairs naming fields and rules, never a value nor a key the sender made up."""

    def __init__(self, problems: list[tuple[str, str]]) -> None:
        self.problems = problems
        super().__init__("; ".join(f"{where}: {what}" for where, what in problems))


def _json_object(text: str | bytes) -> dict[str, Any]:
    try:
        values = json.loads(text)
    except (ValueError, RecursionError):  # not JSON, not UTF-8, or nested past reason
        raise SubmissionInvalid([("body", "must be JSON")]) from None
    if not isinstance(values, dict):
        raise SubmissionInvalid([("body", "must be a JSON object")])
    return values


def _missing_or_unknown(cls: type[Any], values: Mapping[str, Any]) -> list[tuple[str, str]]:
    fields = dataclasses.fields(cls)
    problems = [
        (field.name, "is required")
        for field in fields
        if field.name not in values
        and field.default is dataclasses.MISSING
        and field.default_factory is dataclasses.MISSING
    ]
    unknown = len(values.keys() - {field.name for field in fields})
    if unknown:
        problems.append(("body", f"{unknown} unknown field(s)"))
    return problems


def _aware_time(value: Any) -> dt.datetime | None:
    """An ISO 8601 time with its offset, as `to_json` writes it; None for anything else."""
    if not isinstance(value, str):
        return None
    try:  # read as a time setting is: the same rule, one reader
        return typing.cast(dt.datetime, parsed_setting(value, dt.datetime, {}))
    except ValueError:
        return None


def _draft_problems(values: dict[str, Any]) -> list[tuple[str, str]]:
    """The stored draft's problems; without any, `values["draft"]` becomes the draft."""
    if "draft" not in values:
        return []
    if not isinstance(values["draft"], dict):
        return [("draft", "must be an object")]
    try:
        values["draft"] = ContactDraft.from_fields(values["draft"])
    except DraftInvalid as exc:
        known = [f"draft.{name}" for name in exc.fields if name in rules.WRITABLE_FIELDS]
        unknown = len(exc.fields) - len(known)
        return [(where, "invalid") for where in known] + (
            [("draft", f"{unknown} unknown field(s)")] if unknown else []
        )
    return []


def _compact_json(values: dict[str, Any]) -> str:
    return json.dumps(values, separators=(",", ":"), ensure_ascii=False, default=_json_time)


def _json_time(value: object) -> str:
    if isinstance(value, dt.datetime):
        # pydantic's form, so bodies stored before and after read alike: UTC as "Z".
        return value.isoformat().replace("+00:00", "Z")
    raise TypeError(f"{type(value).__name__} is not JSON")
