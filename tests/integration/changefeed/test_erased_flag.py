"""An erasure, as the feed tells it: the contact's events carry `erased: true` once it holds
the scrub's values (README "Contacts change feed"), so a receiver knows to delete its copies
(GDPR Art. 17(2), 19), on the bus and in every signed webhook alike; an ordinary contact's,
a staff archive's included, carry `erased: false`. Against the emulator over HTTP, the
erasure core and moto, with the local stand-in delivering to receivers that verify each
signature."""

from __future__ import annotations

import io
import json
import time
from pathlib import Path
from typing import Any

import boto3
import pytest
from cliniko_automations.changefeed import handler
from cliniko_automations.changefeed.events import WEBHOOKS_SOURCE
from cliniko_automations.changefeed.webhook_dead_letters import main as dead_letters
from cliniko_automations.erasure.accounts import ErasureAccounts
from cliniko_automations.erasure.audit import DynamoAuditLog
from cliniko_automations.erasure.idempotency import PowertoolsOnce
from cliniko_automations.erasure.models import ErasureRequest
from cliniko_automations.erasure.workflow import Eraser

from tests.fixtures.aws import every_message
from tests.integration.changefeed.stack import (
    ACCOUNT,
    EVENT_DETAIL_KEYS,
    SCHEDULED_EVENT,
    context,
    create_feed_stack,
    delivering,
    eventbridge_refusing,
    feed_environment,
    subscribed,
)
from tests.integration.erasure import stack as erasure
from tests.integration.erasure.stack import PEPPER, PERSONAL, USER_AGENT

erasure_stack = erasure.erasure_stack  # the fixture

EVERY_KIND = "[contact.created, contact.updated, contact.archived, contact.unarchived]"
SUBSCRIBERS = f"""\
subscribers:
  - name: crm-sync
    url: https://hooks.example.com/cliniko
    events: {EVERY_KIND}
    secret: tests/webhooks/crm-sync
  - name: full-copy
    url: https://copy.example.com/in
    events: {EVERY_KIND}
    secret: tests/webhooks/full-copy
    include_fields: true
"""
CALLER = "arn:aws:iam::123456789012:user/privacy-officer"


@pytest.fixture
def world(aws, cliniko, erasure_stack, tmp_path, monkeypatch):
    """The feed, its two subscribers' receivers, and an erasure core on the same Cliniko
    account (the emulator's key): after erasure_stack, so the feed's environment is the one
    set."""
    stack = create_feed_stack()
    secrets = subscribed(tmp_path, SUBSCRIBERS, "crm-sync", "full-copy")
    feed_environment(monkeypatch, stack, cliniko, tmp_path)
    with delivering(stack, tmp_path, secrets) as (receivers, stand_in):
        run()  # the feed's first run: from now on
        yield stack, receivers, stand_in, tmp_path / "webhooks.yaml"


def run() -> dict[str, Any]:
    result: dict[str, Any] = handler.lambda_handler(SCHEDULED_EVENT, context())["accounts"][0]
    assert result["error"] is None, result
    return result


def eraser(erasure_stack: erasure.ErasureStack) -> Eraser:
    client = erasure_stack.cliniko.client(user_agent=USER_AGENT)
    return Eraser(
        # The feed's account: one deployment, one name for it in the trail and the events.
        ErasureAccounts([ACCOUNT], lambda _account: client),
        DynamoAuditLog(erasure_stack.table_name),
        PEPPER,
        once=PowertoolsOnce(erasure_stack.idempotency_table),
    )


def erase(erasure_stack: erasure.ErasureStack, contact_id: str) -> str:
    request = ErasureRequest.parse(
        {"request_id": "r-flag", "contact_id": contact_id, "reason": "GDPR art. 17"}
    )
    return eraser(erasure_stack).submit(request, CALLER).status


def published(world) -> list[tuple[str, str, str, bool]]:
    """What the last run published, as (where, contact id, type, erased): the bus event, then
    each subscriber's delivery as its receiver verified it."""
    stack, receivers, stand_in, _ = world
    seen = []
    for event in stack.drain():
        assert set(event["detail"]) == EVENT_DETAIL_KEYS, event["detail"]
        detail = event["detail"]
        assert event["detail-type"] == detail["type"]
        seen.append(("bus", detail["contact_id"], detail["type"], detail["erased"]))
    stand_in.deliver_pending()
    for name, receiver in receivers.items():
        for received in receiver.received:
            assert received.verified, received.problem
            data = received.payload["data"]
            assert set(data) - {"contact", "fields_omitted"} == EVENT_DETAIL_KEYS, data
            assert ("contact" in data or "fields_omitted" in data) is (name == "full-copy")
            seen.append((name, data["contact_id"], received.payload["type"], data["erased"]))
        receiver.received.clear()
    return seen


def everywhere(contact_id: str, kind: str, erased: bool) -> list[tuple[str, str, str, bool]]:
    return [(where, contact_id, kind, erased) for where in ("bus", "crm-sync", "full-copy")]


def test_an_erasure_reaches_every_subscriber_as_an_archive_marked_erased(world, erasure_stack):
    contact_id = erasure_stack.seed()
    run()
    assert published(world) == everywhere(contact_id, "contact.created", False)

    assert erase(erasure_stack, contact_id) == "completed"
    run()

    assert published(world) == everywhere(contact_id, "contact.archived", True)


def test_a_staff_archive_of_an_ordinary_contact_is_not_marked_erased(world, erasure_stack):
    contact_id = erasure_stack.seed()
    run()
    published(world)

    erasure_stack.cliniko.client().archive_contact(contact_id)
    run()

    assert published(world) == everywhere(contact_id, "contact.archived", False)


