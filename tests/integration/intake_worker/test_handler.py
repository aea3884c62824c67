"""The SQS handler end to end on the worker side: moto SQS/DynamoDB/Secrets Manager, the
Cliniko emulator over HTTP, and Lambda's poller emulated (receive, invoke, delete)."""

from __future__ import annotations

import contextlib
import dataclasses
import io
import time
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta

import pytest
from botocore.exceptions import ClientError
from cliniko_automations.common import aws as aws_clients
from cliniko_automations.common.identity_claims import CLAIM_PREFIX
from cliniko_automations.common.submission_store import DAY, StoredSubmission
from cliniko_automations.intake.submission import (
    ContactDraft,
    PhoneNumber,
    QueuedSubmission,
    Submission,
)
from cliniko_automations.intake_worker import handler as worker_handler
from cliniko_automations.intake_worker.store import DynamoClaims

from tests.fixtures.apigw import LambdaContext
from tests.fixtures.aws import every_message
from tests.integration.intake_worker.resources import (
    MAX_RECEIVE_COUNT,
    WORKER_TIMEOUT_MS,
    WorkerStack,
    WorldClock,
    captured_logs,
    emf_metrics,
    json_submission,
    load_dead_letters_script,
    one_clinic_stack,
    poll_once,
    sqs_event,
    stored_submission,
)

ANA = ContactDraft(
    first_name="Ana",
    last_name="Lima",
    email="ana.lima@example.com",
    phone_numbers=(PhoneNumber(number="0412 345 678"),),
)


def submission(draft: ContactDraft = ANA, key: str | None = None) -> Submission:
    return json_submission(draft, key=key)


@pytest.fixture
def stack(aws, cliniko, monkeypatch, tmp_path) -> WorkerStack:
    stack = one_clinic_stack(cliniko, monkeypatch, tmp_path)
    return stack


def context() -> LambdaContext:
    return LambdaContext(function_name="IntakeWorkerFunction", timeout_ms=WORKER_TIMEOUT_MS)


def send(stack: WorkerStack, *submissions: Submission) -> None:
    for sub in submissions:
        stack.enqueue(sub)


def run_until_empty(stack: WorkerStack, rounds: int = 20) -> None:
    for _ in range(rounds):
        messages, _failed = poll_once(stack, worker_handler.lambda_handler, context())
        if not messages:
            return


def test_a_submission_becomes_one_contact_with_ledger_and_metric(stack, cliniko, capsys) -> None:
    send(stack, submission())
    messages, failed = poll_once(stack, worker_handler.lambda_handler, context())
    assert len(messages) == 1 and failed == set()
    [contact] = cliniko.control.contacts()
    assert contact["email"] == "ana.lima@example.com"
    [entry] = stack.ledger_items()
    assert entry["contact_id"] == contact["id"]
    assert entry["source"] == "test-json" and entry["account"] == "test-clinic"
    assert emf_metrics(capsys.readouterr().out).get("ContactCreated") == 1
    assert stack.counts(stack.queue_url) == (0, 0)


def test_redelivery_of_the_same_submission_is_answered_from_the_record(
    stack, cliniko, capsys
) -> None:
    sub = submission()
    send(stack, sub, sub)
    send(stack, submission(key=sub.idempotency_key))  # the provider redelivered: new id
    run_until_empty(stack)
    assert len(cliniko.control.contacts()) == 1
    posts = [r for r in cliniko.control.requests() if r["method"] == "POST"]
    assert len(posts) == 1
    assert emf_metrics(capsys.readouterr().out).get("ContactCreated") == 1


def test_a_replay_after_the_idempotency_window_counts_no_second_contact(
    stack, cliniko, monkeypatch, capsys
) -> None:
    clock = WorldClock(monkeypatch, stack, cliniko.control)
    sub = submission()
    send(stack, sub)
    run_until_empty(stack)
    [entry] = stack.ledger_items()
    # A duplicate of the message, replayed from the dead-letter queue three days later: the
    # idempotency record is gone, the create intent still names the contact.
    clock.advance(timedelta(days=3))
    send(stack, sub)
    run_until_empty(stack)
    assert [c["id"] for c in cliniko.control.contacts()] == [entry["contact_id"]]
    assert stack.ledger_items() == [entry]
    assert emf_metrics(capsys.readouterr().out).get("ContactCreated") == 1


