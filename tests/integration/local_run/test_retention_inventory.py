"""A clinic's second year: does every store this stack owns stop growing?

The whole local run (template.yaml on moto, its tables' TimeToLiveSpecification included, the
emulator as Cliniko over HTTP, the SQS event-source consumers), driven through every path that
writes to a table: submissions from four providers (created, a duplicate, an update, a browser
post), one parked, one dead-lettered through Cliniko's 500s and replayed with
`dead_letters.py replay --all`, a change feed poll, a cleanup run that archives (CleanupDryRun
"false"), an erasure by email through the API and the daily overdue check.

Then every item of every table is read. An item of a table with a TTL must carry the table's
TTL attribute as a number of epoch seconds (a string, or milliseconds, is never deleted: the
table grows for ever) no later than its kind's documented window (README "Architecture", What
is kept). The items without one are exactly those README keeps on purpose: the erasure audit
trail and the ledger (tables without a TTL), and one lock and one pointer per cleanup rules
file and one cursor per feed account (a handful, whatever the volume).
"""

from __future__ import annotations

import io
import json
import time
from collections.abc import Iterator
from typing import Any

import boto3
import httpx
import pytest
import yaml
from cliniko_automations.cleanup.runs import RETENTION_DAYS
from cliniko_automations.common.submission_store import BODY_TTL_SECONDS, TOMBSTONE_TTL_SECONDS
from cliniko_automations.erasure.idempotency import EXPIRES_AFTER
from cliniko_automations.intake_worker.store import LONG_TTL_SECONDS
from cliniko_emulator import EmulatorControl
from local_run import demo
from local_run.consumers import sqs_event
from local_run.system import LocalSystem

from tests.integration.intake_worker.resources import load_dead_letters_script
from tests.integration.local_run.test_erasure_inventory import (
    EMAIL,
    LAST,
    PERSON,
    dead_letter_one,
    html_form,
    queued,
    secret_of,
    send,
    tally,
    typeform,
    webflow,
)
from tests.integration.local_run.test_local_run import signed

DAY = 24 * 3600
# The window of each kind of item (the key's prefix up to its first "#"), in seconds from
# its write: README "Architecture", What is kept.
WINDOWS = {
    "SubmissionStoreTable": {
        "submission": BODY_TTL_SECONDS,  # 16 days
        "tombstone": TOMBSTONE_TTL_SECONDS,  # 21 days
        "first-seen": TOMBSTONE_TTL_SECONDS,
        "source-hour": 2 * DAY,  # a form source's count for its hourly ceiling
    },
    "IdempotencyTable": {
        "intake-claim": 120,  # the worker's CLAIM_TTL_SECONDS, at most
        "intake-intent": BODY_TTL_SECONDS,  # 14 days, 16 from a failed attempt or parking
        "intake-failure": LONG_TTL_SECONDS,  # 14 days
        "intake-worker": DAY,  # Powertools' record of a submission done (IDEMPOTENCY_TTL)
        "erasure-request": int(EXPIRES_AFTER.total_seconds()),  # 30 days
    },
    "CleanupRunsTable": {"run": RETENTION_DAYS * DAY},  # 90 days
    "ChangeFeedTable": {"contact": 400 * DAY},  # STATE_DAYS
    "RateLimitTable": {"": DAY},  # one item per key, a day after its last booking
}
# Kept without an expiry, bounded by the configuration, not by use: one lock and one pointer
# to the latest run per cleanup rules file, one cursor per feed account (a lease is deleted
# at the end of each poll).
BOUNDED = {"CleanupRunsTable": {"lock", "rule-set"}, "ChangeFeedTable": {"cursor"}}
# Kept on purpose, for good (README "Erasure on request", "9. Tear down"): no TTL at all.
KEPT = {"ErasureAuditTable", "LedgerTable"}


@pytest.fixture
def system(aws, cliniko, tmp_path, monkeypatch) -> Iterator[LocalSystem]:
    rules = tmp_path / "cleanup_rules.yaml"
    rule = {"name": "one-person", "account": "main-clinic"}
    rule["where"] = [{"field": "email", "op": "equals", "value": EMAIL}]
    rules.write_text(yaml.safe_dump({"rules": [rule]}))
    monkeypatch.setenv("CLEANUP_RULES_FILE", str(rules))
    local = LocalSystem(
        moto_endpoint=aws,
        emulator_url=cliniko.url,
        state_dir=tmp_path / "state",
        log=io.StringIO(),
        parameter_overrides={"CleanupDryRun": "false"},
    ).start()
    try:
        yield local
    finally:
        local.stop()


def replay_dead_letters(system: LocalSystem, monkeypatch) -> None:
    for name, value in system.operator_environment().items():
        monkeypatch.setenv(name, value)
    out = io.StringIO()
    assert load_dead_letters_script().main(["replay", "--all"], out=out) == 0, out.getvalue()
    worker = system.queue_url("SubmissionQueue")
    (consumer,) = [c for c in system.consumers if c.queue_url == worker]
    sqs = system.sqs()
    # The consumers were stopped: the replayed message received and deleted as they would.
    batch = sqs.receive_message(QueueUrl=worker, MaxNumberOfMessages=10).get("Messages", [])
    assert len(batch) == 1
    answer = consumer.function.invoke(sqs_event(batch, consumer.queue_arn, consumer.region))
    assert not answer.get("batchItemFailures"), answer
    sqs.delete_message(QueueUrl=worker, ReceiptHandle=batch[0]["ReceiptHandle"])
    assert queued(system, system.queue_url("SubmissionDeadLetterQueue")) == 0


