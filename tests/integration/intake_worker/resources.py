"""The worker's AWS resources in moto, as template.yaml declares them (names are local).

Shared by the worker's integration tests, the end-to-end intake tests and
scripts/bench_intake.py: tables (Powertools layout for idempotency, `contact_id` for the
ledger, the submission store with its email-hash index), the submission queue with its
redrive to the dead-letter queue after five receives, the parked queue, and a Cliniko key
secret per account.
"""

from __future__ import annotations

import contextlib
import importlib.util
import itertools
import json
import logging
import sys
import threading
import time
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import boto3
from cliniko_automations.common.person_keys import PersonKeys
from cliniko_automations.common.stack_resources import STACK_TAG
from cliniko_automations.common.submission_store import (
    EMAIL_INDEX,
    NAME_INDEX,
    DynamoSubmissionStore,
)
from cliniko_automations.intake.submission import (
    ContactDraft,
    QueuedSubmission,
    Submission,
    UpdatePolicy,
)

MAX_RECEIVE_COUNT = 5
# The worker function's timeout in template.yaml: test invocations get as long.
WORKER_TIMEOUT_MS = 120_000
# moto's SQS rebuilds a queue's message list on every delete without a lock, so concurrent
# deletes (the reliability tests' worker threads) can bring a deleted message back or drop one
# another thread received, which then fails to delete as ReceiptHandleIsInvalid: 242 of 600
# messages came back from six threads deleting at once. Real SQS does neither, so the harness
# standing in for Lambda's poller receives and deletes one call at a time.
_QUEUE_CALLS = threading.Lock()

# The worker's configuration file: the Cliniko accounts (the submission carries the rest).
WORKER_CONFIG = """\
accounts:
  test-clinic:
    api_key_secret: tests/cliniko/test-clinic
"""


_submission_numbers = itertools.count(1)


def json_submission(
    draft: ContactDraft,
    *,
    account: str = "test-clinic",
    key: str | None = None,
    policy: UpdatePolicy = "fill_blanks",
) -> Submission:
    """A submission of the test-json form source, numbered afresh: its id and, unless `key` is
    given, its idempotency key are its own."""
    n = next(_submission_numbers)
    return Submission(
        submission_id=f"sub-{n}",
        idempotency_key=key or f"test-json:{n}",
        source="test-json",
        provider="json",
        account=account,
        received_at=datetime.now(UTC),
        update_policy=policy,
        draft=draft,
    )


@dataclass
class WorkerStack:
    idempotency_table: str
    ledger_table: str
    queue_url: str
    queue_arn: str
    dead_letter_queue_url: str
    parked_queue_url: str
    submission_table: str
    sqs: Any = field(repr=False)
    dynamodb: Any = field(repr=False)

    def env(self, **extra: str) -> dict[str, str]:
        return {
            "IDEMPOTENCY_TABLE": self.idempotency_table,
            "LEDGER_TABLE": self.ledger_table,
            "SUBMISSION_TABLE": self.submission_table,
            "PARKED_QUEUE_URL": self.parked_queue_url,
            "SUBMISSION_QUEUE_URL": self.queue_url,
            **extra,
        }

    # --- queues as a test drives them ---------------------------------------------------

    def store(self) -> DynamoSubmissionStore:
        return DynamoSubmissionStore(self.dynamodb, self.submission_table)

    def enqueue(
        self,
        submission: Submission,
        *,
        email_hmac: str | None = None,
        queue_url: str | None = None,
    ) -> str:
        """Queue a submission as the intake API does (claim check): body to the store, id to
        the queue. Returns the SQS message id."""
        self.store().put(submission.submission_id, submission.to_json(), PersonKeys(email_hmac))
        return self.sqs.send_message(
            QueueUrl=queue_url or self.queue_url,
            MessageBody=QueuedSubmission.of(submission).to_json(),
        )["MessageId"]

    def queued_message(self, submission: Submission) -> str:
        """A queue message body for a submission whose body is already stored."""
        return QueuedSubmission.of(submission).to_json()

    def receive(
        self, queue_url: str | None = None, *, max_messages: int = 10, visibility: int = 30
    ) -> list[dict[str, Any]]:
        with _QUEUE_CALLS:
            answer = self.sqs.receive_message(
                QueueUrl=queue_url or self.queue_url,
                MaxNumberOfMessages=max_messages,
                VisibilityTimeout=visibility,
                WaitTimeSeconds=0,
                AttributeNames=["All"],
                MessageAttributeNames=["All"],
            )
        return answer.get("Messages", [])

    def drain(self, queue_url: str) -> list[dict[str, Any]]:
        """Every message now in a queue (hidden for a while after, so each is read once)."""
        messages: list[dict[str, Any]] = []
        empty_reads = 0
        while empty_reads < 2:
            batch = self.receive(queue_url, visibility=300)
            empty_reads = 0 if batch else empty_reads + 1
            messages.extend(batch)
        return messages

    def counts(self, queue_url: str) -> tuple[int, int]:
        attributes = self.sqs.get_queue_attributes(
            QueueUrl=queue_url,
            AttributeNames=[
                "ApproximateNumberOfMessages",
                "ApproximateNumberOfMessagesNotVisible",
            ],
        )["Attributes"]
        return (
            int(attributes["ApproximateNumberOfMessages"]),
            int(attributes["ApproximateNumberOfMessagesNotVisible"]),
        )

    def ledger_items(self) -> list[dict[str, str]]:
        items = []
        for page in self.dynamodb.get_paginator("scan").paginate(TableName=self.ledger_table):
            items += [{k: v["S"] for k, v in item.items()} for item in page["Items"]]
        return items