def test_several_matches_park_the_submission(stack, cliniko, capsys) -> None:
    client = cliniko.client()
    client.create_contact({"first_name": "Ana", "email": "ana.lima@example.com"})
    client.create_contact({"first_name": "Ana L", "email": "ana.lima@example.com"})
    sub = submission()
    send(stack, sub)
    run_until_empty(stack)
    [parked] = stack.drain(stack.parked_queue_url)
    assert parked["MessageAttributes"]["reason"]["StringValue"] == "several_matches"
    # The parked message names the submission; its body stays in the store for a replay.
    assert stored_submission(stack.dynamodb, stack.submission_table, parked["Body"]) == sub
    assert len(cliniko.control.contacts()) == 2
    assert emf_metrics(capsys.readouterr().out).get("SubmissionParked") == 1


def test_cliniko_422_goes_to_the_dead_letter_queue_at_once(stack, cliniko) -> None:
    sub = submission(ContactDraft(first_name="Ana", email="ana@example"))
    send(stack, sub)
    messages, failed = poll_once(stack, worker_handler.lambda_handler, context())
    assert failed == set()  # deleted from the main queue, not retried
    assert stack.counts(stack.queue_url) == (0, 0)
    [letter] = stack.drain(stack.dead_letter_queue_url)
    assert letter["Body"] == messages[0]["Body"]
    reason = letter["MessageAttributes"]["failure_reason"]["StringValue"]
    assert reason == "cliniko_validation_failed:email"
    assert cliniko.control.contacts() == []


def body_expires_in(stack, sub) -> float:
    """Seconds until the stored body of `sub` expires."""
    item = stack.dynamodb.get_item(
        TableName=stack.submission_table, Key={"id": {"S": "submission#" + sub.submission_id}}
    )["Item"]
    return int(item["expiration"]["N"]) - time.time()


def age_body(stack, sub, *, days_left: int) -> None:
    """As if the body had been stored long ago: `days_left` days before it expires."""
    stack.dynamodb.update_item(
        TableName=stack.submission_table,
        Key={"id": {"S": "submission#" + sub.submission_id}},
        UpdateExpression="SET expiration = :exp",
        ExpressionAttributeValues={":exp": {"N": str(int(time.time()) + days_left * DAY)}},
    )


@pytest.mark.parametrize("fate", ["parked", "dead_lettered"])
def test_a_parked_or_dead_lettered_body_outlives_its_new_message(stack, cliniko, fate) -> None:
    # Each send to the parked or dead-letter queue is kept 14 days from then: a body stored
    # days ago must not expire under it (a replay on day 17 of a re-parked one found nothing).
    client = cliniko.client()
    if fate == "parked":
        client.create_contact({"first_name": "Ana", "email": "ana.lima@example.com"})
        client.create_contact({"first_name": "Ana L", "email": "ana.lima@example.com"})
        sub = submission()
    else:
        sub = submission(ContactDraft(first_name="Ana", email="ana@example"))  # Cliniko's 422
    send(stack, sub)
    age_body(stack, sub, days_left=2)
    run_until_empty(stack)
    queue = stack.parked_queue_url if fate == "parked" else stack.dead_letter_queue_url
    assert len(stack.drain(queue)) == 1
    assert body_expires_in(stack, sub) > 15 * DAY


def test_a_parked_replay_that_fails_into_the_dead_letter_queue_keeps_its_body(
    stack, cliniko
) -> None:
    # Staff merge the duplicates on day 13 of the parked message's 14 and replay it by hand;
    # Cliniko fails five times and SQS's redrive moves it to the dead-letter queue, which
    # keeps it 14 days from the replay. Its body expired on day 16, and the letter, refused
    # as "gone", could never be replayed: the submission lost, nobody erased.
    client = cliniko.client()
    client.create_contact({"first_name": "Ana", "email": "ana.lima@example.com"})
    duplicate = client.create_contact({"first_name": "A.", "email": "ANA.LIMA@example.com"})
    sub = submission()
    send(stack, sub)
    run_until_empty(stack)
    client.archive_contact(str(duplicate.id))
    age_body(stack, sub, days_left=3)
    assert replay_parked(stack) == [sub.submission_id]
    cliniko.control.set_faults(error_rate=1.0, statuses=[500])
    for _ in range(MAX_RECEIVE_COUNT + 2):
        poll_once(stack, worker_handler.lambda_handler, context())
    assert stack.counts(stack.dead_letter_queue_url) == (1, 0)
    assert body_expires_in(stack, sub) > 15 * DAY


