"""Webhook dead letters replayed: the feed publishes a delivery, EventBridge gives up on it
(its dead letter is put on the queue as EventBridge puts it: the event, with ERROR_CODE,
RETRY_ATTEMPTS, RULE_ARN and TARGET_ARN attributes), and the replay tool re-publishes it
signed afresh; the subscriber's rule (the local stand-in for its API destination) delivers it
to a receiver built on the Standard Webhooks reference library."""

from __future__ import annotations

import gc
import io
import json
import os
import time
import weakref

import boto3
import pytest
from botocore.exceptions import EndpointConnectionError
from cliniko_automations.changefeed import handler
from cliniko_automations.changefeed.bus import EventBridgeSink
from cliniko_automations.changefeed.core import PublishFailed
from cliniko_automations.changefeed.subscribers import load_subscribers
from cliniko_automations.changefeed.webhook_dead_letters import (
    WebhookDeadLetters,
    WebhookLetterPurge,
    main,
)
from cliniko_automations.changefeed.webhook_stack import render
from cliniko_automations.common.secrets import clear_secret_caches, read_secret
from cliniko_automations.common.stack_resources import STACK_TAG
from cliniko_automations.common.submission_store import PurgeCut
from cliniko_automations.erasure.accounts import ErasureAccounts
from cliniko_automations.erasure.attempt import LETTERS_LEAVE_SECONDS
from cliniko_automations.erasure.audit import DynamoAuditLog
from cliniko_automations.erasure.idempotency import PowertoolsOnce
from cliniko_automations.erasure.models import ErasureRequest
from cliniko_automations.erasure.service import build_eraser
from cliniko_automations.erasure.settings import ErasureSettings, SettingsError
from cliniko_automations.erasure.workflow import Eraser
from cliniko_automations.intake.submission import ContactDraft
from local_run.webhooks import ApiDestinationStandIn, SignedWebhookReceiver

from tests.e2e.test_erasure_cli import load_cli as load_erasure_cli
from tests.fixtures.aws import every_message
from tests.integration.changefeed.stack import (
    ACCOUNT,
    KEY_SECRET,
    SCHEDULED_EVENT,
    context,
    create_feed_stack,
    feed_environment,
    new_webhook_secret,
)
from tests.integration.erasure import stack as erasure
from tests.integration.intake_worker.resources import (
    create_submission_store,
    create_worker_stack,
    json_submission,
)

SUBSCRIBERS = """\
subscribers:
  - name: crm-sync
    url: https://hooks.example.com/cliniko
    events: [contact.created]
    secret: tests/webhooks/crm-sync
  - name: full-copy
    url: https://copy.example.com/in
    events: [contact.created]
    secret: tests/webhooks/full-copy
    include_fields: true
"""
PERSONAL = ("Zoë", "Ångström", "zoe@example.com")
erasure_stack = erasure.erasure_stack  # the fixture


@pytest.fixture
def feed_erasure(world, erasure_stack, tmp_path, monkeypatch):
    """The erasure of the feed's deployment: the feed's accounts file, whose one account's key
    (the feed's) is the erasure's default, as ClinikoApiKeySecretName is deployed."""
    monkeypatch.setenv("CLINIKO_ACCOUNTS_FILE", str(tmp_path / "cliniko_accounts.yaml"))
    monkeypatch.setenv("CLINIKO_API_KEY_SECRET_NAME", KEY_SECRET)
    return erasure_stack


STALE = int(time.time()) - 3600  # signed an hour ago: every receiver refuses it now
# Anyone who can send to the queue can send this: JSON deep enough to exhaust the recursion
# limit of a parser without one, which must not stop a listing, a replay or an erasure.
DEEP_JSON = "[" * 100_000 + "]" * 100_000


@pytest.fixture
def world(aws, cliniko, tmp_path, monkeypatch):
    stack = create_feed_stack()
    webhooks = tmp_path / "webhooks.yaml"
    webhooks.write_text(SUBSCRIBERS, encoding="utf-8")
    feed_environment(monkeypatch, stack, cliniko, tmp_path)
    secrets = {"crm-sync": new_webhook_secret(), "full-copy": new_webhook_secret()}
    for name, value in secrets.items():
        boto3.client("secretsmanager").create_secret(
            Name=f"tests/webhooks/{name}", SecretString=value
        )
    receivers = {name: SignedWebhookReceiver(secret).start() for name, secret in secrets.items()}
    stand_in = ApiDestinationStandIn(
        render(load_subscribers(webhooks)),
        boto3.client("events"),
        boto3.client("sqs"),
        stack.bus,
        {name: receiver.url for name, receiver in receivers.items()},
    )
    sqs = boto3.client("sqs")
    dlq = sqs.create_queue(QueueName="webhook-dead-letters")["QueueUrl"]
    # The erasure trail a replay of contact fields checks (an erasure test's own, if it has one).
    erasure.make_audit_table("replay-audit")
    monkeypatch.setenv("AUDIT_TABLE", "replay-audit")

    # One change, published as a delivery per subscriber; AWS never manages to deliver them.
    handler.lambda_handler(SCHEDULED_EVENT, context())
    cliniko.client().create_contact(
        {"first_name": "Zoë", "last_name": "Ångström", "email": "zoe@example.com"}
    )
    handler.lambda_handler(SCHEDULED_EVENT, context())
    for route in stand_in.routes:
        sqs.purge_queue(QueueUrl=route.queue_url)
    deliveries = {e["detail"]["subscriber"]: e for e in stack.drain(stack.webhook_queue_url)}
    letters = {}
    for name, event in deliveries.items():
        event["detail"]["webhook"]["timestamp"] = str(STALE)
        letters[name] = dead_letter(sqs, dlq, json.dumps(event))

    def cli(*args: str) -> tuple[int, str]:
        out = io.StringIO()
        code = main(
            ["--dlq-url", dlq, "--bus", stack.bus, "--webhooks-file", str(webhooks), *args], out
        )
        return code, out.getvalue()

    yield cli, deliveries, letters, receivers, stand_in, sqs, dlq
    for receiver in receivers.values():
        receiver.stop()


# A rule of the test stack's bus (create_feed_stack's), as EventBridge names one on a bus
# other than the default: rule/<bus>/<rule>.
RULE_ARN = "arn:aws:events:eu-west-1:123456789012:rule/stack-contacts/webhook-crm-sync"


def dead_letter(sqs, queue_url: str, body: str, rule_arn: str = RULE_ARN) -> str:
    """What EventBridge puts on a rule target's dead-letter queue."""
    text = lambda value: {"DataType": "String", "StringValue": value}  # noqa: E731
    return sqs.send_message(
        QueueUrl=queue_url,
        MessageBody=body,
        MessageAttributes={
            "ERROR_CODE": text("SDK_CLIENT_ERROR"),
            "ERROR_MESSAGE": text("Zoë's receiver said: 503 for zoe@example.com"),
            "EXHAUSTED_RETRY_CONDITION": text("MaximumEventAgeInSeconds"),
            "RETRY_ATTEMPTS": text("7"),
            "RULE_ARN": text(rule_arn),
            "TARGET_ARN": text("arn:aws:events:eu-west-1:123456789012:api-destination/x"),
        },
    )["MessageId"]


