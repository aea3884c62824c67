"""The change feed's AWS side in moto, as template.yaml declares it (the feed table, the
contacts bus, the hash-key secret), plus an SQS queue subscribed to the bus by a rule: the
tests read the bus through it, as any AWS subscriber would."""

from __future__ import annotations

import base64
import contextlib
import datetime as dt
import json
import time
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import boto3
from cliniko_automations.changefeed import handler
from cliniko_automations.changefeed.events import CONTACTS_SOURCE, WEBHOOKS_SOURCE
from cliniko_automations.common import aws

from tests.fixtures.apigw import LambdaContext

ACCOUNT = "test-clinic"
KEY_SECRET = "tests/cliniko/test-clinic"
HASH_KEY_SECRET = "tests/changefeed/hash-key"
USER_AGENT = "Change Feed Tests (tests@example.com)"
ACCOUNTS = """\
accounts:
  test-clinic:
    api_key_secret: tests/cliniko/test-clinic
"""
# ChangeFeedFunction's timeout in template.yaml.
TIMEOUT_MS = 120_000
# What a bus event's detail (and a webhook's body, the contact's fields aside) holds, per the
# README's event table.
EVENT_DETAIL_KEYS = {
    "event_id",
    "type",
    "account",
    "contact_id",
    "updated_at",
    "changed_fields",
    "first_seen",
    "erased",
}
SCHEDULED_EVENT = {
    "version": "0",
    "id": "0f7c4f5e-1a2b-4c3d-8e9f-001122334455",
    "detail-type": "Scheduled Event",
    "source": "aws.events",
    "account": "123456789012",
    "time": "2026-12-01T12:00:00Z",
    "region": "eu-west-1",
    "resources": ["arn:aws:events:eu-west-1:123456789012:rule/changefeed"],
    "detail": {},
}


def context(timeout_ms: int = TIMEOUT_MS) -> LambdaContext:
    return LambdaContext(function_name="ChangeFeedFunction", timeout_ms=timeout_ms)


def run_feed() -> dict[str, Any]:
    """One scheduled invocation of the change feed: its (first) account's result."""
    return handler.lambda_handler(SCHEDULED_EVENT, context())["accounts"][0]


def new_webhook_secret() -> str:
    return "whsec_" + base64.b64encode(uuid.uuid4().bytes + uuid.uuid4().bytes).decode()


def subscribed(directory: Path, subscribers: str, *names: str) -> dict[str, str]:
    """Write `subscribers` as the webhooks file `feed_environment` then points at, and make
    each named subscriber's signing secret (`tests/webhooks/<name>`): the secrets by name."""
    (directory / "webhooks.yaml").write_text(subscribers, encoding="utf-8")
    secrets = {name: new_webhook_secret() for name in names}
    manager = boto3.client("secretsmanager")
    for name, value in secrets.items():
        manager.create_secret(Name=f"tests/webhooks/{name}", SecretString=value)
    return secrets


@dataclass
class FeedStack:
    table: str
    bus: str
    tap_queue_url: str
    webhook_queue_url: str
    sqs: Any = field(repr=False)
    dynamodb: Any = field(repr=False)

    def drain(self, queue_url: str | None = None) -> list[dict[str, Any]]:
        """Every event delivered to a tap queue so far (the EventBridge envelopes)."""
        url = queue_url or self.tap_queue_url
        events = []
        while True:
            answer = self.sqs.receive_message(
                QueueUrl=url, MaxNumberOfMessages=10, WaitTimeSeconds=0
            )
            messages = answer.get("Messages", [])
            if not messages:
                return events
            for message in messages:
                events.append(json.loads(message["Body"]))
            self.sqs.delete_message_batch(
                QueueUrl=url,
                Entries=[
                    {"Id": str(i), "ReceiptHandle": m["ReceiptHandle"]}
                    for i, m in enumerate(messages)
                ],
            )

    def hold_lease(self, account: str = ACCOUNT, seconds: int = 60) -> None:
        """Another run polling `account` for the next `seconds`."""
        self.dynamodb.put_item(
            TableName=self.table,
            Item={
                "pk": {"S": f"lease#{account}"},
                "owner": {"S": "other-run"},
                "until": {"N": str(int(time.time()) + seconds)},
            },
        )

    def expire_lease(self, account: str = ACCOUNT) -> None:
        """What the passing of a killed run's Lambda timeout does to its lease."""
        self.dynamodb.delete_item(TableName=self.table, Key={"pk": {"S": f"lease#{account}"}})

    def items(self) -> list[dict[str, Any]]:
        return self.dynamodb.scan(TableName=self.table)["Items"]


