"""The worker's DynamoDB and SQS adapters against moto."""

from __future__ import annotations

import json
import threading
from datetime import UTC, datetime, timedelta

import pytest
from botocore.exceptions import ClientError
from cliniko_automations.common.aws import queue_url_for
from cliniko_automations.common.dynamodb_batches import ATTEMPTS, LeftUnprocessed
from cliniko_automations.common.ledger import DynamoLedger, LedgerEntry
from cliniko_automations.intake.submission import ContactDraft, Submission
from cliniko_automations.intake_worker.parking import SqsParking
from cliniko_automations.intake_worker.queues import SqsQueues
from cliniko_automations.intake_worker.store import (
    DynamoClaims,
    DynamoFailures,
    DynamoIntents,
    FailureRecord,
)
from cliniko_automations.intake_worker.worker import ClaimBusy, Intent, Misconfigured

from tests.integration.common.test_dynamodb_batches import throttled
from tests.integration.intake_worker.resources import WorkerStack, create_worker_stack


@pytest.fixture
def stack(aws: str) -> WorkerStack:
    return create_worker_stack()


def submission() -> Submission:
    return Submission(
        submission_id="sub-1",
        idempotency_key="test-json:abc",
        source="test-json",
        provider="json",
        account="test-clinic",
        received_at=datetime(2026, 11, 23, tzinfo=UTC),
        draft=ContactDraft(first_name="Ana", email="ana@example.com"),
    )


def test_claim_excludes_a_second_holder_until_released(stack: WorkerStack) -> None:
    claims = DynamoClaims(stack.dynamodb, stack.idempotency_table, wait_seconds=0)
    with claims.hold("k1"):
        with pytest.raises(ClaimBusy), claims.hold("k1"):
            pass
        with claims.hold("k2"):  # another identity is independent
            pass
    with claims.hold("k1"):  # released
        pass


@pytest.mark.parametrize("kept_for", [0, 60], ids=["let_go", "kept"])
def test_a_claim_not_let_go_leaves_the_blocks_own_failure_to_be_seen(
    stack: WorkerStack, kept_for: float
) -> None:
    # Cliniko refused the key while the claim was held (Misconfigured: dead-lettered with its
    # fix), then DynamoDB throttled the claim's release (a delete, or the update that keeps
    # it). The release's error replaced the block's, and the submission went round the queue
    # as an unexpected error: no fix, no Misconfigured alarm (and a Rejected's 422, a
    # RetryLater's time not to come back before, lost alike). A claim not let go ends at its
    # expiry by itself.
    claims = DynamoClaims(stack.dynamodb, stack.idempotency_table, wait_seconds=0)

    def throttle(**_: object) -> None:
        raise ClientError({"Error": {"Code": "ThrottlingException"}}, "ReleaseClaim")

    events = stack.dynamodb.meta.events
    for operation in ("DeleteItem", "UpdateItem"):
        events.register(f"before-call.dynamodb.{operation}", throttle)
    try:
        with pytest.raises(Misconfigured), claims.hold("k") as held:
            held.keep_for(kept_for)
            raise Misconfigured("cliniko_unauthorized", RuntimeError("401"))
    finally:
        for operation in ("DeleteItem", "UpdateItem"):
            events.unregister(f"before-call.dynamodb.{operation}", throttle)


def claims_of_a_minute(stack: WorkerStack, now: list[float]) -> DynamoClaims:
    """Claims that last 60 s on the clock `now[0]`, taken without waiting."""
    return DynamoClaims(
        stack.dynamodb,
        stack.idempotency_table,
        ttl_seconds=60,
        wait_seconds=0,
        clock=lambda: now[0],
    )


def test_expired_claim_is_free_even_before_ttl_deletion(stack: WorkerStack) -> None:
    now = [1_000_000.0]
    claims = claims_of_a_minute(stack, now)
    holder = claims.hold("k")
    holder.__enter__()  # a worker that died holding the claim: never released
    with pytest.raises(ClaimBusy), claims.hold("k"):
        pass
    now[0] += 61
    with claims.hold("k"):
        pass


def test_a_holder_that_outlived_its_claim_leaves_its_successor_s_alone(
    stack: WorkerStack,
) -> None:
    now = [1_000_000.0]
    claims = claims_of_a_minute(stack, now)
    slow = claims.hold("k")
    slow.__enter__()  # a worker still busy when its claim expires
    now[0] += 61
    with claims.hold("k"):  # another worker takes the expired claim
        slow.__exit__(None, None, None)  # the slow one lets go of its own claim only
        with pytest.raises(ClaimBusy), claims.hold("k"):
            pass