def kind_of(item: dict[str, Any]) -> str:
    for key in ("id", "pk"):
        if key in item:
            return item[key]["S"].split("#", 1)[0] if "#" in item[key]["S"] else ""
    return ""


def expiry_faults(
    system: LocalSystem, started: int
) -> tuple[dict[str, list[str]], dict[str, set[str]]]:
    """(table -> what is wrong with its items' expiry, table -> the kinds of item read)."""
    dynamodb = boto3.client("dynamodb")
    faults: dict[str, list[str]] = {}
    read: dict[str, set[str]] = {}
    now = int(time.time())
    for logical_id, physical in system.physical.items():
        if not logical_id.endswith("Table"):
            continue
        table = physical.ref
        ttl = dynamodb.describe_time_to_live(TableName=table)["TimeToLiveDescription"]
        attribute = ttl.get("AttributeName") if ttl["TimeToLiveStatus"] == "ENABLED" else None
        for page in dynamodb.get_paginator("scan").paginate(TableName=table):
            for item in page["Items"]:
                kind = kind_of(item)
                read.setdefault(logical_id, set()).add(kind)
                problem = None
                if attribute is None:
                    if logical_id not in KEPT:
                        problem = "a table without a TTL"
                elif kind in BOUNDED.get(logical_id, ()):
                    continue
                elif attribute not in item:
                    problem = f"no {attribute}"
                elif set(item[attribute]) != {"N"}:
                    problem = f"{attribute} not a number: {item[attribute]}"
                elif kind not in WINDOWS.get(logical_id, {}):
                    problem = "a kind of item no window is documented for"
                else:
                    expires = int(item[attribute]["N"])
                    window = WINDOWS[logical_id][kind]
                    if not started <= expires <= now + window:
                        problem = f"{attribute} {expires - now:+d} s from now, window {window}"
                if problem:
                    faults.setdefault(logical_id, []).append(f"{kind or item}: {problem}")
    return faults, read


@pytest.mark.slow
def test_every_item_written_expires_within_its_window_but_what_is_kept_on_purpose(
    system, cliniko, monkeypatch, request
) -> None:
    started = int(time.time())
    control = EmulatorControl(system.emulator_url)
    request.addfinalizer(control.close)
    json_secret = secret_of(system, "partner-json")

    # Created (north-clinic's json, twice: a duplicate; main-clinic's Typeform), updated
    # (Webflow), posted from the website's form.
    first = demo.json_delivery(json_secret, PERSON)
    send(system, first)
    send(system, first)
    send(system, typeform(secret_of(system, "referral-typeform")))
    assert system.drain(90)
    send(system, webflow(secret_of(system, "website-webflow")))
    send(system, html_form(system))
    assert system.drain(90)
    # Parked: staff made a second contact with the email in main-clinic.
    control.seed(shard="au1", contacts=[{"first_name": "Zeph", "last_name": LAST, "email": EMAIL}])
    send(system, tally(secret_of(system, "gp-referral-tally")))
    assert system.drain(90)
    assert queued(system, system.queue_url("ParkedQueue")) == 1
    # Dead-lettered (failure records, the body kept), then replayed by the operator's CLI.
    other = {**PERSON, "email": "second.year@example.org", "occupation": "Cartographer"}
    dead_letter_one(system, control, demo.json_delivery(json_secret, other))
    replay_dead_letters(system, monkeypatch)

    # The change feed polls every account; the cleanup archives the person in main-clinic.
    assert system.fire("ChangeFeedFunction")["accounts"]
    run = system.fire("CleanupStateMachine")
    assert run["status"] == "finished" and run["last"]["archived"] >= 1, run
    # An erasure by email, then the daily overdue check.
    url = f"{system.gateway.url}/erasure-requests"
    body = json.dumps(
        {
            "request_id": "second-year",
            "email": EMAIL,
            "erase_all_matches": True,
            "reason": "GDPR art. 17",
        }
    ).encode()
    answer = httpx.post(url, content=body, headers=signed("POST", url, body), timeout=120)
    assert answer.status_code == 200, answer.text
    system.fire("ErasureOverdueFunction")

    faults, read = expiry_faults(system, started)
    assert faults == {}, json.dumps(faults, indent=1)
    # Every kind of item that expires was written, so every one was checked (a run's lock
    # is gone once the run ends; a cursor and the pointer to the latest run stay).
    assert {table: set(kinds) for table, kinds in read.items()} == {
        **{table: set(kinds) for table, kinds in WINDOWS.items()},
        "CleanupRunsTable": {"run", "rule-set"},
        "ChangeFeedTable": {"contact", "cursor"},
        "ErasureAuditTable": {""},
        "LedgerTable": {""},
    }