class WorldClock:
    """Days pass for the worker: its clock and the Cliniko emulator's move forward together,
    and the idempotency table loses what DynamoDB's TTL would have deleted by then
    (Powertools' records after a day; intents, failures and claims by their own expiry).
    The process's Cliniko rate budgets move too: the requests they counted were days ago.
    Everything else (moto, the request signatures of the intake API, the wall-clock time a
    429's reset is measured against) keeps the real time."""

    def __init__(self, monkeypatch: Any, stack: WorkerStack, control: Any) -> None:
        from cliniko_automations.cliniko import pacing
        from cliniko_automations.intake_worker import runtime

        self.offset = timedelta(0)
        self._stack = stack
        self._control = control
        monkeypatch.setattr(runtime, "now", self.now, raising=False)
        monkeypatch.setattr(
            pacing.SYSTEM_CLOCK,
            "monotonic",
            lambda: time.monotonic() + self.offset.total_seconds(),
            raising=False,
        )

    def now(self) -> datetime:
        return datetime.now(UTC) + self.offset

    def advance(self, delta: timedelta) -> None:
        self.offset += delta
        self._control.set_clock(self.offset.total_seconds())
        now = time.time() + self.offset.total_seconds()
        table = self._stack.idempotency_table
        for page in self._stack.dynamodb.get_paginator("scan").paginate(TableName=table):
            for item in page["Items"]:
                expiration = item.get("expiration", {}).get("N")
                if expiration is not None and float(expiration) < now:
                    self._stack.dynamodb.delete_item(TableName=table, Key={"id": item["id"]})


def sqs_event(messages: list[dict[str, Any]], queue_arn: str) -> dict[str, Any]:
    """The event Lambda's SQS poller hands the function, built from received messages."""
    records = []
    for message in messages:
        attributes = message.get("Attributes", {})
        records.append(
            {
                "messageId": message["MessageId"],
                "receiptHandle": message["ReceiptHandle"],
                "body": message["Body"],
                "attributes": {
                    "ApproximateReceiveCount": attributes.get("ApproximateReceiveCount", "1"),
                    "SentTimestamp": attributes.get("SentTimestamp", "0"),
                    "SenderId": attributes.get("SenderId", "AIDATEST"),
                    "ApproximateFirstReceiveTimestamp": attributes.get(
                        "ApproximateFirstReceiveTimestamp", "0"
                    ),
                },
                "messageAttributes": {
                    name: {
                        "stringValue": value.get("StringValue"),
                        "dataType": value.get("DataType", "String"),
                    }
                    for name, value in message.get("MessageAttributes", {}).items()
                },
                "md5OfBody": message.get("MD5OfBody", ""),
                "eventSource": "aws:sqs",
                "eventSourceARN": queue_arn,
                "awsRegion": queue_arn.split(":")[3],
            }
        )
    return {"Records": records}


