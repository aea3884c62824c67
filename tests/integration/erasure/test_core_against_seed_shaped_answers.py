"""The erasure core against a Cliniko that answers as the seed's examples do: list items without
doctor_type (GET /contacts/:id has it), and a JSON escape (a lone surrogate) in a name."""

from __future__ import annotations

import hashlib
import hmac
from typing import Any

import boto3
from cliniko_automations.common.person_keys import PersonKeys, submission_keys
from cliniko_automations.common.submission_store import DynamoSubmissionStore
from cliniko_automations.erasure.models import ErasureRequest

from tests.integration.erasure import stack
from tests.integration.erasure.test_core_against_emulator import CALLER, make_eraser

erasure_stack = stack.erasure_stack  # the fixture


class SeedShapedCliniko:
    """One contact; list items leave out doctor_type and country_code, as the seed's GET
    /contacts example does; writes as documented (null clears doctor_type)."""

    def __init__(self, **fields: Any) -> None:
        self.contact = {"id": "1390712996921091568", "archived_at": None, **fields}
        self.writes: list[str] = []

    def expect_requests(self, count: int) -> None:
        pass

    def list_contacts(self, filters: Any = (), sort: Any = None) -> list[dict[str, Any]]:
        item = {k: v for k, v in self.contact.items() if k not in ("doctor_type", "country_code")}
        return [item]

    def get_contact(self, contact_id: str, *, include_archived: bool = False) -> dict[str, Any]:
        self.writes.append("get")
        return {k: v for k, v in self.contact.items() if k != "country_code"}

    def update_contact(self, contact_id: str, body: Any, *, include_archived: bool = False):
        self.writes.append("update")
        self.contact.update(body)
        return self.contact

    def archive_contact(self, contact_id: str) -> None:
        self.writes.append("archive")
        self.contact["archived_at"] = "2026-01-01T00:00:00Z"


def grizelda(
    email: str,
    phone: str = "0491 570 156",
    first_name: str = "Grizelda",
    cliniko: type[SeedShapedCliniko] = SeedShapedCliniko,
) -> Any:
    """The person as Cliniko's seed-shaped answers show her: a mobile, this email; answered by
    `cliniko` (a subclass that fails some of its requests)."""
    return cliniko(
        first_name=first_name,
        last_name="Thistlewaite",
        email=email,
        phone_numbers=[{"number": phone, "phone_type": "Mobile"}],
    )


def ask(**values: Any) -> ErasureRequest:
    return ErasureRequest.parse({"reason": "GDPR art. 17", **values})


def test_a_doctor_type_a_list_item_does_not_show_is_still_cleared(erasure_stack):
    # Archived, and blanked by hand except its doctor type (which the list does not show).
    cliniko = SeedShapedCliniko(
        first_name="Erased", email="", doctor_type="specialist", archived_at="2025-01-01T00:00:00Z"
    )
    outcome = make_eraser(erasure_stack, cliniko).submit(
        ask(request_id="seed-dt", contact_id=cliniko.contact["id"]), CALLER
    )
    assert outcome.result == "erased"
    assert cliniko.contact["doctor_type"] is None, (outcome.contacts, cliniko.writes)


def test_a_lone_surrogate_in_a_name_from_cliniko_is_no_500(erasure_stack):
    # json.loads turns the escape "\ud83d" in Cliniko's answer into a lone surrogate.
    cliniko = grizelda(stack.PERSONAL["email"], first_name="Gri\ud83dzelda")
    # With the submission store, as deployed: the purge keys the contact's name and phones.
    store = DynamoSubmissionStore(
        boto3.client("dynamodb"),
        erasure_stack.submission_table,
        claims_table=erasure_stack.idempotency_table,
    )
    eraser = make_eraser(erasure_stack, cliniko, submissions=store)
    outcome = eraser.submit(ask(request_id="seed-sur", email=stack.PERSONAL["email"]), CALLER)
    assert outcome.result == "erased", outcome


def keyed(material: str) -> str:
    return hmac.new(stack.PEPPER.encode(), material.encode(), hashlib.sha256).hexdigest()


def test_a_body_stored_before_apostrophes_were_folded_is_purged(erasure_stack):
    # Stored (parked, dead-lettered) by the release before, which keyed a name with its
    # apostrophe as typed: "O’Brien" from a phone. The keys are that release's, written out.
    store = DynamoSubmissionStore(
        boto3.client("dynamodb"),
        erasure_stack.submission_table,
        claims_table=erasure_stack.idempotency_table,
    )
    name, number = "sean\0o\u2019brien", "491570156"  # as phone_digits keys the number
    store.put(
        "sub-before",
        '{"stored": "before the apostrophes were folded"}',
        PersonKeys(None, keyed(f"name\0{name}"), (keyed(f"number\0{name}\0{number}"),)),
    )
    cliniko = SeedShapedCliniko(
        first_name="Sean",
        last_name="O\u2019Brien",
        email="",
        phone_numbers=[{"number": "0491 570 156", "phone_type": "Mobile"}],
    )
    eraser = make_eraser(erasure_stack, cliniko, submissions=store)
    outcome = eraser.submit(ask(request_id="seed-apos", contact_id=cliniko.contact["id"]), CALLER)
    assert outcome.result == "erased", outcome
    assert store.get("sub-before") is None
    # And its tombstone meets a submission stored from now on (keyed with "'" folded).
    later = submission_keys(stack.PEPPER, None, "Sean", "O\u2019Brien", ["0491 570 156"])
    assert store.erased_at(later.tombstone_keys) is not None


def test_a_dry_run_keeps_the_stored_submissions_and_tombstones_nobody(erasure_stack):
    store = DynamoSubmissionStore(
        boto3.client("dynamodb"),
        erasure_stack.submission_table,
        claims_table=erasure_stack.idempotency_table,
    )
    email, phones = stack.PERSONAL["email"].lower(), ["0491 570 156"]
    keys = submission_keys(stack.PEPPER, email, "Grizelda", "Thistlewaite", phones)
    store.put("sub-kept", '{"stored": "a submission of theirs"}', keys)
    cliniko = grizelda(email, phones[0])
    eraser = make_eraser(erasure_stack, cliniko, submissions=store)
    outcome = eraser.submit(ask(request_id="seed-dry", email=email, dry_run=True), CALLER)
    assert (outcome.result, outcome.purged, cliniko.writes) == ("dry_run", [], [])
    assert store.get("sub-kept") is not None
    assert store.erased_at(keys.tombstone_keys) is None