def test_waiters_take_the_claim_one_at_a_time(stack: WorkerStack) -> None:
    claims = DynamoClaims(stack.dynamodb, stack.idempotency_table, wait_seconds=30)
    inside: list[int] = []
    overlaps: list[int] = []
    lock = threading.Lock()

    def work(n: int) -> None:
        with claims.hold("same"):
            with lock:
                inside.append(n)
                if len(inside) > 1:
                    overlaps.append(n)
            # Let the others try while this one holds it.
            threading.Event().wait(0.02)
            with lock:
                inside.remove(n)

    threads = [threading.Thread(target=work, args=(n,)) for n in range(6)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert overlaps == []
    assert inside == []


def test_intent_holds_the_latest_attempts_window_and_records_the_contact(
    stack: WorkerStack,
) -> None:
    intents = DynamoIntents(stack.dynamodb, stack.idempotency_table)
    assert intents.get("src:1") is None
    first = datetime(2026, 11, 23, 12, 0, tzinfo=UTC)
    intents.begin("src:1", first)
    intents.lost("src:1", first + timedelta(seconds=20))
    assert intents.get("src:1") == Intent(first, first + timedelta(seconds=20))
    # The next attempt (days later, a dead-letter replay) starts a window of its own.
    retry = datetime(2026, 11, 26, 9, 0, tzinfo=UTC)
    intents.begin("src:1", retry)
    assert intents.get("src:1") == Intent(retry)
    intents.complete("src:1", "123")
    assert intents.get("src:1") == Intent(retry, None, "123")
    item = stack.dynamodb.scan(TableName=stack.idempotency_table)["Items"][0]
    assert "src:1" not in json.dumps(item)  # stored under a hash


def test_an_intent_gone_before_its_answer_is_not_made_again_without_an_expiry(
    stack: WorkerStack,
) -> None:
    """The intent read at an attempt's start may be gone by its end: abandoned by another
    attempt, or deleted by DynamoDB's TTL (it is read while past its expiry, until then).
    Recording the loss or the contact on it must not make a new item: an UpdateItem makes
    one without `expiration`, which the table would keep for ever, and without `started_at`,
    which every later read of the intent failed on (KeyError)."""
    intents = DynamoIntents(stack.dynamodb, stack.idempotency_table)
    started = datetime(2026, 11, 23, 12, 0, tzinfo=UTC)
    intents.begin("src:1", started)
    intents.abandon("src:1")
    intents.lost("src:1", started + timedelta(seconds=20))
    intents.complete("src:1", "123")
    assert stack.dynamodb.scan(TableName=stack.idempotency_table)["Items"] == []
    assert intents.get("src:1") is None
    # An intent that is there is still stamped and completed (the test above, at its end).
    intents.begin("src:2", started)
    intents.complete("src:2", "124")
    assert intents.get("src:2") == Intent(started, None, "124")


def test_failure_reason_by_message_id(stack: WorkerStack) -> None:
    failures = DynamoFailures(stack.dynamodb, stack.idempotency_table)
    record = FailureRecord("m-1", "cliniko_rate_limited", "sub-1", "test-json", 3, "2026-11-23")
    failures.record(record)
    assert failures.get("m-1") == record
    assert failures.get("m-2") is None


def test_ledger_is_keyed_by_contact_id_and_never_overwritten(stack: WorkerStack) -> None:
    ledger = DynamoLedger(stack.dynamodb, stack.ledger_table)
    entry = LedgerEntry("42", "test-clinic", "test-json", "sub-1", "2026-11-23T12:00:00+00:00")
    ledger.record(entry)
    ledger.record(entry)
    # A later submission never replaces the one that created the contact.
    ledger.record(LedgerEntry("42", "test-clinic", "test-json", "sub-2", "2026-11-24"))
    assert stack.ledger_items() == [
        {
            "contact_id": "42",
            "account": "test-clinic",
            "source": "test-json",
            "submission_id": "sub-1",
            "created_at": "2026-11-23T12:00:00+00:00",
            # Active until the cleanup archives the contact (the cleanup's sparse index key).
            "state": "active",
            "active_account": "test-clinic",
        }
    ]


def test_when_a_submission_last_met_a_contact_is_read_through_throttling(
    stack: WorkerStack,
) -> None:
    # A throttled table leaves keys unprocessed: each left out, a cleanup rule on updated_at
    # would take a person who sent the form again today for one nobody has touched.
    ledger = DynamoLedger(stack.dynamodb, stack.ledger_table)
    for contact_id in ("41", "42"):
        ledger.record(LedgerEntry(contact_id, "test-clinic", "test-json", "sub-1", "2026-11-23"))
        ledger.seen(contact_id, "2026-12-04T09:00:00+00:00")
    throttled(stack.dynamodb, "BatchGetItem", times=2)
    assert ledger.last_submissions(["41", "42", "43"]) == {
        "41": "2026-12-04T09:00:00+00:00",
        "42": "2026-12-04T09:00:00+00:00",
    }


def test_a_ledger_throttled_throughout_is_an_error_after_paused_attempts(
    stack: WorkerStack,
) -> None:
    # As every batch read (common/dynamodb_batches.py): sent again after a growing pause, a
    # bounded number of times, never in a tight loop for as long as the table is throttled.
    pauses: list[float] = []
    ledger = DynamoLedger(stack.dynamodb, stack.ledger_table, sleep=pauses.append)
    ledger.record(LedgerEntry("41", "test-clinic", "test-json", "sub-1", "2026-11-23"))
    throttled(stack.dynamodb, "BatchGetItem", times=ATTEMPTS)
    with pytest.raises(LeftUnprocessed):
        ledger.last_submissions(["41"])
    assert len(pauses) == ATTEMPTS - 1 and pauses == sorted(pauses) and pauses[0] > 0


def test_parked_message_is_the_submission_id_with_a_reason(stack: WorkerStack) -> None:
    SqsParking(stack.sqs, stack.parked_queue_url).park(submission(), "several_matches", ["1", "2"])
    [message] = stack.drain(stack.parked_queue_url)
    # The claim check: ids only; the values stay in the submission store.
    assert json.loads(message["Body"]) == {"submission_id": "sub-1", "source": "test-json"}
    attributes = {k: v["StringValue"] for k, v in message["MessageAttributes"].items()}
    assert attributes == {
        "reason": "several_matches",
        "submission_id": "sub-1",
        "source": "test-json",
        "candidate_contact_ids": "1,2",
    }


def test_queue_url_and_dead_letter_queue_from_the_event_arn(stack: WorkerStack) -> None:
    queues = SqsQueues(stack.sqs)
    # The built URLs address the same queues as the ones SQS handed out.
    stack.sqs.send_message(QueueUrl=queues.queue_url(stack.queue_arn), MessageBody="main")
    assert [m["Body"] for m in stack.drain(stack.queue_url)] == ["main"]
    dlq = queues.dead_letter_url(stack.queue_arn)
    assert dlq.endswith("/intake-dead-letters")
    new_id = queues.dead_letter(stack.queue_arn, "{}", {"failure_reason": "x", "empty": ""})
    [message] = stack.drain(stack.dead_letter_queue_url)
    assert message["MessageId"] == new_id
    assert set(message["MessageAttributes"]) == {"failure_reason"}


def test_back_off_hides_the_message_exponentially(stack: WorkerStack) -> None:
    stack.sqs.send_message(QueueUrl=stack.queue_url, MessageBody="x")
    [message] = stack.receive()
    delay = SqsQueues(stack.sqs).back_off(
        stack.queue_arn, message["ReceiptHandle"], receive_count=3, base=30, cap=900
    )
    assert 60 <= delay <= 120  # 30 * 2^2 = 120, jittered over its upper half
    assert stack.receive(visibility=0) == []
    assert stack.counts(stack.queue_url) == (0, 1)


def test_back_off_waits_at_least_until_a_rate_limit_resets(stack: WorkerStack) -> None:
    stack.sqs.send_message(QueueUrl=stack.queue_url, MessageBody="x")
    [message] = stack.receive()
    delay = SqsQueues(stack.sqs).back_off(
        stack.queue_arn, message["ReceiptHandle"], receive_count=1, base=2, cap=900, at_least=89.2
    )
    assert delay == 90  # not the 1-2 s of the first backoff: sooner is refused again


def test_queue_url_from_arn() -> None:
    assert (
        queue_url_for("arn:aws:sqs:eu-west-1:123456789012:q")
        == "https://sqs.eu-west-1.amazonaws.com/123456789012/q"
    )
    assert queue_url_for("arn:aws-cn:sqs:cn-north-1:123456789012:q").endswith(
        ".amazonaws.com.cn/123456789012/q"
    )
    for bad in ("arn:aws:sns:eu-west-1:123456789012:t", "arn:aws:sqs:eu-west-1::q", "q"):
        with pytest.raises(ValueError):
            queue_url_for(bad)


@pytest.mark.parametrize("let_go_at", [1_000_000.01, 1_000_000.5, 1_000_000.99])
def test_a_claim_kept_after_its_holder_lets_go_is_free_within_a_second_of_the_time_kept(
    stack: WorkerStack, let_go_at: float
) -> None:
    # A create keeps the person claimed 3 s (CREATED_SEARCH_SETTLES_SECONDS) and their next
    # submission waits 5 s for it: rounded up to the second, then compared with the waiter's
    # second (truncated) and strictly, it stayed held up to 5 s, all of that wait.
    now = [1_000_000.0]
    claims = claims_of_a_minute(stack, now)
    with claims.hold("k") as held:
        now[0] = let_go_at
        held.keep_for(3)
    now[0] = let_go_at + 2.99
    with pytest.raises(ClaimBusy), claims.hold("k"):  # kept at least the time asked
        pass
    now[0] = let_go_at + 4
    with claims.hold("k"):
        pass
