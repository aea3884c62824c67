"""An erasure request as a caller sends it, and the outcome it gets back (stored and replayed).

The request is validated here with messages that never echo its values; its email never
leaves the request object except as a keyed hash (common/person_keys.py).
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from cliniko_automations.cliniko.rules import EMAIL_PATTERN, MAX_LENGTH
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
        if len(value) > MAX_LENGTH or not EMAIL_PATTERN.fullmatch(value):
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