def poll_once(
    stack: WorkerStack,
    handler: Any,
    context: Any,
    *,
    max_messages: int = 10,
    visibility: int = 60,
) -> tuple[list[dict[str, Any]], set[str]]:
    """What Lambda's SQS poller does once: receive a batch, invoke the function, delete the
    records it did not report as failed. Returns (messages, failed message ids)."""
    messages = stack.receive(max_messages=max_messages, visibility=visibility)
    if not messages:
        return [], set()
    response = handler(sqs_event(messages, stack.queue_arn), context)
    failed = {item["itemIdentifier"] for item in response.get("batchItemFailures", [])}
    for message in messages:
        if message["MessageId"] not in failed:
            with _QUEUE_CALLS:
                stack.sqs.delete_message(
                    QueueUrl=stack.queue_url, ReceiptHandle=message["ReceiptHandle"]
                )
    return messages, failed


def create_submission_store(dynamodb: Any, name: str) -> str:
    """The SubmissionStoreTable of template.yaml: pk `id`, the email- and name-hash indexes,
    TTL."""
    dynamodb.create_table(
        TableName=name,
        KeySchema=[{"AttributeName": "id", "KeyType": "HASH"}],
        AttributeDefinitions=[
            {"AttributeName": "id", "AttributeType": "S"},
            {"AttributeName": "email_hmac", "AttributeType": "S"},
            {"AttributeName": "name_hmac", "AttributeType": "S"},
        ],
        GlobalSecondaryIndexes=[
            {
                "IndexName": EMAIL_INDEX,
                "KeySchema": [{"AttributeName": "email_hmac", "KeyType": "HASH"}],
                "Projection": {"ProjectionType": "KEYS_ONLY"},
            },
            {
                "IndexName": NAME_INDEX,
                "KeySchema": [{"AttributeName": "name_hmac", "KeyType": "HASH"}],
                "Projection": {"ProjectionType": "INCLUDE", "NonKeyAttributes": ["name_phone"]},
            },
        ],
        BillingMode="PAY_PER_REQUEST",
    )
    dynamodb.update_time_to_live(
        TableName=name, TimeToLiveSpecification={"Enabled": True, "AttributeName": "expiration"}
    )
    return name


def stored_submission(dynamodb: Any, table: str, message_body: str) -> Submission:
    """The submission a queue message names, read from the store (the claim check)."""
    queued = QueuedSubmission.from_json(message_body)
    stored = DynamoSubmissionStore(dynamodb, table).get(queued.submission_id)
    assert stored is not None, f"no stored body for {queued.submission_id}"
    return Submission.from_json(stored.body)