def test_the_scrub_seen_before_its_archive_is_an_update_marked_erased(world, erasure_stack):
    contact_id = erasure_stack.seed()
    run()
    published(world)
    # The archive (a POST) fails after the scrub went through: a feed run falls in between.
    erasure_stack.cliniko.control.set_faults(fail_next=[503] * 20, methods=["POST"])
    try:
        assert erase(erasure_stack, contact_id) == "failed"
    finally:
        erasure_stack.cliniko.control.clear_faults()
    assert not erasure_stack.contact(contact_id)["archived_at"]
    run()

    assert published(world) == everywhere(contact_id, "contact.updated", True)

    assert erase(erasure_stack, contact_id) == "completed"  # the retry archives it
    run()
    assert published(world) == everywhere(contact_id, "contact.archived", True)


def test_a_contact_staff_fill_in_again_after_an_erasure_is_no_longer_marked(world, erasure_stack):
    # Restored in Cliniko's app and given details again: a contact with personal data, which
    # a receiver must not be told to delete.
    contact_id = erasure_stack.seed()
    run()
    assert erase(erasure_stack, contact_id) == "completed"
    run()
    published(world)
    erasure_stack.cliniko.control.unarchive(contact_id)
    run()
    assert published(world) == everywhere(contact_id, "contact.unarchived", True)

    erasure_stack.cliniko.client().update_contact(contact_id, {"last_name": PERSONAL["last_name"]})
    run()

    assert published(world) == everywhere(contact_id, "contact.updated", False)


def test_a_delivery_sent_late_without_the_contact_s_values_still_says_erased(world, erasure_stack):
    # EventBridge took the erasure's bus event but not its deliveries; before the next run,
    # staff restored the contact and filled it in. The owed deliveries go out late, the
    # values gone ("superseded"): the mark is what tells their receivers to delete.
    contact_id = erasure_stack.seed()
    run()
    published(world)
    assert erase(erasure_stack, contact_id) == "completed"
    with eventbridge_refusing(lambda entry: entry["Source"] == WEBHOOKS_SOURCE):
        refused = handler.lambda_handler(SCHEDULED_EVENT, context())["accounts"][0]
    assert refused["error"] == "publish_failed"
    stack, _, stand_in, _ = world
    for route in stand_in.routes:  # moto routed the refused entries all the same
        boto3.client("sqs").purge_queue(QueueUrl=route.queue_url)
    stack.drain(stack.webhook_queue_url)
    assert published(world) == [("bus", contact_id, "contact.archived", True)]
    erasure_stack.cliniko.control.unarchive(contact_id)
    erasure_stack.cliniko.client().update_contact(contact_id, {"last_name": PERSONAL["last_name"]})

    run()

    assert published(world) == [
        ("bus", contact_id, "contact.unarchived", False),
        ("crm-sync", contact_id, "contact.archived", True),
        ("crm-sync", contact_id, "contact.unarchived", False),
        ("full-copy", contact_id, "contact.archived", True),
        ("full-copy", contact_id, "contact.unarchived", False),
    ]


def test_the_erasure_s_delivery_dead_lettered_is_replayed_to_a_receiver_holding_fields(
    world, erasure_stack, capsys
):
    # full-copy holds the contact's details and was down when the erasure's event went out:
    # its letter carries only what the erasure wrote, and the notice to delete, so the replay
    # must send it (a letter with a value of an erased contact it keeps: the trail says so).
    stack, _, stand_in, webhooks = world
    contact_id = erasure_stack.seed()
    run()
    published(world)
    assert erase(erasure_stack, contact_id) == "completed"
    stack.drain(stack.webhook_queue_url)
    run()
    for route in stand_in.routes:  # what AWS never managed to deliver
        boto3.client("sqs").purge_queue(QueueUrl=route.queue_url)
    sqs = boto3.client("sqs")
    dlq = sqs.create_queue(QueueName="webhook-dead-letters")["QueueUrl"]
    for event in stack.drain(stack.webhook_queue_url):
        event["detail"]["webhook"]["timestamp"] = str(int(time.time()) - 3600)
        sqs.send_message(QueueUrl=dlq, MessageBody=json.dumps(event))
        if "contact" in event["detail"]["body"]["data"]:
            # The same letter with a value back in it: the mark alone lets nothing through.
            event["detail"]["body"]["data"]["contact"]["last_name"] = PERSONAL["last_name"]
            event["detail"]["webhook"]["id"] = "msg_doctored"
            sqs.send_message(QueueUrl=dlq, MessageBody=json.dumps(event))
    stack.drain()

    code, out = replay(stack.bus, dlq, webhooks, erasure_stack.table_name)

    refused = capsys.readouterr().err
    assert code == 1 and out.count("replayed ") == 2, out
    assert refused.count("not replayed") == 1 and "its contact was erased" in refused, refused
    (kept,) = every_message(sqs, dlq)
    assert json.loads(kept["Body"])["detail"]["webhook"]["id"] == "msg_doctored"
    assert published(world) == [
        ("crm-sync", contact_id, "contact.archived", True),
        ("full-copy", contact_id, "contact.archived", True),
    ]


def replay(bus: str, dlq: str, webhooks: Path, audit_table: str) -> tuple[int, str]:
    out = io.StringIO()
    args = ["--dlq-url", dlq, "--bus", bus, "--webhooks-file", str(webhooks)]
    code = dead_letters([*args, "--audit-table", audit_table, "replay", "--all"], out)
    return code, out.getvalue()