def intent_expires_in(stack) -> float:
    """Seconds until the one create intent in the idempotency table expires."""
    items = stack.dynamodb.scan(TableName=stack.idempotency_table)["Items"]
    (intent,) = [i for i in items if i["id"]["S"].startswith("intake-intent#")]
    return int(intent["expiration"]["N"]) - time.time()


def test_a_lost_create_s_intent_lasts_as_long_as_the_body_of_its_letter(stack, cliniko) -> None:
    # Cliniko saved the create but its answer was lost, and Cliniko then fails the look for it:
    # the attempt fails, and each failure keeps the body 16 days for the dead letter it may
    # become (a parked message replayed on day 13 that fails five times waits until day 27).
    # The intent, the only record of the create's window, was kept 14 days from its create:
    # a replay after that looked for no contact made in it, and a submission without an
    # email or a name and phone to look the person up by was made a second time.
    sub = submission(ContactDraft(first_name="Ana"))
    cliniko.control.set_faults(fail_next=["drop_after"], error_rate=1.0, statuses=[500])
    send(stack, sub)
    _messages, failed = poll_once(stack, worker_handler.lambda_handler, context())
    assert len(failed) == 1 and len(cliniko.control.contacts()) == 1
    assert intent_expires_in(stack) >= body_expires_in(stack, sub) - 1 > 15 * DAY


def test_malformed_message_is_dead_lettered_without_echoing_it(stack, capsys) -> None:
    stack.sqs.send_message(
        QueueUrl=stack.queue_url, MessageBody='{"submission_id": "x", "draft": "ana@example.com"}'
    )
    _messages, failed = poll_once(stack, worker_handler.lambda_handler, context())
    assert failed == set()
    [letter] = stack.drain(stack.dead_letter_queue_url)
    assert letter["MessageAttributes"]["failure_reason"]["StringValue"] == "malformed_message"
    assert "ana@example.com" not in capsys.readouterr().out


def test_a_dead_letter_whose_failure_record_cannot_be_written_is_sent_once(
    stack, monkeypatch
) -> None:
    # The failure record only adds a time to a letter that already carries its reason: losing
    # it must not send the message round again into a second dead letter.
    monkeypatch.setenv("IDEMPOTENCY_TABLE", "no-such-table")
    stack.sqs.send_message(QueueUrl=stack.queue_url, MessageBody='{"not": "a submission"}')
    _messages, failed = poll_once(stack, worker_handler.lambda_handler, context())
    assert failed == set()
    assert stack.counts(stack.queue_url) == (0, 0)
    [letter] = stack.drain(stack.dead_letter_queue_url)
    assert letter["MessageAttributes"]["failure_reason"]["StringValue"] == "malformed_message"


def test_a_record_is_not_logged_with_the_previous_records_source(stack, cliniko) -> None:
    good = submission()
    send(stack, good)
    stack.sqs.send_message(QueueUrl=stack.queue_url, MessageBody='{"not": "a submission"}')
    messages: list[dict] = []
    while len(messages) < 2:
        messages += stack.receive(max_messages=10, visibility=60)
    # The good record first, so its source is in the logger's keys when the bad one comes.
    messages.sort(key=lambda m: "not" in m["Body"])
    with captured_logs("intake") as logs:
        worker_handler.lambda_handler(sqs_event(messages, stack.queue_arn), context())
    [line] = logs.json("malformed submission message")
    assert "source" not in line
    assert line.get("correlation_id") != good.submission_id  # nor its submission id
    [done] = logs.json("submission processed")
    assert done["source"] == "test-json"


