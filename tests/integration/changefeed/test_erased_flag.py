"""An erasure, as the feed tells it: the contact's events carry `erased: true` once it holds
the scrub's values (README "Contacts change feed"), so a receiver knows to delete its copies
(GDPR Art. 17(2), 19), on the bus and in every signed webhook alike; an ordinary contact's,
a staff archive's included, carry `erased: false`. Against the emulator over HTTP, the
erasure core and moto, with the local stand-in delivering to receivers that verify each
signature."""

from __future__ import annotations

import datetime as dt
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
from cliniko_automations.common import aws
from cliniko_automations.erasure import api_handler
from cliniko_automations.erasure.accounts import ErasureAccounts
from cliniko_automations.erasure.audit import DynamoAuditLog
from cliniko_automations.erasure.idempotency import PowertoolsOnce
from cliniko_automations.erasure.models import ErasureRequest
from cliniko_automations.erasure.workflow import Eraser

from tests.fixtures import apigw
from tests.fixtures.aws import every_message
from tests.integration.changefeed.stack import (
    ACCOUNT,
    EVENT_DETAIL_KEYS,
    KEY_SECRET,
    SCHEDULED_EVENT,
    context,
    create_feed_stack,
    delivering,
    eventbridge_refusing,
    feed_environment,
    subscribed,
)
from tests.integration.erasure import stack as erasure
from tests.integration.erasure.stack import (
    PEPPER,
    PERSONAL,
    USER_AGENT,
    personal_values,
    whole_values_in,
)

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


def test_an_erasure_notice_reaches_a_receiver_no_longer_opted_in_to_fields(world, erasure_stack):
    # full-copy got the person's fields, was down when the erasure's notice went out, and was
    # then taken off contact fields. The notice goes as the feed sends it that subscriber now:
    # the summary, `erased: true`, no contact. Before, the replay refused it (its fields no
    # longer opted in to) and the receiver was never told to delete what it holds.
    stack, receivers, stand_in, webhooks = world
    contact_id = erasure_stack.seed()
    run()
    published(world)
    stack.drain(stack.webhook_queue_url)  # the creation's deliveries, delivered
    assert erase(erasure_stack, contact_id) == "completed"
    run()
    sqs = boto3.client("sqs")
    dlq = sqs.create_queue(QueueName="webhook-dead-letters")["QueueUrl"]
    for event in undelivered(world):
        given_up(dlq, event)
    webhooks.write_text(
        webhooks.read_text(encoding="utf-8").replace("    include_fields: true\n", ""),
        encoding="utf-8",
    )

    code, out = replay(stack.bus, dlq, webhooks, erasure_stack.table_name)

    assert code == 0 and out.count("replayed ") == 2, out
    assert every_message(sqs, dlq) == []
    stand_in.deliver_pending()
    (notice,) = receivers["full-copy"].received
    assert notice.verified, notice.problem
    assert notice.payload["type"] == "contact.archived" and notice.payload["data"]["erased"]
    assert "contact" not in notice.payload["data"]
    assert [r.payload for r in receivers["crm-sync"].received] == [notice.payload]


def replay(bus: str, dlq: str, webhooks: Path, audit_table: str) -> tuple[int, str]:
    out = io.StringIO()
    args = ["--dlq-url", dlq, "--bus", bus, "--webhooks-file", str(webhooks)]
    code = dead_letters([*args, "--audit-table", audit_table, "replay", "--all"], out)
    return code, out.getvalue()


@pytest.fixture
def letters_queue(world, erasure_stack, monkeypatch) -> str:
    """The webhook stack's dead-letter queue as the erasure API is deployed with it
    (`WEBHOOK_DEAD_LETTER_QUEUE_ARN`), the feed's account the erasure's default (its key is
    ClinikoApiKeySecretName, as deployed)."""
    sqs = boto3.client("sqs")
    dlq = sqs.create_queue(QueueName="webhook-dead-letters")["QueueUrl"]
    arn = sqs.get_queue_attributes(QueueUrl=dlq, AttributeNames=["QueueArn"])["Attributes"]
    monkeypatch.setenv("WEBHOOK_DEAD_LETTER_QUEUE_ARN", arn["QueueArn"])
    monkeypatch.setenv("CLINIKO_API_KEY_SECRET_NAME", KEY_SECRET)
    return dlq


