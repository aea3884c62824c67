"""The contract between the intake endpoint and the worker: one queued submission.

The endpoint builds a `Submission` from a verified provider payload and writes its JSON to
SQS; the worker reads it back. The draft carries personal data, so it travels only inside the
(encrypted) queue and is never logged: log `submission_id`, `source` and outcomes instead.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field

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