def test_cliniko_down_exhausts_retries_into_the_dlq_then_replay_succeeds(
    stack, cliniko, monkeypatch, capsys
) -> None:
    cliniko.control.set_faults(error_rate=1.0, statuses=[500])
    sub = submission()
    send(stack, sub)
    receives = 0
    for _ in range(MAX_RECEIVE_COUNT + 2):
        messages, failed = poll_once(stack, worker_handler.lambda_handler, context())
        receives += len(messages)
        assert failed == {m["MessageId"] for m in messages}
    assert receives == MAX_RECEIVE_COUNT
    assert stack.counts(stack.queue_url) == (0, 0)
    assert emf_metrics(capsys.readouterr().out).get("ClinikoThrottled") == MAX_RECEIVE_COUNT

    dead_letters = load_dead_letters_script()
    monkeypatch.setenv("DEAD_LETTER_QUEUE_URL", stack.dead_letter_queue_url)
    out = io.StringIO()
    assert dead_letters.main(["list"], out=out) == 0
    assert sub.submission_id in out.getvalue()
    assert "cliniko_server_error" in out.getvalue()
    assert "ana.lima" not in out.getvalue()

    cliniko.control.clear_faults()
    assert dead_letters.main(["replay", "--all"], out=io.StringIO()) == 0
    run_until_empty(stack)
    assert len(cliniko.control.contacts()) == 1
    assert stack.counts(stack.dead_letter_queue_url) == (0, 0)


def test_failed_attempt_backs_off_by_receive_count(stack, cliniko, monkeypatch) -> None:
    monkeypatch.setenv("RETRY_BASE_SECONDS", "30")
    cliniko.control.set_faults(error_rate=1.0, statuses=[500])
    send(stack, submission())
    _messages, failed = poll_once(stack, worker_handler.lambda_handler, context(), visibility=0)
    assert len(failed) == 1
    # Received with a zero visibility timeout, it would be back at once; the handler hid it.
    assert stack.receive(visibility=0) == []
    assert stack.counts(stack.queue_url) == (0, 1)


def test_a_429_hides_the_submission_until_the_rate_limit_resets(stack, cliniko, monkeypatch):
    # Cliniko says when its window resets (X-RateLimit-Reset, ~60 s away here); the worker
    # gives up waiting after 1 s, and the queue must not deliver it again before the reset.
    monkeypatch.setenv("RETRY_BASE_SECONDS", "1")
    monkeypatch.setenv("CLINIKO_MAX_WAIT_SECONDS", "1")
    monkeypatch.setenv("MIN_REMAINING_SECONDS", "100")  # handed back, not waited out
    cliniko.control.set_faults(throttle_window_s=60)
    send(stack, submission())
    with captured_logs("intake") as logs:
        _messages, failed = poll_once(stack, worker_handler.lambda_handler, context())
    assert len(failed) == 1
    [attempt] = logs.json("submission attempt failed")
    assert attempt["reason"] == "cliniko_rate_limited"
    assert attempt["retry_in_seconds"] >= 55


def test_a_reset_further_than_a_window_hides_the_submission_a_window_at_most(
    stack, cliniko, monkeypatch
):
    # Cliniko's clock 10 minutes ahead of this machine's: its Date is not believed (further
    # than 5 minutes), so its reset reads 10 minutes away on our clock, while its window, a
    # minute, resets within one. Believed, every receive hid the clinic's submissions
    # 10 minutes; the budget's own hold is 65 s at most, and so is this wait.
    monkeypatch.setenv("RETRY_BASE_SECONDS", "1")
    monkeypatch.setenv("CLINIKO_MAX_WAIT_SECONDS", "1")
    monkeypatch.setenv("MIN_REMAINING_SECONDS", "100")  # handed back, not waited out
    cliniko.control.set_skew(600)
    cliniko.control.set_faults(fail_next=[429])
    send(stack, submission())
    with captured_logs("intake") as logs:
        _messages, failed = poll_once(stack, worker_handler.lambda_handler, context())
    assert len(failed) == 1
    [attempt] = logs.json("submission attempt failed")
    assert attempt["reason"] == "cliniko_rate_limited"
    assert 60 <= attempt["retry_in_seconds"] <= 66


def test_unknown_create_outcome_is_resolved_by_looking_again(stack, cliniko, monkeypatch) -> None:
    # As deployed: a lost create keeps the person claimed while Cliniko may still save it.
    monkeypatch.delenv("LOST_CREATE_SETTLES_SECONDS")
    # The create reaches Cliniko, but the connection drops before the answer.
    cliniko.control.set_faults(fail_next=["drop"], after_effect=True, methods=["POST"])
    send(stack, submission())
    run_until_empty(stack)
    [contact] = cliniko.control.contacts()
    [entry] = stack.ledger_items()
    assert entry["contact_id"] == contact["id"]
    assert [r["method"] for r in cliniko.control.requests()].count("POST") == 1
    # Found at once, so nothing is left to settle: the person's next submission, or an
    # erasure, does not wait a minute on the claim.
    items = stack.dynamodb.scan(TableName=stack.idempotency_table)["Items"]
    assert [i for i in items if i["id"]["S"].startswith(CLAIM_PREFIX)] == []


