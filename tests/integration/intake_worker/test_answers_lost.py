"""The worker's AWS writes whose answer is lost (tests/fixtures/lost_answers.py): botocore
retries, and the retry meets the write its first attempt made."""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

import pytest
from cliniko_automations.common import aws as aws_clients
from cliniko_automations.common.identity_claims import CLAIM_PREFIX
from cliniko_automations.common.person_keys import PersonKeys
from cliniko_automations.common.submission_store import (
    BODY_PREFIX,
    FIRST_SEEN_PREFIX,
    SOURCE_HOUR_PREFIX,
    DynamoSubmissionStore,
)
from cliniko_automations.intake.submission import ContactDraft
from cliniko_automations.intake_api.errors import ServiceUnavailable
from cliniko_automations.intake_api.queue import SubmissionQueue
from cliniko_automations.intake_worker import handler as worker_handler
from cliniko_automations.intake_worker.runtime import IDEMPOTENCY_KEY_PREFIX
from cliniko_automations.intake_worker.store import INTENT_PREFIX, DynamoClaims

from tests.fixtures.apigw import LambdaContext
from tests.fixtures.lost_answers import answers_lost
from tests.integration.intake_worker.resources import (
    WORKER_TIMEOUT_MS,
    WorkerStack,
    create_worker_stack,
    json_submission,
    one_clinic_stack,
    poll_once,
)

ANA = ContactDraft(first_name="Ana", last_name="Lima", email="ana.lima@example.com")


@pytest.fixture
def stack(aws: str) -> WorkerStack:
    return create_worker_stack()


def item_id_starts(prefix: str) -> Callable[[dict[str, Any]], bool]:
    """The requests that write an item (or name a key) whose `id` starts with `prefix`."""

    def matching(body: dict[str, Any]) -> bool:
        item = body.get("Item") or body.get("Key") or {}
        return str(item.get("id", {}).get("S", "")).startswith(prefix)

    return matching


def test_a_claim_whose_answer_was_lost_is_the_retry_s_own(stack: WorkerStack) -> None:
    # The retry met the claim its first attempt took: it waited its 5 s for itself, gave up
    # (ClaimBusy), and the claim stayed held by nobody until its expiry (up to 120 s).
    claims = DynamoClaims(stack.dynamodb, stack.idempotency_table, wait_seconds=5)
    with answers_lost(stack.dynamodb, "PutItem", matching=item_id_starts(CLAIM_PREFIX)) as lost:
        started = time.monotonic()
        with claims.hold("k1"):
            took = time.monotonic() - started
    assert (lost.lost, len(lost.sent)) == (1, 2)
    assert took < 4  # not its own 5 s wait for itself
    with DynamoClaims(stack.dynamodb, stack.idempotency_table, wait_seconds=0).hold("k1"):
        pass  # let go: free at once


# --- the handler: each write of a submission's way through the worker loses its answer once


def begun(prefix: str) -> Callable[[dict[str, Any]], bool]:
    """The intent's begin (not its stamps, which update the same item)."""
    its_item = item_id_starts(prefix)
    return lambda body: its_item(body) and "started_at" in body.get("UpdateExpression", "")


def on_table(name_part: str) -> Callable[[dict[str, Any]], bool]:
    return lambda body: name_part in body.get("TableName", "")


# The claim is kept a moment after a create (CREATED_SEARCH_SETTLES_SECONDS), let go at once
# when that is 0.
WORKER_WRITES = {
    "the claim taken": ("PutItem", item_id_starts(CLAIM_PREFIX)),
    "the claim let go": ("DeleteItem", item_id_starts(CLAIM_PREFIX)),
    "the claim kept": ("UpdateItem", item_id_starts(CLAIM_PREFIX)),
    "the idempotency record begun": ("PutItem", item_id_starts(IDEMPOTENCY_KEY_PREFIX)),
    "the idempotency record completed": ("UpdateItem", item_id_starts(IDEMPOTENCY_KEY_PREFIX)),
    "the create intent begun": ("UpdateItem", begun(INTENT_PREFIX)),
    "the ledger entry": ("PutItem", on_table("ledger")),
    "the body marked done": ("PutItem", item_id_starts(BODY_PREFIX)),
}


@pytest.mark.parametrize("write", WORKER_WRITES)
def test_a_write_of_the_worker_whose_answer_was_lost_costs_no_receive(
    write: str, aws: str, cliniko: Any, monkeypatch: Any, tmp_path: Any
) -> None:
    kept = {"CREATED_SEARCH_SETTLES_SECONDS": "3"} if write == "the claim kept" else {}
    stack = one_clinic_stack(cliniko, monkeypatch, tmp_path, **kept)
    operation, matching = WORKER_WRITES[write]
    stack.enqueue(json_submission(ANA))
    context = LambdaContext(function_name="IntakeWorkerFunction", timeout_ms=WORKER_TIMEOUT_MS)
    with answers_lost(
        aws_clients.client("dynamodb", config=aws_clients.FAIL_FAST), operation, matching=matching
    ) as lost:
        messages, failed = poll_once(stack, worker_handler.lambda_handler, context)
    assert lost.lost == 1 and len(lost.sent) == 2  # the write and botocore's retry
    assert (len(messages), failed) == (1, set())
    assert len(cliniko.control.contacts()) == 1 and len(stack.ledger_items()) == 1
    assert stack.counts(stack.queue_url) == (0, 0)


# --- the intake API's send (intake_api/queue.py, on FAIL_FAST clients: two attempts each)