def create_feed_stack() -> FeedStack:
    dynamodb = boto3.client("dynamodb")
    events = boto3.client("events")
    sqs = boto3.client("sqs")
    secrets = boto3.client("secretsmanager")
    table = "changefeed-test"
    dynamodb.create_table(
        TableName=table,
        AttributeDefinitions=[{"AttributeName": "pk", "AttributeType": "S"}],
        KeySchema=[{"AttributeName": "pk", "KeyType": "HASH"}],
        BillingMode="PAY_PER_REQUEST",
    )
    bus = "stack-contacts"
    events.create_event_bus(Name=bus)
    queues = {}
    for name, source in (("tap", CONTACTS_SOURCE), ("webhooks", WEBHOOKS_SOURCE)):
        url = sqs.create_queue(QueueName=f"changefeed-{name}")["QueueUrl"]
        arn = sqs.get_queue_attributes(QueueUrl=url, AttributeNames=["QueueArn"])["Attributes"][
            "QueueArn"
        ]
        events.put_rule(
            Name=f"to-{name}",
            EventBusName=bus,
            EventPattern=json.dumps({"source": [source]}),
        )
        events.put_targets(Rule=f"to-{name}", EventBusName=bus, Targets=[{"Id": name, "Arn": arn}])
        queues[name] = url
    secrets.create_secret(Name=HASH_KEY_SECRET, SecretString=uuid.uuid4().hex * 2)
    return FeedStack(table, bus, queues["tap"], queues["webhooks"], sqs, dynamodb)


def caught_up_hours_ago(stack: FeedStack, hours: float, account: str = "test-clinic") -> None:
    """Set the account's cursor as caught up `hours` ago: a feed that has been behind since."""
    moment = dt.datetime.now(dt.UTC) - dt.timedelta(hours=hours)
    stack.dynamodb.update_item(
        TableName=stack.table,
        Key={"pk": {"S": f"cursor#{account}"}},
        UpdateExpression="SET caught_up_at = :t",
        ExpressionAttributeValues={":t": {"S": moment.strftime("%Y-%m-%dT%H:%M:%SZ")}},
    )


def feed_environment(
    monkeypatch: Any, stack: FeedStack, cliniko: Any, directory: Path, **extra: str
) -> None:
    boto3.client("secretsmanager").create_secret(Name=KEY_SECRET, SecretString=cliniko.api_key)
    accounts = directory / "cliniko_accounts.yaml"
    accounts.write_text(ACCOUNTS, encoding="utf-8")
    webhooks = directory / "webhooks.yaml"
    if not webhooks.exists():
        webhooks.write_text("subscribers: []\n", encoding="utf-8")
    env = {
        "FEED_TABLE": stack.table,
        "EVENT_BUS_NAME": stack.bus,
        "HASH_KEY_SECRET_NAME": HASH_KEY_SECRET,
        "CLINIKO_ACCOUNTS_FILE": str(accounts),
        "WEBHOOKS_FILE": str(webhooks),
        "CLINIKO_USER_AGENT": USER_AGENT,
        "CLINIKO_BASE_URL": cliniko.base_url_template,
        # Tests make hundreds of changes at once; the deployed default share is 20 a minute.
        "REQUESTS_PER_MINUTE": "200",
        **extra,
    }
    monkeypatch.delenv("BACKFILL_FROM", raising=False)
    for name, value in env.items():
        monkeypatch.setenv(name, value)


@contextlib.contextmanager
def delivering(
    stack: FeedStack, directory: Path, secrets: dict[str, str]
) -> Iterator[tuple[dict[str, Any], Any]]:
    """A receiver checking signatures for each subscriber of `secrets` (as `subscribed` wrote
    them to `directory`'s webhooks.yaml), and the stand-in for the API destinations that
    EventBridge would call with the bus's events."""
    from cliniko_automations.changefeed.subscribers import load_subscribers
    from cliniko_automations.changefeed.webhook_stack import render
    from local_run.webhooks import ApiDestinationStandIn, SignedWebhookReceiver

    receivers = {name: SignedWebhookReceiver(secret).start() for name, secret in secrets.items()}
    try:
        stand_in = ApiDestinationStandIn(
            render(load_subscribers(directory / "webhooks.yaml")),
            boto3.client("events"),
            boto3.client("sqs"),
            stack.bus,
            {name: receiver.url for name, receiver in receivers.items()},
        )
        yield receivers, stand_in
    finally:
        for receiver in receivers.values():
            receiver.stop()


@contextlib.contextmanager
def eventbridge_refusing(refused: Callable[[dict[str, Any]], bool]) -> Iterator[None]:
    """EventBridge answering every PutEvents entry `refused` picks out as throttled, attempt
    after attempt, and taking the others (a botocore hook on the functions' events client: the
    AWS boundary). Moto has routed each entry before its answer is rewritten."""
    sent: list[list[dict[str, Any]]] = []

    def remember(params: dict[str, Any], **_: Any) -> None:
        sent.append(params["Entries"])

    def refuse(parsed: dict[str, Any], **_: Any) -> None:
        for n, entry in enumerate(sent[-1]):
            if refused(entry):
                parsed["Entries"][n] = {"ErrorCode": "ThrottlingException", "ErrorMessage": "-"}
                parsed["FailedEntryCount"] = parsed.get("FailedEntryCount", 0) + 1

    emitter = aws.client("events", config=aws.FAIL_FAST).meta.events
    emitter.register("provide-client-params.events.PutEvents", remember, unique_id="remember")
    emitter.register("after-call.events.PutEvents", refuse, unique_id="refuse")
    try:
        yield
    finally:
        emitter.unregister("provide-client-params.events.PutEvents", unique_id="remember")
        emitter.unregister("after-call.events.PutEvents", unique_id="refuse")
