"""An erasure request as a caller sends it, and the outcome it gets back (stored and replayed).

The request is checked here with messages that never echo its values; its email never
leaves the request object except as a keyed hash (common/person_keys.py). Plain dataclasses
checked by hand, not pydantic models: importing pydantic and building the models was over a
quarter of a minimal handler's cold start. The outcomes are this system's own records, written
and read back as plain data (common/plain_data.py).
"""

from __future__ import annotations

import dataclasses
import re
import unicodedata
from collections.abc import Callable, Mapping
from typing import Any, Literal

from cliniko_automations.cliniko.rules import CLINIKO_EMAIL_PATTERN, EMAIL_PATTERN, MAX_LENGTH
from cliniko_automations.common.json_input import LONE_SURROGATE, REPLACEMENT_CHARACTER
from cliniko_automations.common.person_keys import clean_email, without_format_characters
from cliniko_automations.common.settings import parsed_setting
from cliniko_automations.erasure.errors import InvalidRequest

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

# fullmatch: `$` would let a final newline through.
REQUEST_ID_PATTERN = re.compile(r"[A-Za-z0-9][A-Za-z0-9._:-]{0,127}")
CONTACT_ID_PATTERN = re.compile(r"^[1-9][0-9]{0,18}$")
# A request id of digits and separators alone, which may be a phone number (fullmatch).
NUMBER_ONLY_ID = re.compile(r"[0-9.:-]+")
MAX_PHONE_DIGITS = 15  # E.164's longest number
# Cliniko's ids are signed 64-bit integers: a larger one cannot name a contact, and Cliniko
# answers its filter 400, not "no such contact".
MAX_CONTACT_ID = 2**63 - 1
# A reason is a legal basis or a ticket reference. It is kept in the audit trail, so it must
# not carry personal data: refuse the two shapes that are surely personal (emails, phones).
# A phone number is a run of 8 or more digits, maybe spaced or punctuated; ISO dates (which
# a reason may well quote) are taken out first.
DIGIT_RUN = re.compile(r"\+?\d[\d\s().-]*\d")
ISO_DATE = re.compile(r"\b\d{4}-\d{2}-\d{2}\b")
# Longer than this as sent is no reason of 200 characters, whatever invisible characters it
# carries: refused before NFKC, whose canonical ordering is quadratic in a run of combining
# marks (20,000 + 20,000 of them in reverse order took 2.5 s, 40,000 + 40,000 took 10 s).
MAX_REASON_AS_SENT = 1000


def _looks_like_a_phone_number(text: str) -> bool:
    text = ISO_DATE.sub(" ", text)
    return any(sum(c.isdigit() for c in run) >= 8 for run in DIGIT_RUN.findall(text))


def check_reason(value: Any) -> str:
    """A reason kept in the audit trail: short, and surely not personal data.

    Checked, and kept, as a person reads it: without invisible format characters (a reason of
    one zero-width space is empty) and in Unicode's compatibility form (a full-width "＠" is
    an "@"), since once hashed into the trail's chain it can never be taken out."""
    sent = _text(value)
    if len(sent) > MAX_REASON_AS_SENT:
        raise ValueError("must be 1-200 characters")
    # One line: its line breaks and tabs are spaces, as the intake's fields' are.
    text = " ".join(unicodedata.normalize("NFKC", without_format_characters(sent)).split())
    if not 1 <= len(text) <= 200:
        raise ValueError("must be 1-200 characters")
    if any(unicodedata.category(char) == "Cc" for char in text):
        # A NUL or a terminal escape, hashed into the trail for good, and printed by its tools.
        raise ValueError("must be text without control characters")
    if "@" in text or _looks_like_a_phone_number(text):
        raise ValueError(
            "must not contain personal data such as an email or a phone number; "
            "give the legal basis or a ticket reference"
        )
    return text


