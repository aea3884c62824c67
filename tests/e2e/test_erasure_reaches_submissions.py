"""Erasure reaches everywhere this system keeps the person, and keeps them erased.

The whole path: the intake API (claim check: bodies in the submission store, ids in the
queues), the worker, scripts/dead_letters.py, scripts/erasure.py in local mode, moto and the
Cliniko emulator over HTTP. A person's submission dead-letters, another is parked, the person
is erased by email, the dead letters are replayed and the parked one sent back: nobody is
created again and no queue or table holds a personal value. A provider's late redelivery of a
submission made before the erasure is dropped; a submission made after it creates a contact.
"""

from __future__ import annotations

import io
import json
from typing import Any

import boto3
import pytest
from cliniko_automations.common.person_keys import contact_keys

from tests.e2e.test_erasure_cli import load_cli
from tests.fixtures.apigw import form_post_event
from tests.fixtures.aws import every_message
from tests.integration.erasure import stack as erasure
from tests.integration.erasure.stack import PERSONAL as SEEDED
from tests.integration.erasure.stack import personal_values, whole_values_in
from tests.integration.intake_worker.e2e_world import PERSONAL, build_intake_path, delivery
from tests.integration.intake_worker.resources import (
    MAX_RECEIVE_COUNT,
    captured_logs,
    load_dead_letters_script,
)
from tests.unit.intake_api import samples

erasure_stack = erasure.erasure_stack  # the fixture

EMAIL = samples.EMAIL


def answered_id(answer: dict[str, Any]) -> str:
    assert answer["statusCode"] == 202, answer
    return json.loads(answer["body"])["submission_id"]


def every_item(table: str) -> list[dict[str, Any]]:
    pages = boto3.client("dynamodb").get_paginator("scan").paginate(TableName=table)
    return [item for page in pages for item in page["Items"]]


def phones() -> list[str]:
    return [phone["number"] for phone in SEEDED["phone_numbers"]]


def values_found(text: str) -> list[str]:
    return whole_values_in(text, [*PERSONAL, *personal_values(SEEDED)])


def test_the_leak_search_finds_whole_values_only() -> None:
    post_code, email = SEEDED["post_code"], SEEDED["email"]
    found = values_found(json.dumps({"body": f"city=Wollongbar&post_code={post_code}"}))
    assert found == sorted(["Wollongbar", post_code])
    found = values_found(json.dumps({"Body": json.dumps({"email": email.upper()})}))
    assert {email, email.lower()} <= set(found)
    assert values_found(f"sha256:9f{post_code}0c, id 1{post_code}2, {post_code}ab") == []
    assert values_found(f"request 3f2a9c1e-{post_code}-4b1d-9e2f-0c4d5e6f7a8b") == []


def dropped(logs: Any) -> list[tuple[str, str]]:
    return [(r["submission_id"], r["reason"]) for r in logs.json("submission dropped")]


@pytest.fixture
def world(erasure_stack, cliniko, monkeypatch, tmp_path):
    # After the erasure stack: the intake's environment (its submission store and pepper) is
    # what scripts/erasure.py then reads, as with one deployed stack.
    path = build_intake_path(cliniko, monkeypatch, tmp_path)
    monkeypatch.setenv("DEAD_LETTER_QUEUE_URL", path.stack.dead_letter_queue_url)
    return path