def create_worker_stack(prefix: str = "intake") -> WorkerStack:
    dynamodb = boto3.client("dynamodb")
    sqs = boto3.client("sqs")
    idempotency = f"{prefix}-idempotency"
    ledger = f"{prefix}-ledger"
    dynamodb.create_table(
        TableName=idempotency,
        KeySchema=[{"AttributeName": "id", "KeyType": "HASH"}],
        AttributeDefinitions=[{"AttributeName": "id", "AttributeType": "S"}],
        BillingMode="PAY_PER_REQUEST",
    )
    dynamodb.update_time_to_live(
        TableName=idempotency,
        TimeToLiveSpecification={"Enabled": True, "AttributeName": "expiration"},
    )
    submissions = create_submission_store(dynamodb, f"{prefix}-submission-store")
    # The ledger as template.yaml defines it, the cleanup's sparse active index included.
    from tests.integration.cleanup.tables import create_table

    create_table("LedgerTable", ledger)
    dlq_url = sqs.create_queue(QueueName=f"{prefix}-dead-letters")["QueueUrl"]
    dlq_arn = sqs.get_queue_attributes(QueueUrl=dlq_url, AttributeNames=["QueueArn"])["Attributes"][
        "QueueArn"
    ]
    queue_url = sqs.create_queue(
        QueueName=f"{prefix}-submissions",
        Attributes={
            "VisibilityTimeout": "60",
            "RedrivePolicy": json.dumps(
                {"deadLetterTargetArn": dlq_arn, "maxReceiveCount": str(MAX_RECEIVE_COUNT)}
            ),
        },
    )["QueueUrl"]
    queue_arn = sqs.get_queue_attributes(QueueUrl=queue_url, AttributeNames=["QueueArn"])[
        "Attributes"
    ]["QueueArn"]
    parked_url = sqs.create_queue(QueueName=f"{prefix}-parked")["QueueUrl"]
    # As CloudFormation tags a stack's every resource: the tools check they are one stack's.
    stack = {STACK_TAG: f"arn:aws:cloudformation:eu-west-1:123456789012:stack/{prefix}/1"}
    for url in (dlq_url, queue_url, parked_url):
        sqs.tag_queue(QueueUrl=url, Tags=stack)
    for table in (idempotency, ledger, submissions):
        arn = dynamodb.describe_table(TableName=table)["Table"]["TableArn"]
        dynamodb.tag_resource(
            ResourceArn=arn, Tags=[{"Key": k, "Value": v} for k, v in stack.items()]
        )
    return WorkerStack(
        idempotency_table=idempotency,
        ledger_table=ledger,
        queue_url=queue_url,
        queue_arn=queue_arn,
        dead_letter_queue_url=dlq_url,
        parked_queue_url=parked_url,
        submission_table=submissions,
        sqs=sqs,
        dynamodb=dynamodb,
    )


def put_secrets(secrets: Mapping[str, str]) -> None:
    client = boto3.client("secretsmanager")
    for name, value in secrets.items():
        client.create_secret(Name=name, SecretString=value)


TWO_CLINICS = """\
accounts:
  clinic-a:
    api_key_secret: tests/cliniko/clinic-a
  clinic-b:
    api_key_secret: tests/cliniko/clinic-b
"""


def two_clinics_stack(cliniko: Any, tmp_path: Path) -> tuple[WorkerStack, Path]:
    """A worker stack and an accounts file of two clinics on two shards of the emulator:
    clinic-a on au2 (a key of its own), clinic-b on the emulator's key."""
    key_a = cliniko.api_key.rsplit("-", 1)[0] + "a-au2"
    cliniko.control.add_key(key_a)
    stack = create_worker_stack()
    put_secrets({"tests/cliniko/clinic-a": key_a, "tests/cliniko/clinic-b": cliniko.api_key})
    accounts = tmp_path / "cliniko_accounts.yaml"
    accounts.write_text(TWO_CLINICS, encoding="utf-8")
    return stack, accounts


def clinic_submission(account: str, first: str) -> Submission:
    """A submission of `first` Lima to clinic `account`."""
    draft = ContactDraft(first_name=first, last_name="Lima", email=f"{first.lower()}@example.com")
    return json_submission(draft, account=account)


def write_worker_config(directory: Path) -> Path:
    path = directory / "cliniko_accounts.yaml"
    path.write_text(WORKER_CONFIG, encoding="utf-8")
    return path


def iter_batches(items: list[Any], size: int) -> Iterator[list[Any]]:
    for start in range(0, len(items), size):
        yield items[start : start + size]


USER_AGENT = "Intake Tests (tests@example.com)"


def worker_environment(
    monkeypatch: Any, stack: WorkerStack, base_url_template: str, config_path: Path, **extra: str
) -> None:
    """Point the worker at moto, the emulator and an accounts file, as template.yaml would."""
    env = stack.env(
        CLINIKO_USER_AGENT=USER_AGENT,
        CLINIKO_BASE_URL=base_url_template,
        CLINIKO_ACCOUNTS_FILE=str(config_path),
    )
    # Failed messages come back at once in tests; the deployed default backs off from 30 s.
    # Time so compressed, a lost create has settled by then too (the default keeps its
    # person claimed 60 s, past the first retry's backoff); the emulator lists a contact as
    # soon as its create answers, so nobody stays claimed after one (deployed: 3 s).
    env["RETRY_BASE_SECONDS"] = "0"
    env["LOST_CREATE_SETTLES_SECONDS"] = "0"
    env["CREATED_SEARCH_SETTLES_SECONDS"] = "0"
    env.update(extra)
    for name, value in env.items():
        monkeypatch.setenv(name, value)