def test_failure_between_create_and_bookkeeping_does_not_duplicate(
    stack, cliniko, monkeypatch
) -> None:
    # The ledger write fails after Cliniko created the contact (its table is missing): the
    # attempt fails, the queue redelivers, and the retry finds the contact it made.
    monkeypatch.setenv("LEDGER_TABLE", "no-such-table")
    send(stack, submission())
    _messages, failed = poll_once(stack, worker_handler.lambda_handler, context())
    assert len(failed) == 1
    assert len(cliniko.control.contacts()) == 1
    monkeypatch.setenv("LEDGER_TABLE", stack.ledger_table)
    run_until_empty(stack)
    [contact] = cliniko.control.contacts()
    assert [e["contact_id"] for e in stack.ledger_items()] == [contact["id"]]


def test_unknown_account_is_rejected(stack, cliniko) -> None:
    sub = dataclasses.replace(submission(), account="nobody")
    send(stack, sub)
    run_until_empty(stack)
    [letter] = stack.drain(stack.dead_letter_queue_url)
    assert letter["MessageAttributes"]["failure_reason"]["StringValue"] == "unknown_account"


def test_rejection_falls_back_on_redrive_when_the_dlq_refuses(stack, cliniko, monkeypatch) -> None:
    # A dead-letter queue the worker cannot write to (here: one that does not exist).
    monkeypatch.setenv("DEAD_LETTER_QUEUE_URL", stack.dead_letter_queue_url + "-missing")
    sub = submission(ContactDraft(first_name="Ana", email="ana@example"))
    send(stack, sub)
    run_until_empty(stack)
    [letter] = stack.drain(stack.dead_letter_queue_url)  # moved there by SQS's redrive
    assert stored_submission(stack.dynamodb, stack.submission_table, letter["Body"]) == sub
    out = io.StringIO()
    monkeypatch.setenv("DEAD_LETTER_QUEUE_URL", stack.dead_letter_queue_url)
    stack.sqs.change_message_visibility(
        QueueUrl=stack.dead_letter_queue_url,
        ReceiptHandle=letter["ReceiptHandle"],
        VisibilityTimeout=0,
    )
    assert load_dead_letters_script().main(["show", sub.submission_id], out=out) == 0
    assert "cliniko_validation_failed:email" in out.getvalue()


def test_records_are_not_started_too_close_to_the_timeout(stack, cliniko, monkeypatch) -> None:
    monkeypatch.setenv("MIN_REMAINING_SECONDS", "5")
    send(stack, submission(), submission())
    nearly_over = LambdaContext(function_name="IntakeWorkerFunction", timeout_ms=3_000)
    messages, failed = poll_once(stack, worker_handler.lambda_handler, nearly_over, visibility=60)
    assert len(messages) == 2 and failed == {m["MessageId"] for m in messages}
    assert cliniko.control.requests() == []  # nothing was started
    # Handed back at once (not after the batch's visibility timeout), then done in time.
    run_until_empty(stack)
    assert len(cliniko.control.contacts()) == 1


def replay_parked(stack: WorkerStack) -> list[str]:
    """What the operator does after looking at the parked queue: every parked message back
    to the submission queue (then deleted from the parked queue)."""
    replayed = []
    for message in stack.drain(stack.parked_queue_url):
        stack.sqs.send_message(QueueUrl=stack.queue_url, MessageBody=message["Body"])
        stack.sqs.delete_message(
            QueueUrl=stack.parked_queue_url, ReceiptHandle=message["ReceiptHandle"]
        )
        replayed.append(QueuedSubmission.from_json(message["Body"]).submission_id)
    return replayed


