"""scripts/erasure.py: receipts, due dates and extensions, the tamper-evident trail (verify),
and a misconfigured Cliniko key or user named rather than retried. Local mode, against the
Cliniko emulator over HTTP and moto's DynamoDB."""

from __future__ import annotations

import json
import uuid
from decimal import Decimal

import boto3
import pytest
from cliniko_automations.erasure.trail import GENESIS_HASH, record_hash

from tests.e2e.test_erasure_cli import load_cli
from tests.integration.erasure import stack

erasure_stack = stack.erasure_stack  # the fixture


@pytest.fixture
def cli():
    return load_cli()


def run(cli, capsys, *argv: str) -> tuple[int, str]:
    code = cli.main(["--caller", "arn:aws:iam::123456789012:user/dpo", *argv])
    return code, capsys.readouterr().out


def test_status_answers_with_due_date_and_receipt_and_verify_finds_a_changed_record(
    erasure_stack, cli, capsys
):
    contact_id = erasure_stack.seed()
    code, out = run(
        cli,
        capsys,
        "request",
        "--contact-id",
        contact_id,
        "--reason",
        "art. 17",
        "--request-id",
        "proof-1",
    )
    assert code == 0, out
    code, out = run(cli, capsys, "--json", "status", "proof-1")
    body = json.loads(out)
    receipt = body["receipt"]
    assert receipt["request_id"] == "proof-1" and receipt["outcome"] == "erased"
    assert receipt["completed_at"] == body["finished_at"]
    assert body["due_at"].endswith("T23:59:59Z")
    outcome_item = next(i for i in erasure_stack.audit_items() if i["sk"] == "999#outcome")
    assert receipt["chain_head"] == outcome_item["hash"]

    code, out = run(cli, capsys, "verify", "proof-1")
    assert code == 0 and "audit trail intact" in out

    # Someone with write access to the table edits a record: verify says which, and fails.
    boto3.client("dynamodb").update_item(
        TableName=erasure_stack.table_name,
        Key={"request_id": {"S": "proof-1"}, "sk": {"S": f"001#contact#main-clinic#{contact_id}"}},
        UpdateExpression="SET verified = :f",
        ExpressionAttributeValues={":f": {"BOOL": False}},
    )
    code, out = run(cli, capsys, "verify", "proof-1")
    assert code == 1
    assert "NOT INTACT" in out
    # #1 received, #2 lookup, #3 purge (the contact's stored submissions), #4 the contact.
    assert f"record #4 (001#contact#main-clinic#{contact_id}) was changed" in out
    assert "Refused" not in out

    # A deleted record is found too, by the gap it leaves; --all checks every request.
    run(
        cli,
        capsys,
        "request",
        "--email",
        "nobody@example.com",
        "--reason",
        "t 2",
        "--request-id",
        "proof-2",
    )
    boto3.client("dynamodb").delete_item(
        TableName=erasure_stack.table_name,
        Key={"request_id": {"S": "proof-2"}, "sk": {"S": "001#lookup"}},
    )
    code, out = run(cli, capsys, "verify", "--all")
    assert code == 1
    assert "Request proof-1: audit trail NOT INTACT" in out
    assert "Request proof-2: audit trail NOT INTACT" in out
    assert "record #2 is missing" in out


def test_an_open_request_is_extended_once_with_a_recorded_reason(erasure_stack, cli, capsys):
    contact_id = erasure_stack.seed()
    erasure_stack.cliniko.control.set_faults(error_rate=1.0, statuses=[500])
    code, out = run(
        cli,
        capsys,
        "--json",
        "request",
        "--contact-id",
        contact_id,
        "--reason",
        "art. 17",
        "--request-id",
        "slow-1",
    )
    erasure_stack.cliniko.control.clear_faults()
    first_due = json.loads(out)["due_at"]

    code, out = run(cli, capsys, "--json", "extend", "slow-1", "--reason", "complex, ticket 5")
    body = json.loads(out)
    assert code == 3 and body["status"] == "failed"  # still open: not completed
    assert body["due_extended"] is True and body["due_at"] > first_due
    [extension] = [i for i in erasure_stack.audit_items() if i["sk"] == "000#extension"]
    assert extension["reason"] == "complex, ticket 5"
    assert extension["previous_due_at"] == first_due

    code, out = run(cli, capsys, "extend", "slow-1", "--reason", "again")
    assert code == 3 and "already extended" in out
    code, out = run(cli, capsys, "status", "slow-1")
    assert "(extended)" in out
    code, out = run(cli, capsys, "verify", "slow-1")
    assert code == 0, out


def test_a_dry_run_or_a_completed_request_is_not_extended(erasure_stack, cli, capsys):
    contact_id = erasure_stack.seed()
    run(
        cli,
        capsys,
        "request",
        "--contact-id",
        contact_id,
        "--reason",
        "t",
        "--dry-run",
        "--request-id",
        "dry-1",
    )
    code, out = run(cli, capsys, "extend", "dry-1", "--reason", "x")
    assert code == 3 and "a dry run" in out
    run(cli, capsys, "request", "--contact-id", contact_id, "--reason", "t", "--request-id", "d-1")
    code, out = run(cli, capsys, "extend", "d-1", "--reason", "x")
    assert code == 3 and "already completed" in out