def dead_letter_others(sqs, queue_url: str, count: int) -> None:
    """`count` letters that are no delivery of anyone's, for a purge to read past."""
    for n in range(count):
        dead_letter(sqs, queue_url, json.dumps({"not": "a delivery", "n": n}))


def test_a_replayed_dead_letter_arrives_signed_afresh_with_its_webhook_id(world) -> None:
    cli, deliveries, letters, receivers, stand_in, _, _ = world
    webhook_id = deliveries["crm-sync"]["detail"]["webhook"]["id"]

    code, out = cli("replay", letters["crm-sync"])

    assert code == 0 and out.startswith("replayed ")
    assert stand_in.deliver_pending() == 1
    (received,) = receivers["crm-sync"].received
    assert received.verified, received.problem  # the reference library's check
    assert received.headers["webhook-id"] == webhook_id
    assert int(received.headers["webhook-timestamp"]) > STALE
    assert received.payload == deliveries["crm-sync"]["detail"]["body"]
    assert receivers["full-copy"].received == []  # only the letter replayed


def test_a_replay_to_a_bus_no_rule_of_the_subscriber_is_on_keeps_the_letter(world, capsys) -> None:
    # EventBridge accepts an event no rule matches, and drops it: the letter would be deleted
    # for a delivery that goes nowhere. The default bus has no webhook rule.
    cli, _, letters, receivers, stand_in, _, _ = world
    code, out = cli("--bus", "default", "replay", letters["crm-sync"])
    assert (code, out) == (1, "")
    assert "no rule on bus default takes crm-sync's contact.created" in capsys.readouterr().err
    assert stand_in.deliver_pending() == 0 and receivers["crm-sync"].received == []
    code, out = cli("list")
    assert code == 0 and "2 dead letter(s)" in out
    # The right bus takes it.
    assert cli("replay", letters["crm-sync"])[0] == 0
    assert stand_in.deliver_pending() == 1


def test_a_replay_to_another_stack_s_bus_keeps_the_letter(world, capsys) -> None:
    # Two stacks in one account and region (production and staging, or two clinics), each
    # with its webhook stack, whose webhooks.yaml name the same subscribers: the operator's
    # shell holds production's WEBHOOK_DEAD_LETTER_QUEUE_URL and staging's EVENT_BUS_NAME.
    # Staging's bus has a rule for crm-sync, so the route check passes, and production's
    # contact went to staging's receiver. The letter names the rule that gave up on it, and
    # so its bus: replayed only there.
    cli, deliveries, _, receivers, stand_in, sqs, dlq = world
    production = "arn:aws:events:eu-west-1:123456789012:rule/cliniko-automations-contacts/x"
    letter = dead_letter(sqs, dlq, json.dumps(deliveries["full-copy"]), production)

    code, out = cli("replay", letter)

    assert (code, out) == (1, "")
    err = capsys.readouterr().err
    assert "dead-lettered by a rule of bus cliniko-automations-contacts, not stack-contacts" in err
    assert stand_in.deliver_pending() == 0 and receivers["full-copy"].received == []
    assert letter in {m["MessageId"] for m in every_message(sqs, dlq)}  # kept
    # Given its own stack's bus by ARN, as --bus takes one too, the same check lets it go.
    bus_arn = "arn:aws:events:eu-west-1:123456789012:event-bus/stack-contacts"
    assert cli("--bus", bus_arn, "replay", letter)[0] == 1  # still another stack's
    own = dead_letter(sqs, dlq, json.dumps(deliveries["crm-sync"]))
    assert cli("--bus", bus_arn, "replay", own)[0] == 0
    assert stand_in.deliver_pending() == 1


def test_a_replay_while_the_subscriber_s_rule_is_disabled_keeps_the_letter(world, capsys) -> None:
    # A disabled rule takes nothing: EventBridge would accept the event and drop it.
    cli, _, letters, receivers, stand_in, _, _ = world
    events, bus = boto3.client("events"), os.environ["EVENT_BUS_NAME"]
    # Its rule, and the test stack's own that copies every delivery to a queue.
    rules = [r["Name"] for r in events.list_rules(EventBusName=bus)["Rules"]]
    taking = [name for name in rules if name != "local-FullCopyRule"]
    for name in taking:
        events.disable_rule(Name=name, EventBusName=bus)

    code, out = cli("replay", letters["crm-sync"])

    assert (code, out) == (1, "")
    assert f"no rule on bus {bus} takes crm-sync's contact.created" in capsys.readouterr().err
    for name in taking:
        events.enable_rule(Name=name, EventBusName=bus)
    assert cli("replay", letters["crm-sync"])[0] == 0  # kept: replayed once the rule is back
    assert stand_in.deliver_pending() == 1 and len(receivers["crm-sync"].received) == 1


def test_replaying_twice_is_safe(world) -> None:
    cli, _, letters, receivers, stand_in, _, _ = world
    assert cli("replay", letters["crm-sync"])[0] == 0

    assert cli("replay", letters["crm-sync"])[0] == 1  # the letter is gone: nothing to send

    stand_in.deliver_pending()
    assert len(receivers["crm-sync"].received) == 1
    code, out = cli("list")
    assert code == 0 and "1 dead letter(s)" in out  # full-copy's, released again


def test_a_webhook_id_names_the_changes_letters_to_every_subscriber(world) -> None:
    cli, deliveries, _, receivers, stand_in, _, _ = world
    webhook_id = deliveries["crm-sync"]["detail"]["webhook"]["id"]

    assert cli("replay", webhook_id)[0] == 0

    assert stand_in.deliver_pending() == 2
    for receiver in receivers.values():
        (received,) = receiver.received
        assert received.verified and received.headers["webhook-id"] == webhook_id


def test_a_webhook_id_deletes_no_letter_when_it_names_several(world, capsys) -> None:
    # Pasted from the listing to drop one subscriber's letter, it deleted the change's letter
    # to every subscriber: those receivers never got the change.
    cli, deliveries, letters, _, _, _, _ = world
    webhook_id = deliveries["crm-sync"]["detail"]["webhook"]["id"]

    assert cli("delete", webhook_id)[0] == 1

    (line,) = capsys.readouterr().err.splitlines()
    assert line.startswith(f"{webhook_id} names 2 dead letters (")
    assert line.endswith("): delete each by its message id")
    assert len(cli("list", "--json")[1].splitlines()) == 2
    assert cli("delete", letters["crm-sync"]) == (0, f"deleted {letters['crm-sync']}\n")
    assert len(cli("list", "--json")[1].splitlines()) == 1