@pytest.mark.parametrize(
    "replayed_after",
    [timedelta(hours=2), timedelta(days=3)],
    ids=["within-idempotency-window", "after-idempotency-window"],
)
def test_a_parked_submission_stays_replayable(stack, cliniko, monkeypatch, replayed_after) -> None:
    clock = WorldClock(monkeypatch, stack, cliniko.control)
    client = cliniko.client()
    keep = client.create_contact({"first_name": "Ana", "email": "ana.lima@example.com"})
    duplicate = client.create_contact({"first_name": "A.", "email": "ANA.LIMA@example.com"})
    sub = submission()
    send(stack, sub)
    run_until_empty(stack)
    assert replay_parked(stack) == [sub.submission_id]

    # Replayed while both contacts still exist: parked again, nothing written.
    clock.advance(replayed_after)
    run_until_empty(stack)
    again = stack.drain(stack.parked_queue_url)
    assert [QueuedSubmission.from_json(m["Body"]).submission_id for m in again] == [
        sub.submission_id
    ]
    attributes = again[0]["MessageAttributes"]
    assert attributes["reason"]["StringValue"] == "several_matches"
    for message in again:  # visible again for the operator's replay below
        stack.sqs.change_message_visibility(
            QueueUrl=stack.parked_queue_url,
            ReceiptHandle=message["ReceiptHandle"],
            VisibilityTimeout=0,
        )
    assert [c["last_name"] for c in cliniko.control.contacts()] == ["", ""]

    # Staff merge the duplicates (Cliniko keeps one, archives the other), then replay.
    client.archive_contact(str(duplicate.id))
    clock.advance(replayed_after)
    assert replay_parked(stack) == [sub.submission_id]
    run_until_empty(stack)
    assert stack.drain(stack.parked_queue_url) == []
    active = cliniko.control.contacts(include_archived=False)
    assert [(c["id"], c["first_name"], c["last_name"]) for c in active] == [
        (str(keep.id), "Ana", "Lima")  # fill_blanks: staff's first name stays
    ]
    assert active[0]["phone_numbers"][0]["number"] == "0412 345 678"
    assert stack.ledger_items() == []  # staff made it: never the intake's


def test_a_handled_submission_leaves_no_values_behind(stack, cliniko) -> None:
    sub = submission()
    send(stack, sub)
    run_until_empty(stack)
    assert len(cliniko.control.contacts()) == 1
    item = stack.dynamodb.get_item(
        TableName=stack.submission_table, Key={"id": {"S": "submission#" + sub.submission_id}}
    )["Item"]
    assert set(item) == {"id", "done_at", "expiration"}  # when, not what


def test_a_copy_dead_lettered_while_the_other_went_in_is_removed_not_replayed(
    stack, cliniko, monkeypatch, capsys
) -> None:
    # SQS delivers at least once. One copy's receives all failed "in_progress" while the other
    # held the submission, and SQS moved it to the dead-letter queue; then the other went in.
    # The letter could not be replayed (its body gone), and the replay failed every time.
    sub = submission()
    send(stack, sub)
    copy = stack.sqs.send_message(
        QueueUrl=stack.dead_letter_queue_url, MessageBody=stack.queued_message(sub)
    )["MessageId"]
    run_until_empty(stack)
    monkeypatch.setenv("DEAD_LETTER_QUEUE_URL", stack.dead_letter_queue_url)
    dead_letters = load_dead_letters_script()
    out = io.StringIO()
    assert dead_letters.main(["show", copy], out=out) == 0
    assert "done at " in out.getvalue()
    out = io.StringIO()
    assert dead_letters.main(["replay", "--all"], out=out) == 0, capsys.readouterr().err
    assert out.getvalue().startswith(f"removed {copy}: its submission done at ")
    assert stack.counts(stack.dead_letter_queue_url) == (0, 0)
    assert stack.counts(stack.queue_url) == (0, 0)  # nothing sent round again
    # A copy still queued when the other went in is dropped as done.
    stack.sqs.send_message(QueueUrl=stack.queue_url, MessageBody=stack.queued_message(sub))
    with captured_logs("intake") as logs:
        run_until_empty(stack)
    [drop] = logs.json("submission dropped")
    assert (drop["submission_id"], drop["reason"]) == (sub.submission_id, "already_done")
    assert len(cliniko.control.contacts()) == 1


def test_a_queued_id_whose_body_is_gone_is_dropped_with_metric(stack, cliniko, capsys) -> None:
    sub = submission()
    send(stack, sub)
    stack.store().delete(sub.submission_id)  # erased, or past the store's TTL
    with captured_logs("intake") as logs:
        messages, failed = poll_once(stack, worker_handler.lambda_handler, context())
    [drop] = logs.json("submission dropped")
    assert (drop["submission_id"], drop["reason"]) == (sub.submission_id, "submission_body_gone")
    assert len(messages) == 1 and failed == set()  # acknowledged, not retried
    assert cliniko.control.requests() == []
    assert emf_metrics(capsys.readouterr().out).get("SubmissionDropped") == 1