def test_an_erased_person_stays_erased_everywhere(world, erasure_stack, cliniko, capsys):
    path, stack = world, world.stack

    # 1. A submission the worker cannot finish (Cliniko fails every create) dead-letters.
    cliniko.control.set_faults(error_rate=1.0, statuses=[500], methods=["POST"])
    failed_id = answered_id(path.post(delivery("typeform")))
    path.work(rounds=MAX_RECEIVE_COUNT + 3)
    cliniko.control.clear_faults()
    assert stack.counts(stack.dead_letter_queue_url) == (1, 0)

    # 2. Another of theirs is parked: two Cliniko contacts share the email.
    contact_ids = sorted([erasure_stack.seed(email=EMAIL), erasure_stack.seed(email=EMAIL)])
    parked_id = answered_id(path.post(delivery("json")))
    path.work()
    assert stack.counts(stack.parked_queue_url) == (1, 0)
    assert len(cliniko.control.contacts()) == 2

    # 3. Erase by email.
    cli = load_cli()
    code = cli.main(
        [
            *("request", "--email", EMAIL, "--all-matches"),
            *("--reason", "GDPR art. 17, ticket 9", "--request-id", "erase-1"),
        ]
    )
    out = capsys.readouterr().out
    assert code == 0, out
    assert "Purged from submission_store: 2 stored submission(s)" in out
    assert "Receipt: request erase-1, erased" in out

    # 4. Replay every dead letter, and send the parked submission back to the queue.
    dead_letters = load_dead_letters_script()
    listing = io.StringIO()
    assert dead_letters.main(["list"], out=listing) == 0
    assert "gone (erased or expired)" in listing.getvalue()
    # A letter whose body is gone is not replayed (the worker would drop it) but kept.
    capsys.readouterr()
    assert dead_letters.main(["replay", "--all"], out=io.StringIO()) == 1
    assert "its body is gone (erased or expired)" in capsys.readouterr().err
    assert sum(stack.counts(stack.dead_letter_queue_url)) == 1
    for message in stack.drain(stack.parked_queue_url):
        stack.sqs.send_message(QueueUrl=stack.queue_url, MessageBody=message["Body"])
        stack.sqs.delete_message(
            QueueUrl=stack.parked_queue_url, ReceiptHandle=message["ReceiptHandle"]
        )
    with captured_logs("intake") as logs:
        assert path.work() == 1
    assert dropped(logs) == [(parked_id, "submission_body_gone")]

    # Zero contacts recreated: the two scrubbed and archived ones, nothing else.
    contacts = cliniko.control.contacts(include_archived=True)
    assert sorted(str(c["id"]) for c in contacts) == contact_ids
    assert all(c["archived_at"] and not c["email"] for c in contacts)

    # Zero personal values in any queue or table.
    queues = [stack.queue_url, stack.dead_letter_queue_url, stack.parked_queue_url]
    for queue_url in queues:
        for message in every_message(stack.sqs, queue_url, MessageAttributeNames=["All"]):
            assert values_found(json.dumps(message)) == [], queue_url
    tables = [
        stack.idempotency_table,
        stack.ledger_table,
        stack.submission_table,
        erasure_stack.table_name,
    ]
    for table in tables:
        assert values_found(json.dumps(every_item(table), default=str)) == [], table

    # The audit trail lists what was purged: the store, the count, the submission ids.
    [purge] = [i for i in erasure_stack.audit_items() if i["sk"].endswith("#purge")]
    [purged] = purge["purged"]
    assert purged["store"] == "submission_store"
    assert int(purged["count"]) == 2
    assert purged["submission_ids"] == sorted([failed_id, parked_id])
    # The email's, and the name-and-phone keys of the contacts (both hold the same details).
    keys = contact_keys("any pepper", EMAIL, SEEDED["first_name"], SEEDED["last_name"], phones())
    assert int(purge["tombstones"]) == len(keys.tombstone_keys) > 1

    # 5. A provider redelivers the pre-erasure submission days later: dropped, nobody created.
    with captured_logs("intake") as logs:
        late_id = answered_id(path.post(delivery("typeform")))
        assert path.work() == 1
    assert dropped(logs) == [(late_id, "erased")]
    assert len(cliniko.control.contacts(include_archived=True)) == 2
    assert every_item(stack.submission_table) == [
        i for i in every_item(stack.submission_table) if not i["id"]["S"].startswith("submission#")
    ]

    # 6. A new submission after the erasure (its own key, made now) creates a contact.
    body = samples.json_body(email=EMAIL)
    headers = {
        "Content-Type": "application/json",
        "X-Signature": samples.t_v1_signature(body),
        "Idempotency-Key": "partner-order-after-erasure",
    }
    answered_id(path.post(form_post_event("partner-json", body, headers)))
    assert path.work() == 1
    [created] = [c for c in cliniko.control.contacts() if str(c["id"]) not in contact_ids]
    assert created["email"].lower() == EMAIL