def erase_through_the_api(request_id: str, contact_id: str) -> dict[str, Any]:
    """POST /erasure-requests to the erasure API's handler, as API Gateway passes a signed
    call on: the answer's body (200 expected)."""
    body = {"request_id": request_id, "contact_id": contact_id, "reason": "GDPR art. 17"}
    event = apigw.http_api_event(
        "POST",
        "/erasure-requests",
        json.dumps(body).encode(),
        {"content-type": "application/json"},
    )
    event["requestContext"]["authorizer"] = {
        "iam": {"userArn": CALLER, "accountId": "123456789012"}
    }
    context = apigw.LambdaContext(function_name="ErasureApiFunction", timeout_ms=29_000)
    response = api_handler.lambda_handler(event, context)
    assert response["statusCode"] == 200, response["body"]
    answer: dict[str, Any] = json.loads(response["body"])
    return answer


def undelivered(world) -> list[dict[str, Any]]:
    """The webhook deliveries of the last run, none of them delivered (EventBridge's events,
    one per subscriber)."""
    stack, _, stand_in, _ = world
    for route in stand_in.routes:  # what AWS never managed to deliver (SQS purges a
        stack.drain(route.queue_url)  # queue once a minute: read away instead)
    events = stack.drain(stack.webhook_queue_url)
    stack.drain()
    return events


def given_up(dlq: str, event: dict[str, Any]) -> str:
    """`event` put on `dlq` as EventBridge puts a delivery it gave up on (signed an hour
    ago): its message id."""
    event = json.loads(json.dumps(event))
    event["detail"]["webhook"]["timestamp"] = str(int(time.time()) - 3600)
    sent = boto3.client("sqs").send_message(QueueUrl=dlq, MessageBody=json.dumps(event))
    return str(sent["MessageId"])


def carrying_fields(events: list[dict[str, Any]]) -> dict[str, Any]:
    (event,) = [e for e in events if "contact" in e["detail"]["body"]["data"]]
    return event


def test_a_second_erasure_keeps_the_first_one_s_notice_for_a_receiver_that_was_down(
    world, erasure_stack, letters_queue
):
    # Both receivers were down when the erasure's event went out, and full-copy's delivery of
    # the contact's creation, retried by EventBridge until then, landed after the erasure's
    # purge. The officer erases the person again for that letter. The contact is erased and
    # archived already: Cliniko does not change, the feed publishes nothing more, and the
    # first erasure's notice is all that can still tell the receivers to delete their copies.
    # Before, the second purge deleted full-copy's notice with the letters carrying the person.
    stack, _, _, webhooks = world
    contact_id = erasure_stack.seed()
    run()
    late = carrying_fields(undelivered(world))
    assert late["detail"]["body"]["data"]["contact"]["last_name"] == PERSONAL["last_name"]

    first = erase_through_the_api("r-first", contact_id)
    assert first["result"] == "erased", first
    run()
    notices = undelivered(world)
    assert sorted(e["detail"]["body"]["data"]["erased"] for e in notices) == [True, True]
    kept = {given_up(letters_queue, event) for event in notices}
    carrying = [given_up(letters_queue, late)]
    # The notice with a value of the person put back: the mark alone keeps nothing.
    doctored = json.loads(json.dumps(carrying_fields(notices)))
    doctored["detail"]["body"]["data"]["contact"]["last_name"] = PERSONAL["last_name"]
    doctored["detail"]["webhook"]["id"] = "msg_doctored"
    carrying.append(given_up(letters_queue, doctored))

    second = erase_through_the_api("r-second", contact_id)

    assert second["result"] == "erased", second
    assert [c["action"] for c in second["contacts"]] == ["already_scrubbed_and_archived"]
    assert {p["store"]: p["count"] for p in second["purged"]} == {"webhook_dead_letters": 2}
    remaining = {m["MessageId"] for m in every_message(boto3.client("sqs"), letters_queue)}
    assert remaining == kept, (remaining, kept, carrying)
    # The trail says what the purge kept, a count only.
    (purge,) = [
        item
        for item in erasure_stack.audit_items()
        if item["request_id"] == "r-second" and item["sk"].endswith("#purge-webhooks")
    ]
    assert [(p["store"], p["count"]) for p in purge["purged"]] == [("webhook_dead_letters", 2)]
    assert purge["notices_kept"] == 1
    assert whole_values_in(json.dumps(purge, default=str), personal_values(PERSONAL)) == []
    run()
    assert published(world) == []  # nothing changed in Cliniko: no new notice

    code, out = replay(stack.bus, letters_queue, webhooks, erasure_stack.table_name)

    assert code == 0 and out.count("replayed ") == 2, out
    assert published(world) == [
        ("crm-sync", contact_id, "contact.archived", True),
        ("full-copy", contact_id, "contact.archived", True),
    ]