EMAIL_HMAC = "ab" * 32


@pytest.mark.parametrize(
    ("erased_minutes_after_made", "dropped"),
    [(10, True), (0, True), (-10, False)],
    ids=["erased-after", "erased-at-the-same-time", "made-after-the-erasure"],
)
def test_a_tombstone_drops_only_submissions_made_before_the_erasure(
    stack, cliniko, capsys, erased_minutes_after_made, dropped
) -> None:
    made = datetime(2026, 11, 20, 9, 0, tzinfo=UTC)
    sub = dataclasses.replace(submission(), submitted_at=made)
    stack.store().tombstone([EMAIL_HMAC], made + timedelta(minutes=erased_minutes_after_made))
    stack.enqueue(sub, email_hmac=EMAIL_HMAC)
    with captured_logs("intake") as logs:
        run_until_empty(stack)
    out = capsys.readouterr().out
    assert len(cliniko.control.contacts()) == (0 if dropped else 1)
    assert (emf_metrics(out).get("SubmissionDropped") == 1) is dropped
    drops = [(r["submission_id"], r["reason"]) for r in logs.json("submission dropped")]
    assert drops == ([(sub.submission_id, "erased")] if dropped else [])
    # Dropped or done: no body kept.
    assert not isinstance(stack.store().get(sub.submission_id), StoredSubmission)


@pytest.mark.parametrize("known", [False, True], ids=["to-create", "to-update"])
def test_an_erasure_while_the_worker_holds_the_submission_stops_it_before_cliniko(
    stack, cliniko, capsys, monkeypatch, known
) -> None:
    # The erasure lands after the worker loaded the submission (its tombstone was read then)
    # and before it writes: the claim's wait, the lookups and Cliniko's waits can take that
    # long. Created, it brought the person back; an update (her contact, not yet scrubbed,
    # lacks the phone) wrote her values again.
    if known:
        cliniko.control.seed(
            contacts=[{"first_name": "Ana", "last_name": "Lima", "email": ANA.email}]
        )
    sub = submission()
    stack.enqueue(sub, email_hmac=EMAIL_HMAC)
    hold = DynamoClaims.hold

    def erasure_then_hold(claims, key):
        stack.store().tombstone([EMAIL_HMAC], datetime.now(UTC))
        return hold(claims, key)

    monkeypatch.setattr(DynamoClaims, "hold", erasure_then_hold)
    with captured_logs("intake") as logs:
        run_until_empty(stack)
    assert len(cliniko.control.contacts()) == int(known)
    assert [r for r in cliniko.control.requests() if r["method"] != "GET"] == []
    drops = [(r["submission_id"], r["reason"]) for r in logs.json("submission dropped")]
    assert drops == [(sub.submission_id, "erased")]
    assert stack.store().get(sub.submission_id) is None
    assert emf_metrics(capsys.readouterr().out).get("ContactCreated") is None


def test_a_throttled_clinic_s_other_records_wait_for_the_reset_too(stack, cliniko, monkeypatch):
    monkeypatch.setenv("RETRY_BASE_SECONDS", "1")
    monkeypatch.setenv("CLINIKO_MAX_WAIT_SECONDS", "1")
    monkeypatch.setenv("MIN_REMAINING_SECONDS", "100")  # handed back, not waited out
    cliniko.control.set_faults(throttle_window_s=60)
    bea = dataclasses.replace(ANA, first_name="Bea", email="bea.lima@example.com")
    send(stack, submission(ANA), submission(bea))
    with captured_logs("intake") as logs:
        _messages, failed = poll_once(stack, worker_handler.lambda_handler, context())
    assert len(failed) == 2
    attempts = logs.json("submission attempt failed")
    assert [a["reason"] for a in attempts] == ["cliniko_rate_limited", "account_unavailable"]
    # Both wait out the reset (~60 s): the second, handed back untried with the backoff
    # alone (1 s), came back before it, was refused again and spent a receive.
    assert [a["retry_in_seconds"] >= 55 for a in attempts] == [True, True]