@dataclasses.dataclass(frozen=True, kw_only=True)
class ErasureRequest:
    """What a caller asks for. The email never leaves this object except as a keyed hash."""

    # Caller-chosen id; the same id returns the same outcome.
    request_id: str
    contact_id: str | None = None
    # The Cliniko account (a name of cliniko_accounts.yaml) to search; None: every account for
    # an email, the default account for a contact id (erasure/accounts.py).
    account: str | None = None
    email: str | None = dataclasses.field(default=None, repr=False)
    # Legal basis or ticket reference; no personal data.
    reason: str
    dry_run: bool = False
    erase_all_matches: bool = False

    @classmethod
    def parse(cls, data: Any) -> ErasureRequest:
        """Check a request body, raising InvalidRequest with messages that never echo the
        input values (nor a key the caller made up: those are counted)."""
        if not isinstance(data, Mapping):
            raise InvalidRequest({"body": "must be a JSON object"})
        problems: dict[str, str] = {}
        values: dict[str, Any] = {}
        for name, check in _CHECKS.items():
            if name in _OPTIONAL and (
                name not in data or (data[name] is None and name not in _FLAGS)
            ):
                continue
            try:
                values[name] = check(data.get(name))
            except ValueError as exc:
                problems[name] = str(exc)
        if not problems and not values.get("contact_id") and not values.get("email"):
            problems["body"] = "give contact_id, email or both"
        unknown = sum(1 for key in data if key not in _CHECKS)
        if unknown:
            problems.setdefault(
                "body", f"{unknown} unknown field(s); the fields are " + ", ".join(_CHECKS)
            )
        if problems:
            raise InvalidRequest(problems)
        return cls(**values)


def _text(value: Any) -> str:
    if value is None:
        raise ValueError("is required")
    if not isinstance(value, str):
        raise ValueError("must be a string")
    if LONE_SURROGATE.search(value):
        # What a non-UTF-8 terminal's bytes become in Python's arguments: no text to keep.
        raise ValueError("must be valid text (it holds bytes that are not UTF-8)")
    return value.strip()


def _request_id(value: Any) -> str:
    text = _text(value)
    if not REQUEST_ID_PATTERN.fullmatch(text):
        raise ValueError(
            "must be 1-128 characters: letters, digits, '.', '_', ':' or '-', "
            "starting with a letter or digit"
        )
    if (
        NUMBER_ONLY_ID.fullmatch(text)
        and sum(char.isdigit() for char in text) <= MAX_PHONE_DIGITS
        and _looks_like_a_phone_number(text)
    ):
        # Kept in the trail and the receipt for good, as a reason is. Only an id of digits
        # alone is asked: a uuid's groups joined by '-' are long runs of digits too.
        raise ValueError(
            "must not be a phone number (it is kept for good); "
            "use a ticket reference with a letter in it, such as r-42"
        )
    return text


def _contact_id(value: Any) -> str:
    # Ids are 64-bit integers that Cliniko serialises as strings; accept an int, keep a str.
    if isinstance(value, int) and not isinstance(value, bool):
        value = str(value)
    if (
        not isinstance(value, str)
        or not CONTACT_ID_PATTERN.match(value.strip())
        or int(value) > MAX_CONTACT_ID
    ):
        # Said whole: an id one digit too long is digits too, and "(digits)" alone puzzled.
        raise ValueError(f"must be a Cliniko contact id (digits, 1 to {MAX_CONTACT_ID})")
    return value.strip()


def _account(value: Any) -> str:
    # Checked against the deployment's accounts when the request is handled.
    text = _text(value)
    if not 1 <= len(text) <= 128 or not text.isprintable():
        raise ValueError("must be the name of a Cliniko account of this deployment")
    return text


def _email(value: Any) -> str:
    # Cleaned as the intake cleans the emails it stores, so both hash the same address;
    # Cliniko's email filter compares against the lower-cased stored email.
    email = clean_email(_text(value)).lower()
    if REPLACEMENT_CHARACTER in email:
        # Broken bytes, already replaced (a lone surrogate in the JSON body, a terminal that
        # decodes with "replace"): no address anyone has, and searched for it would complete
        # the request as "no record found" for the person it was meant for.
        raise ValueError("must be valid text (it holds bytes that are not UTF-8)")
    if len(email) > MAX_LENGTH or not EMAIL_PATTERN.fullmatch(email):
        raise ValueError("must be an email address")
    if not ADDRESS_SPECIALS.isdisjoint(email) and not CLINIKO_EMAIL_PATTERN.fullmatch(email):
        # An address copied with its wrapping (`mailto:`, `<...>`, a list's comma): searched as
        # typed it found no contact, and the request completed as "no record found" with the
        # person still in Cliniko, which holds no such address (its check and the intake's
        # refuse it; a comma before the `@` they take). A contact whose address holds one is
        # erased by its id.
        raise ValueError(
            "must be an email address alone, without `mailto:`, `<>`, commas or other "
            "characters an address does not hold (a contact whose address holds them: "
            "send its contact_id)"
        )
    return as_cliniko_holds(email)


# The characters RFC 5322 keeps out of an address but in quotes (which neither Cliniko nor
# the intake takes): what a copied address carries around it.
ADDRESS_SPECIALS = frozenset('()<>[]:;,\\"')