def test_an_erasure_reaches_the_submissions_of_a_person_without_an_email(
    world, erasure_stack, cliniko, capsys
):
    # Without an email the worker knows a person by name and phone; their stored submissions
    # were out of the erasure's reach (found by email hash alone), and a dead-letter replay or
    # a provider's redelivery brought them back after the erasure.
    path, stack = world, world.stack
    # Two namesakes the worker tells from them, whose submissions must outlive the erasure:
    # one with another number that ends in the same eight digits as theirs, one with their
    # number and an email of their own (the worker knows that one by the email).
    other_number, other_email = "(02) 1298 7654", "m.okonkwo-lindqvist@clinic.example"

    def post(mobile: str, key: str, email: str | None = None) -> str:
        body = samples.json_body(email=email, mobile=mobile)
        headers = {
            "Content-Type": "application/json",
            "X-Signature": samples.t_v1_signature(body),
            "Idempotency-Key": key,
        }
        return answered_id(path.post(form_post_event("partner-json", body, headers)))

    # Their submission and the namesakes' dead-letter: every create fails.
    cliniko.control.set_faults(error_rate=1.0, statuses=[500], methods=["POST"])
    theirs = post(samples.PHONE, "no-email-theirs")
    namesakes = [post(other_number, "namesake"), post(samples.PHONE, "with-email", other_email)]
    path.work(rounds=MAX_RECEIVE_COUNT + 3)
    cliniko.control.clear_faults()
    assert stack.counts(stack.dead_letter_queue_url) == (3, 0)
    # Staff typed the person into Cliniko themselves, as "0412 987 654".
    contact_id = erasure_stack.seed(
        first_name=samples.FIRST.upper(),
        last_name=samples.LAST,
        email="",
        phone_numbers=[{"number": "0412 987 654", "phone_type": "Mobile"}],
    )

    code = load_cli().main(
        [
            *("request", "--contact-id", contact_id),
            *("--reason", "GDPR art. 17, ticket 12", "--request-id", "erase-no-email"),
        ]
    )
    assert code == 0, capsys.readouterr().out

    # Their body is gone, the namesakes' are kept; the trail names what was purged.
    [purge] = [i for i in erasure_stack.audit_items() if i["sk"].endswith("#purge")]
    [purged] = purge["purged"]
    assert purged["submission_ids"] == [theirs]
    keys = contact_keys("any pepper", None, samples.FIRST, samples.LAST, ["0412 987 654"])
    assert int(purge["tombstones"]) == len(keys.tombstone_keys)
    bodies = {i["id"]["S"] for i in every_item(stack.submission_table)}
    assert "submission#" + theirs not in bodies
    assert {"submission#" + n for n in namesakes} <= bodies

    # A redelivery of their submission, made before the erasure, is dropped; the namesakes'
    # replays create the namesakes.
    with captured_logs("intake") as logs:
        again = post(samples.PHONE, "no-email-theirs")
        assert path.work() == 1
    assert dropped(logs) == [(again, "erased")]
    dead_letters = load_dead_letters_script()
    assert dead_letters.main(["replay", "--all"], out=io.StringIO()) == 1  # theirs: body gone
    assert path.work() == 2
    active = [c for c in cliniko.control.contacts() if not c["archived_at"]]
    assert sorted((c["phone_numbers"][0]["number"], c["email"]) for c in active) == sorted(
        [(other_number, ""), (samples.PHONE, other_email)]
    )