def lagging_search(cliniko, monkeypatch, lag: float) -> None:
    """A Cliniko whose lists show a new contact only `lag` seconds after its create answered
    (a search read from a replica, or an index): the create itself, and GET by id, are at once.
    Cliniko's docs say nothing either way."""
    import json

    made_at: dict[str, float] = {}
    real = cliniko.server.app._answer

    def answer(method, match, *args):
        reply = real(method, match, *args)
        if method == "POST" and reply.status == 201:
            made_at[str(json.loads(reply.body)["id"])] = time.monotonic()
        elif method == "GET" and match is not None and match["id"] is None and reply.status == 200:
            page = json.loads(reply.body)
            shown = [
                c
                for c in page["contacts"]
                if time.monotonic() - made_at.get(str(c["id"]), -lag) >= lag
            ]
            page["total_entries"] -= len(page["contacts"]) - len(shown)
            page["contacts"] = shown
            reply.body = json.dumps(page).encode()
        return reply

    monkeypatch.setattr(cliniko.server.app, "_answer", answer)


def test_the_person_s_next_submission_while_the_search_lags_finds_the_contact_made(
    stack, cliniko, monkeypatch
) -> None:
    # As deployed: after a create, the person stays claimed while Cliniko's lists may not
    # show the contact yet. Released at once, the person's second form (sent a moment after
    # the first, another submission) looked them up, found nobody, and made them twice.
    monkeypatch.delenv("CREATED_SEARCH_SETTLES_SECONDS", raising=False)
    lagging_search(cliniko, monkeypatch, lag=2.0)
    send(stack, submission())
    poll_once(stack, worker_handler.lambda_handler, context())
    again = dataclasses.replace(ANA, company_name="Harbour Physio")
    send(stack, submission(again))
    run_until_empty(stack)
    [contact] = cliniko.control.contacts()
    assert contact["company_name"] == "Harbour Physio"
    assert len(stack.ledger_items()) == 1


@contextlib.contextmanager
def record_release_refused() -> Iterator[list[str]]:
    """DynamoDB answering the worker's first delete of a Powertools record (the release of a
    failed attempt's) with a 500, as a hiccup does: the operations refused. A botocore hook on
    the worker's client: the AWS boundary."""
    refused: list[str] = []

    def refuse(params: dict, **_: object) -> None:
        key = params.get("Key", {}).get("id", {}).get("S", "")
        if not refused and key.startswith("intake-worker#"):
            refused.append(key)
            raise ClientError({"Error": {"Code": "InternalServerError"}}, "DeleteItem")

    client = aws_clients.client("dynamodb", config=aws_clients.FAIL_FAST)
    client.meta.events.register("before-parameter-build.dynamodb.DeleteItem", refuse)
    try:
        yield refused
    finally:
        client.meta.events.unregister("before-parameter-build.dynamodb.DeleteItem", refuse)


def test_a_parked_submission_is_parked_once_when_its_record_cannot_be_released(
    stack, cliniko
) -> None:
    # Powertools answers a failed release with IdempotencyPersistenceLayerError in place of
    # the attempt's own outcome: the parked submission was handed back as a failure too, and
    # parked a second time on its next delivery.
    for first_name in ("Ana", "Ana L"):
        cliniko.client().create_contact({"first_name": first_name, "email": ANA.email})
    send(stack, submission())
    with record_release_refused() as refused:
        messages, failed = poll_once(stack, worker_handler.lambda_handler, context())
    assert refused and len(messages) == 1 and failed == set()
    assert stack.counts(stack.parked_queue_url) == (1, 0)
    assert stack.counts(stack.queue_url) == (0, 0)


def test_a_refused_submission_is_dead_lettered_when_its_record_cannot_be_released(
    stack, cliniko
) -> None:
    # Cliniko's 422, then the release refused: it was booked as unexpected_error and sent to
    # Cliniko again on each delivery, not dead-lettered with its reason.
    send(stack, submission(dataclasses.replace(ANA, email="ana@example")))
    with record_release_refused() as refused:
        messages, failed = poll_once(stack, worker_handler.lambda_handler, context())
    assert refused and len(messages) == 1 and failed == set()
    [letter] = every_message(stack.sqs, stack.dead_letter_queue_url, MessageAttributeNames=["All"])
    reason = letter["MessageAttributes"]["failure_reason"]["StringValue"]
    assert reason.startswith("cliniko_validation_failed")