def one_clinic_stack(cliniko: Any, monkeypatch: Any, tmp_path: Path, **extra: str) -> WorkerStack:
    """A worker stack of the one clinic (test-clinic, on the emulator's key), the worker's
    environment pointed at it (`extra`: settings of the test's own)."""
    stack = create_worker_stack()
    put_secrets({"tests/cliniko/test-clinic": cliniko.api_key})
    worker_environment(
        monkeypatch, stack, cliniko.base_url_template, write_worker_config(tmp_path), **extra
    )
    return stack


def emf_metrics(stdout: str) -> dict[str, float]:
    """Sum of each metric in the EMF lines Powertools Metrics printed."""
    totals: dict[str, float] = {}
    for line in stdout.splitlines():
        if not line.startswith("{") or '"_aws"' not in line:
            continue
        blob = json.loads(line)
        for directive in blob["_aws"]["CloudWatchMetrics"]:
            for metric in directive["Metrics"]:
                value = blob[metric["Name"]]
                values = value if isinstance(value, list) else [value]
                totals[metric["Name"]] = totals.get(metric["Name"], 0) + sum(values)
    return totals


TEST_INFRASTRUCTURE_LOGGERS = frozenset({"werkzeug", "moto", "cliniko_emulator"})


class LogLines(logging.Handler):
    """Every record the intake's Powertools loggers and the root logger emit, formatted as
    they would reach CloudWatch (Powertools' JSON for the intake loggers)."""

    def __init__(self) -> None:
        super().__init__(level=logging.DEBUG)
        self.lines: list[str] = []

    def emit(self, record: logging.LogRecord) -> None:
        # The servers standing in for AWS and Cliniko log their own requests; those lines
        # are the test's infrastructure, not the function's logs.
        if record.name.split(".")[0] in TEST_INFRASTRUCTURE_LOGGERS:
            return
        self.lines.append(self.format(record))

    def json(self, message: str) -> list[dict[str, Any]]:
        out = []
        for line in self.lines:
            if line.startswith("{") and f'"message":"{message}"' in line:
                out.append(json.loads(line))
        return out


@contextlib.contextmanager
def captured_logs(*service_loggers: str) -> Iterator[LogLines]:
    """Attach a collecting handler to the named Powertools service loggers (with their own
    formatter) and to the root logger (everything else that propagates) at INFO, the level
    Lambda's runtime logs at unless told otherwise."""
    handlers: list[tuple[logging.Logger, logging.Handler, int]] = []
    collected = LogLines()
    for name in service_loggers:
        target = logging.getLogger(name)
        handler = LogLines()
        existing = next(iter(target.handlers), None)
        if existing is not None and existing.formatter is not None:
            handler.setFormatter(existing.formatter)
        handler.lines = collected.lines
        handlers.append((target, handler, target.level))
    root = logging.getLogger()
    root_handler = LogLines()
    root_handler.lines = collected.lines
    handlers.append((root, root_handler, root.level))
    for target, handler, _level in handlers:
        target.addHandler(handler)
    root.setLevel(logging.INFO)
    try:
        yield collected
    finally:
        for target, handler, level in handlers:
            target.removeHandler(handler)
            target.setLevel(level)


DEAD_LETTERS_SCRIPT = Path(__file__).resolve().parents[3] / "scripts" / "dead_letters.py"


def load_dead_letters_script() -> Any:
    """scripts/dead_letters.py as a module (scripts/ is not a package)."""
    spec = importlib.util.spec_from_file_location("dead_letters_script", DEAD_LETTERS_SCRIPT)
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # dataclasses look their module up there
    spec.loader.exec_module(module)
    return module
