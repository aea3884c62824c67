"""The contract between the intake endpoint and the worker: one queued submission.

The endpoint builds a `Submission` from a verified provider payload, stores its JSON in the
submission store (common/submission_store.py) and queues a `QueuedSubmission`: the id and
source only (the claim-check pattern), so no queue ever holds a personal value and an erasure
can delete a person's submissions from the one place they live. The draft carries personal
data and is never logged: log `submission_id`, `source` and outcomes instead.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field

from cliniko_automations.cliniko import rules

PhoneType = Literal["Mobile", "Home", "Work", "Other", "Fax"]
DoctorType = Literal["general_practitioner", "specialist"]
# fill_blanks: an existing contact only gains values for fields that are blank in Cliniko
# (staff edits are never overwritten). overwrite: submitted values replace Cliniko's.
# create_only: an existing contact is left alone.
UpdatePolicy = Literal["fill_blanks", "overwrite", "create_only"]


class PhoneNumber(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    number: str
    phone_type: PhoneType = "Mobile"


class ContactDraft(BaseModel):
    """A normalised contact from one submission: Cliniko's writable fields, None when absent."""

    model_config = ConfigDict(extra="forbid", frozen=True)

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

    def cliniko_fields(self) -> dict[str, Any]:
        """The fields this draft sets, shaped as a Cliniko write body."""
        body = self.model_dump(exclude_none=True, exclude={"phone_numbers"})
        if self.phone_numbers:
            body["phone_numbers"] = [phone.model_dump() for phone in self.phone_numbers]
        return body

    @property
    def lookup_email(self) -> str | None:
        """The email as Cliniko's email filter compares it: lower-cased."""
        return self.email.strip().lower() if self.email else None


# The draft's fields are typed by hand (for the type checker) but must be exactly the
# generated ContactWrite's: a field openapi.yaml gains or loses stops every function's import.
if set(ContactDraft.model_fields) != rules.WRITABLE_FIELDS:  # pragma: no cover - spec drift
    raise RuntimeError("ContactDraft's fields differ from the generated ContactWrite's")


class Submission(BaseModel):
    """One accepted submission, as queued."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    submission_id: str = Field(description="Our id, returned to the sender in the 202.")
    idempotency_key: str = Field(
        description="'<source>:<provider submission id>' or '<source>:sha256:<content hash>'."
    )
    source: str
    provider: str
    account: str = Field(description="Name of the Cliniko account (its key's secret) to write.")
    received_at: datetime
    update_policy: UpdatePolicy = "fill_blanks"
    draft: ContactDraft
    submitted_at: datetime | None = Field(
        default=None, description="The provider's own submission time, when its payload has one."
    )
    first_received_at: datetime | None = Field(
        default=None, description="When the API first received this idempotency key."
    )

    @property
    def made_at(self) -> datetime:
        """When the person made this submission, as far as we can know: the provider's time,
        else when we first received it (a redelivery days later is not a new submission).
        Never later than our first receipt: a submission cannot be made after it arrived."""
        first = self.first_received_at or self.received_at
        return min(self.submitted_at, first) if self.submitted_at else first


class QueuedSubmission(BaseModel):
    """What a queue message carries: ids only. The body is in the submission store."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    submission_id: str = Field(min_length=1, max_length=100)
    source: str = Field(min_length=1, max_length=200)

    @classmethod
    def of(cls, submission: Submission) -> QueuedSubmission:
        return cls(submission_id=submission.submission_id, source=submission.source)