def test_list_and_show_name_fields_and_never_print_values(world) -> None:
    cli, _, letters, _, _, _, _ = world

    listed = [json.loads(line) for line in cli("list", "--json")[1].splitlines()]
    code, shown = cli("show", letters["full-copy"])

    assert sorted(d["subscriber"] for d in listed) == ["crm-sync", "full-copy"]
    assert {d["error_code"] for d in listed} == {"SDK_CLIENT_ERROR"}
    assert {d["attempts"] for d in listed} == {7}
    assert code == 0 and "contact.first_name" in shown and "contact.email" in shown
    text = json.dumps(listed) + shown
    assert not [value for value in PERSONAL if value in text]


def test_bogus_and_orphaned_letters_are_reported_and_kept(world) -> None:
    cli, deliveries, _, receivers, stand_in, sqs, dlq = world
    orphan = json.loads(json.dumps(deliveries["crm-sync"]))
    orphan["detail"]["subscriber"] = "left-us"
    orphan["detail"]["webhook"]["id"] = "msg_orphan"
    dead_letter(sqs, dlq, json.dumps(orphan))
    dead_letter(sqs, dlq, "not json {")
    dead_letter(sqs, dlq, DEEP_JSON)
    dead_letter(sqs, dlq, json.dumps({"source": "aws.events", "detail-type": "x", "detail": {}}))

    code, out = cli("replay", "--all")

    assert code == 1  # some refused, and said so
    assert out.count("replayed ") == 2
    stand_in.deliver_pending()
    assert all(len(r.received) == 1 and r.received[0].verified for r in receivers.values())
    listed = [json.loads(line) for line in cli("list", "--json")[1].splitlines()]
    problems = sorted(d["problem"] for d in listed)
    assert len(problems) == 4
    assert any("'left-us' is no longer in webhooks.yaml" in p for p in problems)
    assert sum(p.startswith("not JSON") for p in problems) == 2
    assert any(p.startswith("not a webhook delivery") for p in problems)
    # The orphan's subscriber is not coming back: its letter is deleted, never replayed.
    code, out = cli("delete", "msg_orphan")
    assert code == 0 and out.startswith("deleted ")
    assert "3 dead letter(s)" in cli("list")[1]


@pytest.mark.parametrize(
    ("edit", "problem"),
    [
        (
            (
                "    secret: tests/webhooks/crm-sync\n",
                "    secret: tests/webhooks/crm-sync\n    accounts: [another-clinic]\n",
            ),
            "subscriber 'crm-sync' no longer takes account 'test-clinic'",
        ),
        (
            ("events: [contact.created]", "events: [contact.archived]"),
            "subscriber 'crm-sync' no longer takes contact.created",
        ),
    ],
    ids=["account", "type"],
)
def test_a_letter_its_subscriber_no_longer_takes_is_kept(world, tmp_path, edit, problem) -> None:
    # webhooks.yaml edited, the webhook stack not yet deployed again: its rule still routes it.
    cli, _, letters, receivers, stand_in, _, _ = world
    webhooks = tmp_path / "webhooks.yaml"
    webhooks.write_text(SUBSCRIBERS.replace(*edit, 1), encoding="utf-8")

    code, _ = cli("replay", letters["crm-sync"])

    assert code == 1
    assert stand_in.deliver_pending() == 0 and receivers["crm-sync"].received == []
    listed = [json.loads(line) for line in cli("list", "--json")[1].splitlines()]
    problems = {d["subscriber"]: d["problem"] for d in listed}
    assert problems["crm-sync"] == problem


def test_a_letter_with_fields_for_a_subscriber_no_longer_opted_in_goes_without_them(
    world, tmp_path, monkeypatch
) -> None:
    # What the feed sends that subscriber now: the change's summary, no contact. Before, the
    # letter was refused and kept until it expired, its change never delivered.
    cli, deliveries, letters, receivers, stand_in, _, _ = world
    webhooks = tmp_path / "webhooks.yaml"
    webhooks.write_text(SUBSCRIBERS.replace("    include_fields: true\n", ""), encoding="utf-8")
    monkeypatch.delenv("AUDIT_TABLE")  # nothing personal goes: no erasure to check

    listing = [json.loads(line) for line in cli("list", "--json")[1].splitlines()]
    (listed,) = [d for d in listing if d["subscriber"] == "full-copy"]
    assert "2 dead letter(s), 0 not replayable, 1 replayed without contact fields" in cli("list")[1]
    code, out = cli("replay", letters["full-copy"])

    assert listed["problem"] == ""
    assert "contact.email" in listed["fields"] and "contact.email" in listed["replay_drops"]
    assert code == 0 and out.startswith(f"replayed {letters['full-copy']}")
    assert stand_in.deliver_pending() == 1
    (received,) = receivers["full-copy"].received
    assert received.verified, received.problem
    sent = deliveries["full-copy"]["detail"]
    assert received.headers["webhook-id"] == sent["webhook"]["id"]
    data = dict(sent["body"]["data"])
    del data["contact"]
    assert received.payload == {**sent["body"], "data": data}
    assert received.payload["data"] == deliveries["crm-sync"]["detail"]["body"]["data"]
    assert "1 dead letter(s), 0 not replayable" in cli("list")[1]  # crm-sync's


def test_a_letter_without_fields_for_one_opted_in_then_goes_as_the_summary(world, tmp_path) -> None:
    # Sent to full-copy without the values (superseded), then full-copy opted out: what the
    # feed sends it now is the summary, with no word of fields it no longer takes.
    cli, deliveries, _, receivers, stand_in, sqs, dlq = world
    late = json.loads(json.dumps(deliveries["full-copy"]))
    del late["detail"]["body"]["data"]["contact"]
    late["detail"]["body"]["data"]["fields_omitted"] = "superseded"
    late["detail"]["webhook"]["id"] = "msg_late"
    letter = dead_letter(sqs, dlq, json.dumps(late))
    webhooks = tmp_path / "webhooks.yaml"
    webhooks.write_text(SUBSCRIBERS.replace("    include_fields: true\n", ""), encoding="utf-8")

    code, out = cli("replay", letter)

    assert code == 0 and out.startswith(f"replayed {letter}")
    assert stand_in.deliver_pending() == 1
    (received,) = receivers["full-copy"].received
    assert received.verified and received.headers["webhook-id"] == "msg_late"
    assert received.payload["data"] == deliveries["crm-sync"]["detail"]["body"]["data"]


def test_a_crash_between_publish_and_delete_duplicates_rather_than_loses(world) -> None:
    cli, _, letters, receivers, stand_in, sqs, dlq = world
    letters_tool = WebhookDeadLetters(
        sqs=_DeleteFails(sqs),
        dead_letter_queue_url=dlq,
        subscribers=load_subscribers(os.environ["WEBHOOKS_FILE"]),
        sink=EventBridgeSink(boto3.client("events"), os.environ["EVENT_BUS_NAME"]),
        read_secret=read_secret,
    )
    with pytest.raises(ConnectionError):
        letters_tool.replay(letters_tool.find(letters["crm-sync"]))
    letters_tool.release()

    assert cli("replay", letters["crm-sync"])[0] == 0  # the letter was kept: replay again

    stand_in.deliver_pending()
    first, second = receivers["crm-sync"].received
    assert first.verified and second.verified
    # The same webhook-id: the receiver drops the second as a duplicate.
    assert first.headers["webhook-id"] == second.headers["webhook-id"]