def test_a_key_cliniko_refuses_is_named_not_retried(erasure_stack, cli, capsys):
    contact_id = erasure_stack.seed()
    # A key Cliniko does not know (as for a key sent to another shard): 401.
    boto3.client("secretsmanager").put_secret_value(
        SecretId=erasure_stack.key_secret, SecretString=f"unknown-{uuid.uuid4().hex}-au1"
    )
    code, out = run(
        cli, capsys, "request", "--contact-id", contact_id, "--reason", "t", "--request-id", "k-1"
    )
    assert code == 1
    assert "cliniko_Unauthorized" in out
    assert "belongs to another shard" in out
    assert "send it again with the same request id to retry" not in out
    assert "will fail the same way until that is fixed" in out
    code, out = run(cli, capsys, "status", "k-1")
    assert "belongs to another shard" in out


def test_a_key_whose_user_may_not_edit_is_named(erasure_stack, cli, capsys):
    contact_id = erasure_stack.seed()
    read_only = f"readonly-{uuid.uuid4().hex}-au1"
    erasure_stack.cliniko.control.add_key(read_only, read_only=True)
    boto3.client("secretsmanager").put_secret_value(
        SecretId=erasure_stack.key_secret, SecretString=read_only
    )
    code, out = run(
        cli, capsys, "request", "--contact-id", contact_id, "--reason", "t", "--request-id", "k-2"
    )
    assert code == 1
    assert "cliniko_Forbidden" in out
    assert "may view, create, edit and archive contacts" in out


def _erase(erasure_stack, cli, capsys, request_id: str, *, cliniko_fails: bool = False) -> None:
    contact_id = erasure_stack.seed()
    if cliniko_fails:
        erasure_stack.cliniko.control.set_faults(error_rate=1.0, statuses=[500])
    run(
        cli,
        capsys,
        "request",
        "--contact-id",
        contact_id,
        "--reason",
        "t",
        "--request-id",
        request_id,
    )
    erasure_stack.cliniko.control.clear_faults()


def _put(erasure_stack, item: dict) -> None:
    boto3.resource("dynamodb").Table(erasure_stack.table_name).put_item(Item=item)


def test_a_record_added_outside_the_chain_is_found(erasure_stack, cli, capsys):
    # An open request (Cliniko failed): someone forges an extension at place 0, below the
    # chain's first record. The status believes it; verify must not.
    _erase(erasure_stack, cli, capsys, "open-1", cliniko_fails=True)
    forged = {"request_id": "open-1", "sk": "000#extension", "record": "extension"}
    _put(erasure_stack, {**forged, "due_at": "2099-12-31T23:59:59Z", "seq": 0, "hash": "x"})
    code, out = run(cli, capsys, "verify", "open-1")
    assert code == 1
    assert "record 000#extension claims no place in the chain" in out


def test_a_rewritten_trail_cannot_keep_the_receipt_s_head_in_a_decoy(erasure_stack, cli, capsys):
    _erase(erasure_stack, cli, capsys, "done-1")
    code, out = run(cli, capsys, "--json", "status", "done-1")
    head = json.loads(out)["receipt"]["chain_head"]
    # Every record rewritten and hashed again in order: only the receipt's head can tell,
    # so it is kept in an item at place 0.
    items = sorted(
        (i for i in erasure_stack.audit_items() if i["request_id"] == "done-1"),
        key=lambda i: int(i["seq"]),
    )
    previous = GENESIS_HASH
    for item in items:
        if item["sk"] == "000#received":
            item["reason"] = "rewritten"
        item["prev_hash"] = previous
        content = {k: v for k, v in item.items() if k not in ("request_id", "sk", "hash")}
        item["hash"] = previous = record_hash("done-1", item["sk"], content)
        _put(erasure_stack, item)
    code, out = run(cli, capsys, "verify", "done-1")
    assert code == 0  # unkeyed hashes: without the receipt, a whole rewrite is consistent
    _put(erasure_stack, {"request_id": "done-1", "sk": "000#note", "seq": 0, "hash": head})
    code, out = run(cli, capsys, "verify", "done-1", "--receipt-head", head)
    assert code == 1
    assert "the receipt's chain head is in no record" in out


@pytest.mark.parametrize(
    "change",
    [
        {"seq": "two"},
        {"seq": Decimal("1e30")},
        {"record": b"lookup"},
        {"contact_ids": {"1", "2"}},
    ],
    ids=["seq-text", "seq-far-off", "binary", "string-set"],
)
def test_a_record_of_a_shape_the_trail_never_writes_is_reported_in_one_line(
    erasure_stack, cli, capsys, change
):
    _erase(erasure_stack, cli, capsys, "m-1")
    [lookup] = [i for i in erasure_stack.audit_items() if i["sk"] == "001#lookup"]
    _put(erasure_stack, {**lookup, **change})
    code, out = run(cli, capsys, "verify", "m-1")
    assert code == 1
    assert "NOT INTACT" in out and len(out.splitlines()) < 8


@pytest.mark.parametrize("place", ["link#1000000", "link#\u00b2"])
def test_a_claimed_place_far_off_or_not_a_number_is_reported_in_one_line(
    erasure_stack, cli, capsys, place
):
    _erase(erasure_stack, cli, capsys, "big-1")
    _put(erasure_stack, {"request_id": "big-1", "sk": place})
    code, out = run(cli, capsys, "verify", "big-1")
    assert code in (0, 1) and len(out.splitlines()) < 5
