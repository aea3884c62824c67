"""The erasure's request and outcomes are plain dataclasses: the request checked by hand takes
and refuses what the pydantic model did, and an outcome stored by the pydantic model reads
back and is written again byte for byte."""

from __future__ import annotations

import itertools
import json
from typing import Any

import pytest
from cliniko_automations.cliniko.rules import EMAIL_PATTERN, MAX_LENGTH
from cliniko_automations.common.plain_data import as_data, as_json, from_data
from cliniko_automations.erasure.errors import InvalidRequest
from cliniko_automations.erasure.models import (
    CONTACT_ID_PATTERN,
    PER_CALL,
    REQUEST_ID_PATTERN,
    ContactResult,
    ErasureRequest,
    Outcome,
    Purged,
    Receipt,
    check_reason,
)
from pydantic import BaseModel, ConfigDict, ValidationError, field_validator, model_validator


class PydanticRequest(BaseModel):
    """The request as the pydantic model checked it before (its validators, verbatim)."""

    model_config = ConfigDict(extra="forbid", frozen=True, str_strip_whitespace=True)

    request_id: str
    contact_id: str | None = None
    email: str | None = None
    reason: str
    dry_run: bool = False
    erase_all_matches: bool = False

    @field_validator("request_id")
    @classmethod
    def _request_id(cls, value: str) -> str:
        if not REQUEST_ID_PATTERN.fullmatch(value):
            raise ValueError("bad request id")
        return value

    @field_validator("contact_id", mode="before")
    @classmethod
    def _contact_id(cls, value: Any) -> Any:
        if isinstance(value, bool):
            raise ValueError("bad contact id")
        if isinstance(value, int):
            value = str(value)
        if isinstance(value, str) and not CONTACT_ID_PATTERN.match(value.strip()):
            raise ValueError("bad contact id")
        return value

    @field_validator("email")
    @classmethod
    def _email(cls, value: str | None) -> str | None:
        if value is None:
            return None
        value = value.lower()
        if len(value) > MAX_LENGTH or not EMAIL_PATTERN.fullmatch(value):
            raise ValueError("bad email")
        return value

    @field_validator("reason")
    @classmethod
    def _reason(cls, value: str) -> str:
        return check_reason(value)

    @model_validator(mode="after")
    def _identified(self) -> PydanticRequest:
        if not self.contact_id and not self.email:
            raise ValueError("unidentified")
        return self


GOOD = {"request_id": "r-1", "contact_id": "42", "reason": "GDPR art. 17"}
LEFT_OUT = object()
VALUES: list[Any] = [LEFT_OUT, None, True, False, 0, 1, 2, 42, -3, 1.5, "", " ", "r-1", " 42 "]
VALUES += ["42", "abc", "Ada@Example.COM ", "not-an-email", "GDPR art. 17", "call 0400 123 456"]
VALUES += ["true", "no", "maybe", "bad id", [], {}, "x" * 129, "9" * 21, "0491570156"]
# Where the hand check differs from the model, on purpose: a request id that may be a phone
# number, which the trail would keep for good.
ONLY_THE_MODEL_TOOK = [("request_id", "0491570156")]


def parsed(parse, body):
    try:
        request = parse(body)
    except (InvalidRequest, ValidationError):
        return None
    return {name: getattr(request, name) for name in PydanticRequest.model_fields}


def test_the_request_is_checked_as_the_pydantic_model_checked_it():
    differ = []
    fields = list(PydanticRequest.model_fields)
    for base in (GOOD, {"request_id": "r-1", "email": "a@b.co", "reason": "x"}):
        for name, value in itertools.product(fields, VALUES):
            body = {k: v for k, v in base.items() if k != name}
            if value is not LEFT_OUT:
                body[name] = value
            ours = parsed(ErasureRequest.parse, body)
            theirs = parsed(PydanticRequest.model_validate, body)
            if ours != theirs:
                differ.append((name, value))
    assert sorted(map(repr, set(differ))) == sorted(map(repr, ONLY_THE_MODEL_TOOK))


def test_unknown_keys_are_counted_and_every_problem_named_at_once():
    body = {"request_id": "bad id", "reason": 3, "dry_run": "maybe", "ada@example.com": 1}
    with pytest.raises(InvalidRequest) as caught:
        ErasureRequest.parse(body)
    problems = caught.value.problems
    assert set(problems) == {"request_id", "reason", "dry_run", "body"}
    assert problems["reason"] == "must be a string"
    assert problems["body"].startswith("1 unknown field(s); the fields are request_id, ")
    assert "ada@example.com" not in str(caught.value)


OUTCOME = Outcome(
    request_id="r-1",
    status="completed",
    result="erased",
    dry_run=False,
    received_at="2026-12-02T01:02:03Z",
    due_at="2027-01-01T01:02:03Z",
    finished_at="2026-12-02T01:02:04Z",
    contact_ids=["42"],
    contacts=[
        ContactResult(
            contact_id="42", action="scrubbed_and_archived", fields=["email"], verified=True
        )
    ],
    purged=[Purged(store="submissions", count=1, submission_ids=["s-1"])],
    message="Erasé ✓",
    cliniko_requests=3,
    receipt=Receipt(
        request_id="r-1", status="completed", outcome="erased", chain_head="ab", records=4
    ),
)
# What the pydantic Outcome's model_dump_json(exclude=PER_CALL) wrote into the audit trail.
STORED_BY_PYDANTIC = (
    '{"request_id":"r-1","status":"completed","result":"erased","dry_run":false,'
    '"received_at":"2026-12-02T01:02:03Z","due_at":"2027-01-01T01:02:03Z","due_extended":false,'
    '"finished_at":"2026-12-02T01:02:04Z","contact_ids":["42"],"contacts":[{"contact_id":"42",'
    '"action":"scrubbed_and_archived","fields":["email"],"archive":false,"verified":true,'
    '"error":null}],"purged":[{"store":"submissions","count":1,"submission_ids":["s-1"]}],'
    '"message":"Erasé ✓"}'
)


def test_an_outcome_is_stored_as_the_pydantic_model_stored_it_and_reads_back():
    # As pydantic stored it, plus what the erasure stores since it covers several accounts.
    stored = json.loads(STORED_BY_PYDANTIC)
    stored["accounts"] = {}
    stored["contacts"][0]["account"] = None
    assert json.loads(as_json(OUTCOME, exclude=PER_CALL)) == stored
    # An outcome stored before then reads back with neither (no account named).
    read = from_data(Outcome, json.loads(STORED_BY_PYDANTIC))
    assert read == Outcome(
        **{**as_data(OUTCOME, PER_CALL), "contacts": OUTCOME.contacts, "purged": OUTCOME.purged}
    )
    assert isinstance(read.contacts[0], ContactResult) and isinstance(read.purged[0], Purged)


def test_the_idempotency_record_keeps_the_whole_outcome():
    # What the idempotency table keeps is as_data's dict, and from_data rebuilds every part.
    assert from_data(Outcome, json.loads(json.dumps(as_data(OUTCOME)))) == OUTCOME