def test_a_delivery_eventbridge_refuses_keeps_its_letter(world, capsys) -> None:
    cli, _, letters, _, _, sqs, dlq = world
    letters_tool = WebhookDeadLetters(
        sqs=sqs,
        dead_letter_queue_url=dlq,
        subscribers=load_subscribers(os.environ["WEBHOOKS_FILE"]),
        sink=_Refuses(),
        read_secret=read_secret,
    )

    replayed, refused = letters_tool.replay(letters_tool.find(letters["crm-sync"]))
    letters_tool.release()

    assert replayed == []
    assert refused == [f"{letters['crm-sync']}: not accepted by EventBridge (1 events refused)"]
    code, out = cli("list")
    assert code == 0 and "2 dead letter(s)" in out  # kept, for the next replay


class _Refuses:
    """EventBridge's answer to every entry: refused (FailedEntryCount), after the retries."""

    def publish(self, events) -> None:
        raise PublishFailed(f"{len(events)} events refused")


class _DeleteFails:
    """The SQS client of a process that dies just after EventBridge accepted the event."""

    def __init__(self, sqs) -> None:
        self._sqs = sqs

    def __getattr__(self, name: str):
        return getattr(self._sqs, name)

    def delete_message(self, **kwargs):
        raise ConnectionError("the process died here")


def test_an_erasure_deletes_the_letters_that_carry_its_contacts_fields(
    world, feed_erasure, monkeypatch
) -> None:
    _, deliveries, letters, _, _, sqs, dlq = world
    # Another contact's delivery with fields, and something that is not a delivery at all.
    other = json.loads(json.dumps(deliveries["full-copy"]))
    other["detail"]["body"]["data"]["contact_id"] = "999999"
    other["detail"]["body"]["data"]["contact"]["id"] = "999999"
    kept = [letters["crm-sync"], dead_letter(sqs, dlq, json.dumps(other))]
    # Another account's contact under the same id: another person, whose letter stays.
    namesake = json.loads(json.dumps(deliveries["full-copy"]))
    namesake["detail"]["body"]["data"]["account"] = "north-clinic"
    kept.append(dead_letter(sqs, dlq, json.dumps(namesake)))
    kept.append(dead_letter(sqs, dlq, "not an event"))
    kept.append(dead_letter(sqs, dlq, DEEP_JSON))
    arn = sqs.get_queue_attributes(QueueUrl=dlq, AttributeNames=["QueueArn"])["Attributes"]
    monkeypatch.setenv("WEBHOOK_DEAD_LETTER_QUEUE_ARN", arn["QueueArn"])
    eraser = build_eraser(ErasureSettings.from_env())

    request = {"request_id": "r-webhooks", "email": "zoe@example.com", "reason": "GDPR art. 17"}
    outcome = eraser.submit(ErasureRequest.parse(request), "arn:aws:iam::123456789012:user/dpo")

    assert outcome.result == "erased"
    by_store = {p.store: p.count for p in outcome.purged}
    assert by_store["webhook_dead_letters"] == 1
    # Only full-copy's letter carried Zoë's fields; the rest stay, visible again.
    remaining = {m["MessageId"] for m in every_message(sqs, dlq)}
    assert remaining == set(kept)
    assert letters["full-copy"] not in remaining
    # The trail counts what went, a number only; the request's status shows it too.
    (purge,) = [i for i in feed_erasure.audit_items() if i["sk"].endswith("#purge-webhooks")]
    assert [(p["store"], p["count"], p["submission_ids"]) for p in purge["purged"]] == [
        ("webhook_dead_letters", 1, [])
    ]
    assert not [v for v in PERSONAL if v in json.dumps(purge, default=str)]
    status = {p.store: p.count for p in eraser.status("r-webhooks").purged}
    assert status["webhook_dead_letters"] == 1


def test_the_purge_reads_a_bounded_number_of_letters_and_releases_them(world) -> None:
    _, deliveries, _, _, _, sqs, dlq = world
    contact_id = deliveries["full-copy"]["detail"]["body"]["data"]["contact_id"]
    dead_letter_others(sqs, dlq, 25)

    receives = []

    class CountedSqs:  # boto3's client, its receives counted
        def __getattr__(self, name):
            return getattr(sqs, name)

        def receive_message(self, **kwargs):
            answer = sqs.receive_message(**kwargs)
            receives.append(len(answer.get("Messages", [])))
            return answer

    purge = WebhookLetterPurge(CountedSqs(), dlq, max_read=10)
    deleted = purge.purge([(ACCOUNT, contact_id)]).deleted

    # It stopped once it had read ten (a receive brings up to ten), not at the 27th.
    assert sum(receives) >= 10 and sum(receives) - receives[-1] < 10
    assert sum(receives) < 27
    assert deleted <= 1
    assert len(every_message(sqs, dlq)) == 27 - deleted  # the rest visible again at once


class _CountedSqs:
    """boto3's SQS client, its receives counted (how many letters each brought)."""

    def __init__(self, sqs) -> None:
        self._sqs = sqs
        self.receives: list[int] = []

    def __getattr__(self, name):
        return getattr(self._sqs, name)

    def receive_message(self, **kwargs):
        answer = self._sqs.receive_message(**kwargs)
        self.receives.append(len(answer.get("Messages", [])))
        return answer


class _Body(str):
    """A letter's body that a test can tell is still held (a weak reference to it)."""


def test_a_notice_sqs_delivers_twice_is_counted_kept_once(world) -> None:
    # SQS delivers at least once: a receive may bring a letter a receive before it brought.
    # The purge counted the letters it deleted by id, and the notices it kept once a receive:
    # the erasure trail's `notices_kept` said 2 for the one notice there.
    from cliniko_automations.erasure.scrub import PERSONAL_FIELDS, PLACEHOLDER_FIRST_NAME

    _, deliveries, _, _, _, sqs, dlq = world
    data = deliveries["full-copy"]["detail"]["body"]["data"]
    notice = json.loads(json.dumps(deliveries["full-copy"]))
    notice["detail"]["webhook"]["id"] = "msg_erasure_notice"
    blank = dict.fromkeys(PERSONAL_FIELDS, None)
    notice["detail"]["body"]["data"]["contact"].update(blank, first_name=PLACEHOLDER_FIRST_NAME)
    notice["detail"]["body"]["data"]["erased"] = True
    dead_letter(sqs, dlq, json.dumps(notice))

    class AtLeastOnceSqs:  # boto3's client; its first answer with the notice comes twice
        def __init__(self):
            self.again = None

        def __getattr__(self, name):
            return getattr(sqs, name)

        def receive_message(self, **kwargs):
            if self.again is not None:
                answer, self.again = self.again, None
                return answer
            answer = sqs.receive_message(**kwargs)
            bodies = [m["Body"] for m in answer.get("Messages", [])]
            if any("msg_erasure_notice" in body for body in bodies):
                self.again = answer
            return answer

    done = WebhookLetterPurge(AtLeastOnceSqs(), dlq).purge([(ACCOUNT, data["contact_id"])])

    assert (done.deleted, done.notices_kept) == (1, 1)  # full-copy's letter; the notice kept


