"""An erasure by email and the intake worker meeting on one person (common/identity_claims.py):
the whole path (intake API, SQS, the worker, scripts/erasure.py in local mode), moto and the
Cliniko emulator over HTTP.

- A create whose answer was lost may still be saved by Cliniko: the worker keeps the person
  claimed while it may, so an erasure does not look them up too early and miss the contact.
- DynamoDB refuses a write of an item a transaction includes (TransactionConflictException,
  which moto never answers and botocore does not retry): the worker's claim meets the
  erasure's fence so, and must neither throw away a finished create nor fail the message.
"""

from __future__ import annotations

import time
from typing import Any

import boto3
from botocore.exceptions import ClientError
from cliniko_automations.common import aws
from cliniko_automations.common.identity_claims import (
    CLAIM_PREFIX,
    LOST_CREATE_SETTLES_SECONDS,
    claim_item_key,
    name_claim,
)
from cliniko_automations.intake_worker import runtime as worker_runtime

from tests.e2e.test_erasure_cli import load_cli
from tests.e2e.test_erasure_reaches_submissions import answered_id, world  # noqa: F401
from tests.integration.erasure import stack as erasure
from tests.integration.intake_worker.e2e_world import delivery
from tests.integration.intake_worker.resources import captured_logs, emf_metrics
from tests.unit.intake_api import samples

erasure_stack = erasure.erasure_stack  # the fixture


def erase(request_id: str) -> int:
    return load_cli().main(
        [
            *("request", "--email", samples.EMAIL),
            *("--reason", "GDPR art. 17, ticket 31", "--request-id", request_id),
        ]
    )


def claims(path: Any) -> list[dict[str, Any]]:
    items = boto3.client("dynamodb").scan(TableName=path.stack.idempotency_table)["Items"]
    return [item for item in items if item["id"]["S"].startswith(CLAIM_PREFIX)]


def test_a_create_whose_answer_was_lost_keeps_the_person_from_an_erasure_until_it_settles(
    world,  # noqa: F811
    erasure_stack,
    cliniko,
    capsys,
    monkeypatch,
):
    path = world
    # As deployed (the tests' environment compresses it with the retries' backoff).
    monkeypatch.delenv("LOST_CREATE_SETTLES_SECONDS")
    answered_id(path.post(delivery("typeform")))
    # The create reaches Cliniko and the connection drops before an answer; nothing is there
    # to find yet (a busy Cliniko may still save it within its 30 s).
    cliniko.control.set_faults(fail_next=["drop"], methods=["POST"])
    with captured_logs("intake") as logs:
        path.work(rounds=1)
    [failed] = logs.json("submission attempt failed")
    assert failed["reason"] == "create_outcome_unknown"
    # The email's claim, and the name's (a submission of theirs without the email would look
    # them up by name and phone).
    kept = claims(path)
    assert len(kept) == 2, kept
    for claim in kept:
        assert int(claim["expiration"]["N"]) >= time.time() + LOST_CREATE_SETTLES_SECONDS - 5

    # An erasure of the person meanwhile does not look them up: a lookup now could miss the
    # contact Cliniko saves a moment later.
    before = len(cliniko.control.requests())
    capsys.readouterr()
    code = erase("erase-while-unsettled")
    out = capsys.readouterr().out
    assert code != 0 and "submission_in_progress" in out, out
    assert cliniko.control.requests()[before:] == []

    # Cliniko saved it after all; once the claim has lapsed, the erasure finds and erases it.
    made = cliniko.client().create_contact(
        {"first_name": "Ada", "last_name": "Lovelace", "email": samples.EMAIL}
    )
    for claim in kept:
        boto3.client("dynamodb").update_item(
            TableName=path.stack.idempotency_table,
            Key={"id": claim["id"]},
            UpdateExpression="SET expiration = :past",
            ExpressionAttributeValues={":past": {"N": "1"}},
        )
    code = erase("erase-while-unsettled")
    out = capsys.readouterr().out
    assert code == 0 and "erased" in out, out
    [stored] = cliniko.control.contacts(include_archived=True)
    assert str(stored["id"]) == str(made.id) and stored["archived_at"] and not stored["email"]


