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
import json
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any, Literal, TypeVar

from cliniko_automations.cliniko import rules
from cliniko_automations.common.config_file import FORBID_EXTRA

if TYPE_CHECKING:
    from pydantic import TypeAdapter

PhoneType = Literal["Mobile", "Home", "Work", "Other", "Fax"]
DoctorType = Literal["general_practitioner", "specialist"]
# fill_blanks: an existing contact only gains values for fields that are blank in Cliniko
# (staff edits are never overwritten). overwrite: submitted values replace Cliniko's.
# create_only: an existing contact is left alone.
UpdatePolicy = Literal["fill_blanks", "overwrite", "create_only"]
Read = TypeVar("Read", "Submission", "QueuedSubmission")

# Plain frozen dataclasses, not pydantic models: the intake API builds and writes them on
# every cold start, and importing pydantic and building its models was a fifth of a minimal
# handler's cold start. pydantic still validates them wherever they are read back in
# (`Submission.from_json`, `QueuedSubmission.from_json`), through a TypeAdapter that honours
# the types below and `__pydantic_config__`.


@dataclasses.dataclass(frozen=True)
class PhoneNumber:
    __pydantic_config__ = FORBID_EXTRA

    number: str
    phone_type: PhoneType = "Mobile"


@dataclasses.dataclass(frozen=True, kw_only=True)
class ContactDraft:
    """A normalised contact from one submission: Cliniko's writable fields, None when absent."""

    __pydantic_config__ = FORBID_EXTRA

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

    @property
    def lookup_email(self) -> str | None:
        """The email as Cliniko's email filter compares it: lower-cased."""
        return self.email.strip().lower() if self.email else None

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
    '<source>:<provider submission id>' or '<source>:sha256:<content hash>'; `account` names
    the Cliniko account (its key's secret) to write; `submitted_at` is the provider's own
    submission time, when its payload has one; `first_received_at`, when the API first
    received this idempotency key.
    """

    __pydantic_config__ = FORBID_EXTRA

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
        """A stored submission, validated; raises pydantic's ValidationError."""
        return _adapter(cls).validate_json(text)


@dataclasses.dataclass(frozen=True)
class QueuedSubmission:
    """What a queue message carries: ids only. The body is in the submission store."""

    __pydantic_config__ = FORBID_EXTRA

    submission_id: str
    source: str

    def __post_init__(self) -> None:
        # Also run by pydantic when it validates a message: a ValueError is its error.
        if not 1 <= len(self.submission_id) <= 100 or not 1 <= len(self.source) <= 200:
            raise ValueError("submission_id is 1-100 characters, source 1-200")

    @classmethod
    def of(cls, submission: Submission) -> QueuedSubmission:
        return cls(submission_id=submission.submission_id, source=submission.source)

    def to_json(self) -> str:
        return _compact_json(dataclasses.asdict(self))

    @classmethod
    def from_json(cls, text: str | bytes) -> QueuedSubmission:
        """A queue message's body, validated; raises pydantic's ValidationError."""
        return _adapter(cls).validate_json(text)


def _compact_json(values: dict[str, Any]) -> str:
    return json.dumps(values, separators=(",", ":"), ensure_ascii=False, default=_json_time)


def _json_time(value: object) -> str:
    if isinstance(value, dt.datetime):
        # pydantic's form, so bodies stored before and after read alike: UTC as "Z".
        return value.isoformat().replace("+00:00", "Z")
    raise TypeError(f"{type(value).__name__} is not JSON")


_ADAPTERS: dict[type[Any], TypeAdapter[Any]] = {}


def _adapter(cls: type[Read]) -> TypeAdapter[Read]:
    if cls not in _ADAPTERS:
        # Imported on the first read: the intake API writes these and never reads one back.
        from pydantic import TypeAdapter

        _ADAPTERS[cls] = TypeAdapter(cls)
    return _ADAPTERS[cls]