def test_the_purge_holds_one_receive_of_letters_at_a_time(world) -> None:
    # Letters as long as EventBridge lets an event be (a delivery with long notes, some
    # 250 KB): the thousand an erasure reads, held at once, took 290 MB of its 256 MB.
    _, deliveries, _, _, _, sqs, dlq = world
    contact_id = deliveries["full-copy"]["detail"]["body"]["data"]["contact_id"]
    dead_letter_others(sqs, dlq, 40)
    bodies: list[weakref.ref[_Body]] = []
    held: list[int] = []  # at each receive, the bodies of earlier receives still alive

    class TrackedSqs(_CountedSqs):
        def receive_message(self, **kwargs):
            gc.collect()
            held.append(sum(1 for body in bodies if body() is not None))
            answer = super().receive_message(**kwargs)
            for message in answer.get("Messages", []):
                message["Body"] = _Body(message["Body"])
                bodies.append(weakref.ref(message["Body"]))
            return answer

    deleted = WebhookLetterPurge(TrackedSqs(sqs), dlq).purge([(ACCOUNT, contact_id)]).deleted

    assert deleted == 1  # full-copy's letter, among the others
    assert len(bodies) >= 42 and max(held) <= 10, held  # the world's two letters too
    assert len(every_message(sqs, dlq)) == 42 - deleted  # the rest released


def test_the_purge_makes_no_receive_once_the_erasure_s_time_is_spent(world) -> None:
    _, deliveries, _, _, _, sqs, dlq = world
    contact_id = deliveries["full-copy"]["detail"]["body"]["data"]["contact_id"]
    dead_letter_others(sqs, dlq, 40)
    counted = _CountedSqs(sqs)
    reads = iter([5.0, 5.0])  # two receives' worth, then none

    with pytest.raises(PurgeCut) as cut:  # the erasure's trail says it is unfinished
        WebhookLetterPurge(counted, dlq).purge(
            [(ACCOUNT, contact_id)], time_left=lambda: next(reads, 0.0)
        )
    deleted = len(cut.value.deleted)

    assert len(counted.receives) == 2  # of the five the 42 letters take
    assert deleted <= 1  # full-copy's letter, if it was among the first 20
    assert len(every_message(sqs, dlq)) == 42 - deleted  # the rest visible again at once


def letters_eraser(feed_erasure, sqs, dlq, time_left=lambda: None) -> Eraser:
    """The feed's account's eraser, as the erasure API builds it, purging the letters of `dlq`
    within `time_left` (seconds, None for no bound)."""
    client = feed_erasure.cliniko.client(user_agent=erasure.USER_AGENT)
    return Eraser(
        ErasureAccounts([ACCOUNT], lambda _account: client),
        DynamoAuditLog(feed_erasure.table_name),
        erasure.PEPPER,
        once=PowertoolsOnce(feed_erasure.idempotency_table),
        webhook_letters=WebhookLetterPurge(sqs, dlq),
        time_left=time_left,
    )


def test_an_erasure_out_of_time_reading_the_letters_is_unfinished_in_its_trail(
    world, feed_erasure
) -> None:
    # The submissions' purge spent the invocation's time: 5 s are left, less than the letters'
    # purge leaves Cliniko, and the person's letter is not reached. Before, its record read as
    # a whole purge (count 0, no mark), and the attempt went on to Cliniko with the letter
    # still queued.
    _, deliveries, _, _, _, sqs, dlq = world
    sqs.purge_queue(QueueUrl=dlq)
    dead_letter_others(sqs, dlq, 20)
    theirs = dead_letter(sqs, dlq, json.dumps(deliveries["full-copy"]))
    contact_id = deliveries["full-copy"]["detail"]["body"]["data"]["contact_id"]

    request = ErasureRequest.parse(
        {"request_id": "r-letters-cut", "email": "zoe@example.com", "reason": "GDPR art. 17"}
    )
    caller = "arn:aws:iam::123456789012:user/dpo"

    cut = letters_eraser(feed_erasure, sqs, dlq, lambda: 5.0).submit(request, caller)

    assert (cut.status, cut.result) == ("failed", "failed")
    assert "purge_unfinished" in cut.message and "same request id" in cut.message
    (purge,) = [i for i in feed_erasure.audit_items() if i["sk"].endswith("#purge-webhooks")]
    assert purge.get("unfinished") is True
    assert [(p["store"], p["count"]) for p in purge["purged"]] == [("webhook_dead_letters", 0)]
    assert theirs in {m["MessageId"] for m in every_message(sqs, dlq)}
    assert not feed_erasure.contact(contact_id)["archived_at"]  # findable again by its email

    # The same request id, given time, reads on, deletes their letter and finishes.
    done = letters_eraser(feed_erasure, sqs, dlq).submit(request, caller)

    assert done.result == "erased", done.message
    assert {p.store: p.count for p in done.purged}["webhook_dead_letters"] == 1
    assert theirs not in {m["MessageId"] for m in every_message(sqs, dlq)}
    purges = [i for i in feed_erasure.audit_items() if i["sk"].endswith("#purge-webhooks")]
    assert sorted(bool(p.get("unfinished")) for p in purges) == [False, True]


def test_an_erasure_given_its_time_and_cut_by_the_letters_alone_goes_on_to_cliniko(
    world, feed_erasure
) -> None:
    # More letters than an invocation reads: the same request id sent again would read the
    # same first letters again (those it let go are visible at once) and never reach the
    # person's. The attempt that had its time records the purge unfinished and erases; the
    # letter past the cut expires with the queue, never replayed (its contact is erased).
    _, deliveries, _, _, _, sqs, dlq = world
    sqs.purge_queue(QueueUrl=dlq)
    dead_letter_others(sqs, dlq, 40)
    theirs = dead_letter(sqs, dlq, json.dumps(deliveries["full-copy"]))
    contact_id = deliveries["full-copy"]["detail"]["body"]["data"]["contact_id"]
    receives = []
    sqs.meta.events.register("before-call.sqs.ReceiveMessage", lambda **_: receives.append(1))
    # 30 s, and after two receives of letters only what Cliniko's part is left.
    eraser = letters_eraser(
        feed_erasure, sqs, dlq, lambda: 30.0 if len(receives) < 2 else LETTERS_LEAVE_SECONDS
    )
    request = ErasureRequest.parse(
        {"request_id": "r-letters-many", "email": "zoe@example.com", "reason": "GDPR art. 17"}
    )

    done = eraser.submit(request, "arn:aws:iam::123456789012:user/dpo")

    assert done.result == "erased", done.message
    assert len(receives) == 2
    (purge,) = [i for i in feed_erasure.audit_items() if i["sk"].endswith("#purge-webhooks")]
    assert purge.get("unfinished") is True
    assert theirs in {m["MessageId"] for m in every_message(sqs, dlq)}
    assert feed_erasure.contact(contact_id)["archived_at"]