def test_a_run_that_listed_the_person_before_their_erasure_publishes_them_after_its_answer(
    world, erasure_stack
):
    # The run lists the new contact; the erasure runs and answers while the run is between
    # that listing and its PutEvents (a botocore hook on the feed's events client: the AWS
    # boundary). What the run publishes then carries the person's values, to a subscriber
    # opted in to them, after the erasure's answer: nothing the erasure does reaches a run in
    # flight (README "Erasure on request", the gaps). The next run's erasure event follows,
    # its `updated_at` no earlier (Cliniko's whole seconds: here, as when the erasure follows a
    # change within the second, the same), so a receiver keeping each contact's newest, an
    # erasure winning a tie (README "Signed webhooks"), ends holding none of the person.
    contact_id = erasure_stack.seed()
    erased: list[str] = []

    def erase_first(**_: Any) -> None:
        if not erased:
            erased.append(erase(erasure_stack, contact_id))

    emitter = aws.client("events", config=aws.FAIL_FAST).meta.events
    emitter.register("provide-client-params.events.PutEvents", erase_first, unique_id="erase")
    try:
        run()
    finally:
        emitter.unregister("provide-client-params.events.PutEvents", unique_id="erase")
    assert erased == ["completed"]
    _, receivers, stand_in, _ = world
    stand_in.deliver_pending()
    [late] = receivers["full-copy"].received
    receivers["full-copy"].received.clear()
    assert late.payload["type"] == "contact.created" and not late.payload["data"]["erased"]
    values = whole_values_in(json.dumps(late.payload), personal_values(PERSONAL))
    assert PERSONAL["last_name"] in values, values  # published after the erasure's answer
    published(world)

    run()

    stand_in.deliver_pending()
    [notice] = receivers["full-copy"].received
    assert notice.payload["data"]["erased"], notice.payload
    assert when(notice.payload) >= when(late.payload), (notice.payload, late.payload)
    assert published(world) == everywhere(contact_id, "contact.archived", True)


def when(payload: dict[str, Any]) -> dt.datetime:
    return dt.datetime.fromisoformat(payload["data"]["updated_at"].replace("Z", "+00:00"))


def test_a_letter_whose_contact_is_erased_while_the_replay_runs_is_not_sent(
    world, erasure_stack, letters_queue, capsys
):
    # Both receivers were down: each contact's creation is a dead letter for each. The operator
    # replays them all; the replay has read (and hidden) every letter, and an erasure of one
    # contact runs and answers while the replay sends the first letter: the erasure's purge
    # cannot see the letters the replay holds, so only the replay can keep the erased
    # contact's fields from its receiver. Before, it judged each letter once, as it read it.
    stack, _, _, webhooks = world
    ids = [erasure_stack.seed(), erasure_stack.seed(email="other.person@example.com")]
    run()
    for event in undelivered(world):
        given_up(letters_queue, event)
    answered: list[str] = []

    def erase_the_other_one(params: dict[str, Any], **_: Any) -> None:
        if not answered:
            first = json.loads(params["Entries"][0]["Detail"])["body"]["data"]["contact_id"]
            (other,) = [i for i in ids if i != first]
            answered.append(other)
            assert erase_through_the_api("r-during-replay", other)["result"] == "erased"

    events = boto3.DEFAULT_SESSION.events if boto3.DEFAULT_SESSION else None
    assert events is not None
    events.register("provide-client-params.events.PutEvents", erase_the_other_one, "erase")
    try:
        code, out = replay(stack.bus, letters_queue, webhooks, erasure_stack.table_name)
    finally:
        events.unregister("provide-client-params.events.PutEvents", unique_id="erase")

    [erased] = answered
    refused = capsys.readouterr().err
    assert code == 1 and out.count("replayed ") == 3, (out, refused)
    assert refused.count("its contact was erased") == 1, refused
    world[2].deliver_pending()
    received = [
        (name, r.payload["data"]["contact_id"], "contact" in r.payload["data"])
        for name, receiver in world[1].items()
        for r in receiver.received
    ]
    assert ("full-copy", erased, True) not in received, received
    assert ("crm-sync", erased, False) in received, received