def test_an_erasure_by_contact_id_waits_for_a_worker_holding_the_contacts_name(
    world,  # noqa: F811
    erasure_stack,
    cliniko,
    capsys,
):
    # A request by contact id names no email to fence before the lookup: the purge's fence,
    # on the claims of the contact found, is what keeps a worker's update of it (matched by
    # name and phone) from landing after the scrub and writing the person back.
    path = world
    contact_id = erasure_stack.seed(
        first_name="Ada",
        last_name="Lovelace",
        email="",
        phone_numbers=[{"number": "0412 987 654", "phone_type": "Mobile"}],
    )
    held = claim_item_key(name_claim(erasure.ACCOUNT, "Ada", "Lovelace"))
    boto3.client("dynamodb").put_item(
        TableName=path.stack.idempotency_table,
        Item={**held, "expiration": {"N": str(int(time.time()) + 600)}},
    )
    before = erasure_stack.contact(contact_id)
    sent_before = len(cliniko.control.requests())
    capsys.readouterr()
    code = load_cli().main(
        [
            *("request", "--contact-id", contact_id),
            *("--reason", "GDPR art. 17, ticket 32", "--request-id", "erase-while-held"),
        ]
    )
    out = capsys.readouterr().out
    assert code != 0 and "submission_in_progress" in out, out
    assert erasure_stack.contact(contact_id) == before
    sent = cliniko.control.requests()[sent_before:]
    assert sent and all(request["method"] == "GET" for request in sent), sent

    # Let go: the same request id erases them.
    boto3.client("dynamodb").delete_item(TableName=path.stack.idempotency_table, Key=held)
    code = load_cli().main(
        [
            *("request", "--contact-id", contact_id),
            *("--reason", "GDPR art. 17, ticket 32", "--request-id", "erase-while-held"),
        ]
    )
    out = capsys.readouterr().out
    assert code == 0 and "erased" in out, out


def conflict(operation: str) -> ClientError:
    # What DynamoDB answers a PutItem, UpdateItem or DeleteItem of an item an ongoing
    # TransactWriteItems includes (here the erasure fence's ConditionCheck on the claim).
    error = {
        "Code": "TransactionConflictException",
        "Message": "Operation was rejected because there is an ongoing transaction for the item.",
    }
    return ClientError({"Error": error}, operation)


def conflicting_once(monkeypatch: Any, method: str) -> list[str]:
    """The worker's DynamoDB client answers its first write of a claim by `method` with a
    transaction conflict; the claims it did so for."""
    # The worker's wiring is cached by its settings, with the client it was made with: a test
    # before this one that had the process's clients made anew (stalled_services) left it
    # holding another client than the one patched here, and no conflict was ever raised.
    worker_runtime._runtime.cache_clear()
    dynamodb = aws.client("dynamodb", config=aws.FAIL_FAST)
    real = getattr(dynamodb, method)
    conflicts: list[str] = []

    def write(**kwargs: Any) -> Any:
        item = kwargs.get("Key") or kwargs.get("Item") or {}
        if item.get("id", {}).get("S", "").startswith(CLAIM_PREFIX) and not conflicts:
            conflicts.append(item["id"]["S"])
            raise conflict(method)
        return real(**kwargs)

    monkeypatch.setattr(dynamodb, method, write)
    return conflicts


def test_a_claim_let_go_while_a_fence_checks_it_keeps_the_create_and_frees_the_person(
    world,  # noqa: F811
    erasure_stack,
    cliniko,
    capsys,
    monkeypatch,
):
    path = world
    conflicts = conflicting_once(monkeypatch, "delete_item")
    answered_id(path.post(delivery("typeform")))
    capsys.readouterr()
    with captured_logs("intake") as logs:
        path.work()
    out = capsys.readouterr().out
    assert conflicts
    assert logs.json("submission attempt failed") == []
    [processed] = logs.json("submission processed")
    assert processed["action"] == "created" and not processed["replayed"]
    assert emf_metrics(out).get("ContactCreated") == 1
    assert claims(path) == []  # let go, not left to lapse

    code = erase("erase-after-conflict")
    out = capsys.readouterr().out
    assert code == 0 and "submission_in_progress" not in out, out


def test_a_claim_taken_while_a_fence_checks_it_waits_rather_than_fails(
    world,  # noqa: F811
    erasure_stack,
    cliniko,
    monkeypatch,
):
    path = world
    conflicts = conflicting_once(monkeypatch, "put_item")
    answered_id(path.post(delivery("typeform")))
    with captured_logs("intake") as logs:
        path.work()
    assert conflicts
    assert logs.json("submission attempt failed") == []
    assert [p["action"] for p in logs.json("submission processed")] == ["created"]