def test_sqs_failing_part_way_through_the_letters_leaves_their_count_in_the_trail(
    world, feed_erasure
) -> None:
    # The person's letter is deleted, then SQS fails on the next receive: the attempt fails
    # before Cliniko changes, and the trail counts the letter that went (it counted none,
    # so the request's answer said no letter was purged).
    _, deliveries, _, _, _, sqs, dlq = world
    sqs.purge_queue(QueueUrl=dlq)
    theirs = dead_letter(sqs, dlq, json.dumps(deliveries["full-copy"]))
    dead_letter_others(sqs, dlq, 20)
    deletes = []

    def fail_once_one_is_deleted(**_):
        if deletes:
            raise EndpointConnectionError(endpoint_url=dlq)

    sqs.meta.events.register("before-call.sqs.DeleteMessage", lambda **_: deletes.append(1))
    sqs.meta.events.register("before-call.sqs.ReceiveMessage", fail_once_one_is_deleted)
    eraser = letters_eraser(feed_erasure, sqs, dlq)
    request = ErasureRequest.parse(
        {"request_id": "r-letters-sqs", "email": "zoe@example.com", "reason": "GDPR art. 17"}
    )

    failed = eraser.submit(request, "arn:aws:iam::123456789012:user/dpo")

    assert failed.status == "failed"
    assert "webhook_dead_letters_error:EndpointConnectionError" in failed.message
    sqs.meta.events.unregister("before-call.sqs.ReceiveMessage", fail_once_one_is_deleted)
    assert theirs not in {m["MessageId"] for m in every_message(sqs, dlq)}
    (purge,) = [i for i in feed_erasure.audit_items() if i["sk"].endswith("#purge-webhooks")]
    assert purge.get("unfinished") is True
    assert [(p["store"], p["count"]) for p in purge["purged"]] == [("webhook_dead_letters", 1)]


def test_a_retry_after_cliniko_refused_counts_the_letters_the_first_attempt_purged(
    world, feed_erasure, monkeypatch
) -> None:
    # The first attempt deletes full-copy's letter, then Cliniko refuses the scrub; the retry
    # finds no letter left. Its answer, the request's, still tells the letter went (it said
    # 0, where the stored bodies' count already took in earlier attempts').
    _, _, letters, _, _, sqs, dlq = world
    arn = sqs.get_queue_attributes(QueueUrl=dlq, AttributeNames=["QueueArn"])["Attributes"]
    monkeypatch.setenv("WEBHOOK_DEAD_LETTER_QUEUE_ARN", arn["QueueArn"])
    request = ErasureRequest.parse(
        {"request_id": "r-letters-retry", "email": "zoe@example.com", "reason": "GDPR art. 17"}
    )
    caller = "arn:aws:iam::123456789012:user/dpo"
    feed_erasure.cliniko.control.set_faults(
        error_rate=1.0, statuses=[500], methods=["PATCH", "PUT"]
    )

    first = build_eraser(ErasureSettings.from_env()).submit(request, caller)

    assert first.status == "failed", first.message
    assert {p.store: p.count for p in first.purged}["webhook_dead_letters"] == 1
    assert letters["full-copy"] not in {m["MessageId"] for m in every_message(sqs, dlq)}
    feed_erasure.cliniko.control.clear_faults()

    done = build_eraser(ErasureSettings.from_env()).submit(request, caller)

    assert done.result == "erased", done.message
    assert {p.store: p.count for p in done.purged}["webhook_dead_letters"] == 1
    assert {p.store: p.count for p in feed_erasure_status(done)}["webhook_dead_letters"] == 1
    # Each attempt's own record counts its own: 1, then 0.
    purges = [i for i in feed_erasure.audit_items() if i["sk"].endswith("#purge-webhooks")]
    assert sorted(int(p["purged"][0]["count"]) for p in purges) == [0, 1]


def test_the_erasure_cli_in_local_mode_reaches_the_letters_of_the_operators_environment(
    world, feed_erasure, monkeypatch, capsys
) -> None:
    # An operator's environment on a stack (README, "The stack's outputs"): the webhook
    # stack's queue is WEBHOOK_DEAD_LETTER_QUEUE_URL, for the replay tool. The local mode
    # read only the Lambda's WEBHOOK_DEAD_LETTER_QUEUE_ARN, which no operator sets, and erased
    # the person with full-copy's letter, their fields in it, left in the queue.
    _, _, letters, _, _, sqs, dlq = world
    monkeypatch.delenv("WEBHOOK_DEAD_LETTER_QUEUE_ARN", raising=False)
    monkeypatch.setenv("WEBHOOK_DEAD_LETTER_QUEUE_URL", dlq)
    request = ["request", "--email", "zoe@example.com", "--reason", "GDPR art. 17"]

    code = load_erasure_cli().main([*request, "--request-id", "r-cli-letters"])

    out = capsys.readouterr().out
    assert code == 0, out
    assert "Purged from webhook_dead_letters: 1 undelivered webhook(s)" in out
    remaining = {m["MessageId"] for m in every_message(sqs, dlq)}
    assert remaining == {letters["crm-sync"]}


def test_the_erasure_cli_refuses_a_queue_that_is_not_the_webhook_dead_letter_queue(
    world, feed_erasure, monkeypatch, capsys
) -> None:
    # The intake's dead-letter queue copied for it (another stack output): refused before
    # anything changed, naming the setting, as every table the local mode takes is.
    sqs = world[5]
    submissions = sqs.create_queue(QueueName="submissions-dlq")["QueueUrl"]
    source_arn = sqs.get_queue_attributes(QueueUrl=submissions, AttributeNames=["QueueArn"])
    policy = {"deadLetterTargetArn": source_arn["Attributes"]["QueueArn"], "maxReceiveCount": 5}
    sqs.create_queue(QueueName="submissions", Attributes={"RedrivePolicy": json.dumps(policy)})
    monkeypatch.setenv("WEBHOOK_DEAD_LETTER_QUEUE_URL", submissions)
    request = ["request", "--email", "zoe@example.com", "--reason", "GDPR art. 17"]

    code = load_erasure_cli().main([*request, "--request-id", "r-cli-wrong-queue"])

    assert code == 1
    err = capsys.readouterr().err
    assert "WEBHOOK_DEAD_LETTER_QUEUE_URL" in err and "webhook dead-letter queue" in err
    assert not [i for i in feed_erasure.audit_items() if i["request_id"] == "r-cli-wrong-queue"]