def as_cliniko_holds(email: str) -> str:
    """`email` in the one form a Cliniko contact can hold it, where it is not in that form.

    Cliniko takes ASCII addresses only (rules.CLINIKO_EMAIL_PATTERN), and the intake refuses
    others: an international domain is held in its `xn--` form (IDNA 2008, as registries
    and mail servers write it), full-width letters as the letters they are (NFKC) and a
    Turkish capital "İ" as "i".
    Searched as typed, `anna@bücher.de` found no contact and the request completed as "no
    record found" with the person still in Cliniko. An address no such form makes one Cliniko
    takes (an accented local part) is kept as typed: a contact staff entered before Cliniko
    checked addresses may hold it."""
    if CLINIKO_EMAIL_PATTERN.fullmatch(email):
        return email
    import idna  # here alone: an address in another form is rare, and idna's tables large

    # An "İ" lower-cased is "i" and a combining dot, which no ASCII address holds: typed in
    # Turkish capitals, "İLKER@…" is "ilker@…".
    compatible = unicodedata.normalize("NFKC", email).replace("i\u0307", "i")
    local, _, domain = compatible.rpartition("@")
    try:
        ascii_domain = idna.encode(domain, uts46=True).decode("ascii")
    except (idna.IDNAError, UnicodeError):
        return email
    held = f"{local}@{ascii_domain}".lower()
    return held if CLINIKO_EMAIL_PATTERN.fullmatch(held) else email


def _flag(value: Any) -> bool:
    # JSON's true and false, and the numbers and words pydantic took for them (0, 1, "yes").
    if isinstance(value, bool):
        return value
    if type(value) is int and value in (0, 1):
        return bool(value)
    if isinstance(value, str):
        try:
            return bool(parsed_setting(value.strip(), bool, {}))
        except ValueError:
            pass
    raise ValueError("must be true or false")


_CHECKS: dict[str, Callable[[Any], Any]] = {
    "request_id": _request_id,
    "contact_id": _contact_id,
    "account": _account,
    "email": _email,
    "reason": check_reason,
    "dry_run": _flag,
    "erase_all_matches": _flag,
}
_FLAGS = frozenset({"dry_run", "erase_all_matches"})
# Null is left out but for the flags: a null dry_run is no "false" to erase for real on.
_OPTIONAL = frozenset({"contact_id", "account", "email", *_FLAGS})


@dataclasses.dataclass(kw_only=True)
class ContactResult:
    contact_id: str
    action: ContactAction
    # The Cliniko account the contact is in (None in results stored before accounts were).
    account: str | None = None
    # Names of the personal fields changed (or to change).
    fields: list[str] = dataclasses.field(default_factory=list)
    # Archived by this request (or would be, in a dry run).
    archive: bool = False
    verified: bool | None = None
    error: str | None = None


@dataclasses.dataclass(kw_only=True)
class Purged:
    """What an erasure removed from one of this system's own stores: ids, never values."""

    store: str
    count: int
    # The submission store's ids (the first LISTED_SUBMISSIONS of them, attempt.py); the
    # webhook dead letters are counted only.
    submission_ids: list[str] = dataclasses.field(default_factory=list)


@dataclasses.dataclass(kw_only=True)
class Receipt:
    """What an operator can hand to the person: checkable against the audit trail's chain."""

    request_id: str
    status: Status
    outcome: Result
    completed_at: str | None = None
    # Hash of the request's latest audit record.
    chain_head: str
    records: int


@dataclasses.dataclass(kw_only=True)
class Outcome:
    """The answer to a request, stored in the audit trail and returned again on repeats."""

    request_id: str
    status: Status
    result: Result
    dry_run: bool
    received_at: str
    due_at: str
    due_extended: bool = False
    finished_at: str | None = None
    contact_ids: list[str] = dataclasses.field(default_factory=list)
    # Every account searched, with the contact ids matched there (an id is one account's).
    accounts: dict[str, list[str]] = dataclasses.field(default_factory=dict)
    contacts: list[ContactResult] = dataclasses.field(default_factory=list)
    purged: list[Purged] = dataclasses.field(default_factory=list)
    message: str
    # Requests sent to Cliniko by the call that produced this.
    cliniko_requests: int | None = None
    receipt: Receipt | None = None


# Not part of the stored outcome: per call (cliniko_requests) or read from the trail (receipt).
PER_CALL = {"cliniko_requests", "receipt"}