API_WRITES = {
    "the first-seen time": ("dynamodb", "UpdateItem", item_id_starts(FIRST_SEEN_PREFIX)),
    "the body": ("dynamodb", "PutItem", item_id_starts(BODY_PREFIX)),
    "the queued id": ("sqs", "SendMessage", lambda body: True),
}


@pytest.mark.parametrize("write", API_WRITES)
def test_a_write_of_the_intake_api_whose_answer_was_lost_accepts_one_contact(
    write: str, aws: str, cliniko: Any, monkeypatch: Any, tmp_path: Any
) -> None:
    # The queued id sent again is a second message of the same submission: the worker finds
    # its body marked done by the first and drops it ("already_done").
    stack = one_clinic_stack(cliniko, monkeypatch, tmp_path)
    service, operation, matching = API_WRITES[write]
    queue = SubmissionQueue(stack.queue_url, stack.submission_table)
    client = aws_clients.client(service, config=aws_clients.FAIL_FAST)
    with answers_lost(client, operation, matching=matching) as lost:
        queue.send(json_submission(ANA), PersonKeys("hmac-of-ana"))
    assert lost.lost == 1 and len(lost.sent) == 2
    context = LambdaContext(function_name="IntakeWorkerFunction", timeout_ms=WORKER_TIMEOUT_MS)
    messages, failed = poll_once(stack, worker_handler.lambda_handler, context)
    assert (len(messages), failed) == (2 if write == "the queued id" else 1, set())
    assert len(cliniko.control.contacts()) == 1 and len(stack.ledger_items()) == 1
    assert stack.counts(stack.queue_url) == (0, 0)


def test_a_send_whose_both_answers_were_lost_is_a_503_and_its_redelivery_one_contact(
    aws: str, cliniko: Any, monkeypatch: Any, tmp_path: Any
) -> None:
    # Both attempts reached SQS: the provider was answered 503 for a submission queued twice,
    # and delivers it again (the same submission: the same id and key). Three messages, one
    # contact, no failure.
    stack = one_clinic_stack(cliniko, monkeypatch, tmp_path)
    queue = SubmissionQueue(stack.queue_url, stack.submission_table)
    submission = json_submission(ANA)
    sqs = aws_clients.client("sqs", config=aws_clients.FAIL_FAST)
    with answers_lost(sqs, "SendMessage", times=2), pytest.raises(ServiceUnavailable):
        queue.send(submission, PersonKeys("hmac-of-ana"))
    queue.send(submission, PersonKeys("hmac-of-ana"))
    context = LambdaContext(function_name="IntakeWorkerFunction", timeout_ms=WORKER_TIMEOUT_MS)
    messages, failed = poll_once(stack, worker_handler.lambda_handler, context)
    assert (len(messages), failed) == (3, set())
    assert len(cliniko.control.contacts()) == 1 and len(stack.ledger_items()) == 1
    assert stack.counts(stack.queue_url) == (0, 0)


def test_a_held_submission_sent_twice_to_the_parked_queue_replays_as_one_contact(
    aws: str, cliniko: Any, monkeypatch: Any, tmp_path: Any
) -> None:
    # Held past its source's hourly ceiling, its parked message's answer lost: two messages
    # of one submission wait for staff, and replayed both, the second is dropped.
    stack = one_clinic_stack(cliniko, monkeypatch, tmp_path)
    queue = SubmissionQueue(
        stack.queue_url, stack.submission_table, parked_queue_url=stack.parked_queue_url
    )
    submission = json_submission(ANA)
    dynamodb = aws_clients.client("dynamodb", config=aws_clients.FAIL_FAST)
    store = DynamoSubmissionStore(dynamodb, stack.submission_table)
    assert store.admit_to_hour(submission.source, submission.received_at, 1)  # the hour full
    sqs = aws_clients.client("sqs", config=aws_clients.FAIL_FAST)
    with answers_lost(sqs, "SendMessage") as lost:
        held = queue.send(submission, PersonKeys("hmac-of-ana"), hourly_ceiling=1)
    assert held == "source_hourly_ceiling"
    assert lost.lost == 1 and stack.counts(stack.parked_queue_url) == (2, 0)
    for message in stack.drain(stack.parked_queue_url):
        stack.sqs.send_message(QueueUrl=stack.queue_url, MessageBody=message["Body"])
    context = LambdaContext(function_name="IntakeWorkerFunction", timeout_ms=WORKER_TIMEOUT_MS)
    messages, failed = poll_once(stack, worker_handler.lambda_handler, context)
    assert (len(messages), failed) == (2, set())
    assert len(cliniko.control.contacts()) == 1


def test_the_hourly_count_whose_answer_was_lost_counts_twice_never_past_the_ceiling(
    aws: str, cliniko: Any, monkeypatch: Any, tmp_path: Any
) -> None:
    stack = one_clinic_stack(cliniko, monkeypatch, tmp_path)
    dynamodb = aws_clients.client("dynamodb", config=aws_clients.FAIL_FAST)
    store = DynamoSubmissionStore(dynamodb, stack.submission_table)
    hour = json_submission(ANA).received_at
    with answers_lost(dynamodb, "UpdateItem", matching=item_id_starts(SOURCE_HOUR_PREFIX)) as lost:
        assert store.admit_to_hour("test-json", hour, 3)
    assert lost.lost == 1 and len(lost.sent) == 2
    # The retry counted it again: the hour has room for one more, not two.
    assert [store.admit_to_hour("test-json", hour, 3) for _ in range(2)] == [True, False]