def feed_erasure_status(outcome):
    return build_eraser(ErasureSettings.from_env()).status(outcome.request_id).purged


def test_a_letter_an_erasure_missed_is_never_replayed(
    world, feed_erasure, monkeypatch, capsys
) -> None:
    # The erasure ran without the webhook queue (or while EventBridge still retried, or while
    # a listing held the letter): full-copy's letter with Zoë's fields is still there.
    cli, deliveries, letters, receivers, stand_in, sqs, dlq = world
    # Another account's contact under the same id: another person, not erased.
    namesake = json.loads(json.dumps(deliveries["full-copy"]))
    namesake["detail"]["body"]["data"]["account"] = "north-clinic"
    namesake["detail"]["body"]["data"]["contact"]["first_name"] = "Someone"
    namesake_letter = dead_letter(sqs, dlq, json.dumps(namesake))
    monkeypatch.delenv("WEBHOOK_DEAD_LETTER_QUEUE_ARN", raising=False)
    request = {"request_id": "r-missed", "email": "zoe@example.com", "reason": "GDPR art. 17"}
    outcome = build_eraser(ErasureSettings.from_env()).submit(
        ErasureRequest.parse(request), "arn:aws:iam::123456789012:user/dpo"
    )
    assert outcome.result == "erased"

    code, out = cli("replay", "--all")  # the trail is the erasure's (AUDIT_TABLE)

    assert code == 1
    # crm-sync's, which carries ids only, and the namesake's in the other account.
    assert out.count("replayed ") == 2 and f"replayed {namesake_letter}" in out
    assert f"{letters['full-copy']}: its contact was erased" in capsys.readouterr().err
    assert stand_in.deliver_pending() == 2
    received = receivers["full-copy"].received
    assert [json.loads(r.body)["data"]["account"] for r in received] == ["north-clinic"]
    # Without the trail, no letter carrying fields is sent at all.
    monkeypatch.delenv("AUDIT_TABLE")
    code, out = cli("replay", letters["full-copy"])
    assert code == 1 and "give --audit-table" in capsys.readouterr().err


def test_a_contact_a_lookup_from_before_accounts_matched_is_erased_in_any_account(
    world, capsys
) -> None:
    # A lookup recorded before the erasure covered several accounts keeps ids alone.
    cli, deliveries, letters, receivers, stand_in, _, _ = world
    contact_id = deliveries["full-copy"]["detail"]["body"]["data"]["contact_id"]
    boto3.client("dynamodb").put_item(
        TableName="replay-audit",
        Item={
            "request_id": {"S": "r-legacy"},
            "sk": {"S": "001#lookup"},
            "record": {"S": "lookup"},
            "result": {"S": "found"},
            "contact_ids": {"L": [{"S": contact_id}]},
        },
    )

    code, _ = cli("replay", letters["full-copy"])

    assert code == 1
    assert stand_in.deliver_pending() == 0 and receivers["full-copy"].received == []
    assert f"{letters['full-copy']}: its contact was erased" in capsys.readouterr().err


def test_a_letter_whose_contact_only_a_dry_run_matched_is_replayed(
    world, feed_erasure, monkeypatch
) -> None:
    cli, _, letters, receivers, stand_in, _, _ = world
    monkeypatch.delenv("WEBHOOK_DEAD_LETTER_QUEUE_ARN", raising=False)
    request = {
        "request_id": "r-dry",
        "email": "zoe@example.com",
        "reason": "GDPR art. 17",
        "dry_run": True,
    }
    outcome = build_eraser(ErasureSettings.from_env()).submit(
        ErasureRequest.parse(request), "arn:aws:iam::123456789012:user/dpo"
    )
    assert outcome.result == "dry_run" and outcome.contact_ids

    code, out = cli("replay", letters["full-copy"])

    assert code == 0 and out.startswith("replayed ")
    assert stand_in.deliver_pending() == 1
    (received,) = receivers["full-copy"].received
    assert received.verified and json.loads(received.body)["data"]["contact"]["first_name"] == "Zoë"


def test_an_unreachable_letter_queue_stops_the_erasure_before_cliniko_changes(
    world, feed_erasure, monkeypatch
) -> None:
    _, _, letters, _, _, sqs, dlq = world
    arn = "arn:aws:sqs:eu-west-1:123456789012:no-such-webhook-letters"
    monkeypatch.setenv("WEBHOOK_DEAD_LETTER_QUEUE_ARN", arn)
    request = {"request_id": "r-unreachable", "email": "zoe@example.com", "reason": "GDPR"}
    caller = "arn:aws:iam::123456789012:user/dpo"

    outcome = build_eraser(ErasureSettings.from_env()).submit(ErasureRequest.parse(request), caller)

    # Nothing changed in Cliniko yet: a retry must still find the contact by its email.
    assert outcome.status == "failed"
    assert "webhook_dead_letters_error:" in outcome.message
    (contact_id,) = outcome.contact_ids
    assert not feed_erasure.contact(contact_id)["archived_at"]
    # Once the queue is right, the same request id finishes the job.
    real = sqs.get_queue_attributes(QueueUrl=dlq, AttributeNames=["QueueArn"])["Attributes"]
    monkeypatch.setenv("WEBHOOK_DEAD_LETTER_QUEUE_ARN", real["QueueArn"])
    again = build_eraser(ErasureSettings.from_env()).submit(ErasureRequest.parse(request), caller)
    assert again.status == "completed"
    assert {p.store: p.count for p in again.purged}["webhook_dead_letters"] == 1
    assert letters["full-copy"] not in {m["MessageId"] for m in every_message(sqs, dlq)}


def test_a_malformed_queue_arn_is_a_settings_error(erasure_stack, monkeypatch) -> None:
    monkeypatch.setenv("WEBHOOK_DEAD_LETTER_QUEUE_ARN", "https://sqs.example/queue")
    with pytest.raises(SettingsError, match="WEBHOOK_DEAD_LETTER_QUEUE_ARN"):
        build_eraser(ErasureSettings.from_env())


def test_the_webhook_tools_say_an_environment_mistake_in_one_line(aws, tmp_path, capsys) -> None:
    from cliniko_automations.changefeed import webhook_stack

    webhooks = tmp_path / "webhooks.yaml"
    webhooks.write_text("subscribers: []\n")
    dlq = boto3.client("sqs").create_queue(QueueName="webhook-letters")["QueueUrl"]
    assert main(["--dlq-url", dlq + "-typo", "--webhooks-file", str(webhooks), "list"]) == 1
    (line,) = capsys.readouterr().err.splitlines()
    assert line.startswith("webhook_dead_letters: QueueDoesNotExist")
    missing = str(tmp_path / "missing.yaml")
    assert main(["--dlq-url", dlq, "--webhooks-file", missing, "list"]) == 1
    (line,) = capsys.readouterr().err.splitlines()
    assert line.startswith(f"webhook_dead_letters: ConfigError: {missing}: cannot read the file")
    assert webhook_stack.main([missing]) == 1
    (line,) = capsys.readouterr().err.splitlines()
    assert line.startswith(f"webhook_stack: ConfigError: {missing}: cannot read the file")


def replay_refused_in_one_line(cli, capsys) -> str:
    """`replay --all` ending in one line, exit 1, as the tools say an operator's mistake
    (README "Operating"), not a traceback: the line."""
    capsys.readouterr()
    try:
        code = cli("replay", "--all")[0]
        message = capsys.readouterr().err
    except SystemExit as exit_:  # the tools' way to say a mistake in one line
        code, message = 1, str(exit_.code)
    assert code == 1
    assert message.strip().count("\n") == 0
    return message


def test_a_malformed_subscriber_secret_is_one_line(world, capsys) -> None:
    # Not `whsec_` + base64 (rotated by hand, `openssl rand` pasted without the prefix): before,
    # a BadSigningSecret traceback.
    cli, _, letters, _, _, _, _ = world
    boto3.client("secretsmanager").put_secret_value(
        SecretId="tests/webhooks/crm-sync", SecretString="not a whsec secret"
    )
    clear_secret_caches()  # a new process reads the secret afresh

    message = replay_refused_in_one_line(cli, capsys)

    assert "tests/webhooks/crm-sync" in message and "whsec_" in message
    assert "not a whsec secret" not in message  # never the value
    # Nothing was replayed, and every letter is visible again at once.
    assert len(cli("list", "--json")[1].splitlines()) == len(letters)


def test_an_audit_table_that_is_not_the_trail_is_one_line(world, capsys, monkeypatch) -> None:
    # AUDIT_TABLE of another table (the wrong stack output, e.g. LedgerTableName), as
    # erasure.py says the same mistake.
    cli, _, letters, _, _, _, _ = world  # a full-copy letter carries contact fields
    ddb = boto3.client("dynamodb")
    ddb.create_table(
        TableName="not-the-trail",
        KeySchema=[{"AttributeName": "pk", "KeyType": "HASH"}],
        AttributeDefinitions=[{"AttributeName": "pk", "AttributeType": "S"}],
        BillingMode="PAY_PER_REQUEST",
    )
    ddb.put_item(TableName="not-the-trail", Item={"pk": {"S": "ledger#1"}})
    monkeypatch.setenv("AUDIT_TABLE", "not-the-trail")

    message = replay_refused_in_one_line(cli, capsys)

    assert message.startswith(
        "webhook_dead_letters: AUDIT_TABLE: table not-the-trail is not an erasure audit table "
        "(keyed pk): take it from the stack's ErasureAuditTableName output"
    )
    # Nothing was replayed, and every letter is visible again at once.
    monkeypatch.setenv("AUDIT_TABLE", "replay-audit")
    assert len(cli("list", "--json")[1].splitlines()) == len(letters)


def _tag_with_stack(arn: str, stack: str) -> None:
    """As CloudFormation tags each resource of stack `stack`."""
    tag = {
        "Key": STACK_TAG,
        "Value": f"arn:aws:cloudformation:eu-west-1:123456789012:stack/{stack}/1",
    }
    if ":events:" in arn:
        boto3.client("events").tag_resource(ResourceARN=arn, Tags=[tag])
    else:
        ddb = boto3.client("dynamodb")
        ddb.untag_resource(ResourceArn=arn, TagKeys=[STACK_TAG])  # moto adds a second
        ddb.tag_resource(ResourceArn=arn, Tags=[tag])


def test_an_audit_table_of_another_stack_than_the_bus_is_one_line(world, capsys, monkeypatch):
    # Both of their kinds, but dev's trail with prod's bus: the trail knows nothing of prod's
    # erasures, and an erased person's letter went out again, their fields in it.
    cli, _, letters, _, _, _, _ = world
    events, ddb = boto3.client("events"), boto3.client("dynamodb")
    _tag_with_stack(events.describe_event_bus(Name=os.environ["EVENT_BUS_NAME"])["Arn"], "prod")
    _tag_with_stack(ddb.describe_table(TableName="replay-audit")["Table"]["TableArn"], "dev")

    message = replay_refused_in_one_line(cli, capsys)

    assert message.strip() == (
        "webhook_dead_letters: AUDIT_TABLE of dev, --bus of prod: not one stack's: take them "
        "all from the same stack's outputs"
    )
    # Nothing was replayed; one stack's two, the letters are read again.
    _tag_with_stack(ddb.describe_table(TableName="replay-audit")["Table"]["TableArn"], "prod")
    assert len(cli("list", "--json")[1].splitlines()) == len(letters)


def test_an_empty_audit_table_of_another_kind_is_one_line(world, capsys, monkeypatch) -> None:
    # The submission store (SubmissionStoreTableName copied for AUDIT_TABLE), empty: before, a
    # scan of it found no erased contact, and every letter was replayed, a contact's fields
    # whatever an erasure said.
    cli, _, letters, _, _, _, _ = world
    create_submission_store(boto3.client("dynamodb"), "intake-store")
    monkeypatch.setenv("AUDIT_TABLE", "intake-store")

    message = replay_refused_in_one_line(cli, capsys)

    assert message.startswith(
        "webhook_dead_letters: AUDIT_TABLE: table intake-store is not an erasure audit table"
    )
    monkeypatch.setenv("AUDIT_TABLE", "replay-audit")
    assert len(cli("list", "--json")[1].splitlines()) == len(letters)


def test_a_queue_of_the_intake_for_the_webhook_letters_is_one_line(aws, tmp_path, capsys) -> None:
    # The main stack's SubmissionDeadLetterQueueUrl (or its submission queue) copied for the
    # webhook stack's: before, `list` hid the intake's messages from their readers for two
    # minutes and showed each as "not a webhook delivery".
    intake = create_worker_stack("intake")
    intake.enqueue(json_submission(ContactDraft(first_name="Ana")), queue_url=intake.queue_url)
    webhooks = tmp_path / "webhooks.yaml"
    webhooks.write_text("subscribers: []\n")
    for queue, place in (
        (intake.dead_letter_queue_url, "another queue redrives to it"),
        (intake.queue_url, "it redrives to a dead-letter queue"),
    ):
        assert main(["--dlq-url", queue, "--webhooks-file", str(webhooks), "list"]) == 1
        assert capsys.readouterr().err.splitlines() == [
            f"webhook_dead_letters: --dlq-url: queue {queue} is not the webhook dead-letter "
            f"queue ({place}): take it from the stack's WebhookDeadLetterQueueUrl (webhook "
            "stack) output"
        ]
    assert intake.counts(intake.queue_url) == (1, 0)  # visible to the worker, as it was
