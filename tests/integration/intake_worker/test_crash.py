"""A worker process killed right after Cliniko created the contact: the retry must not create
a second one. The kill is real (SIGKILL, no cleanup, no `finally`), in a child process that
runs the unmodified handler; a profile hook fires it when the worker starts writing the
ledger, i.e. after the create answered and before any bookkeeping or idempotency record."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from datetime import timedelta
from pathlib import Path

import pytest
from cliniko_automations.intake.submission import ContactDraft, PhoneNumber
from cliniko_automations.intake_worker import handler as worker_handler

from tests.fixtures.apigw import LambdaContext
from tests.integration.intake_worker.resources import (
    WORKER_TIMEOUT_MS,
    WorkerStack,
    WorldClock,
    captured_logs,
    create_worker_stack,
    json_submission,
    poll_once,
    put_secrets,
    sqs_event,
    worker_environment,
    write_worker_config,
)
from tests.integration.intake_worker.test_handler import replay_parked, run_until_empty

ROOT = Path(__file__).resolve().parents[3]

CHILD = """
import json, os, signal, sys
from cliniko_automations.intake_worker import handler as worker_handler
from tests.fixtures.apigw import LambdaContext

def die_at_ledger(frame, event, arg):
    if event == "call" and frame.f_code.co_name == "record" and frame.f_code.co_filename.endswith(
        os.path.join("common", "ledger.py")
    ):
        os.kill(os.getpid(), signal.SIGKILL)

event = json.load(sys.stdin)
sys.setprofile(die_at_ledger)
# A short Lambda timeout: Powertools lets the INPROGRESS record expire when it would end. Long
# enough for its Cliniko requests, which end before it does (the client's time_left).
context = LambdaContext(function_name="IntakeWorkerFunction", timeout_ms=4000)
worker_handler.lambda_handler(event, context)
print("not killed")
"""


@pytest.fixture
def stack(aws, cliniko, monkeypatch, tmp_path) -> WorkerStack:
    stack = create_worker_stack()
    put_secrets({"tests/cliniko/test-clinic": cliniko.api_key})
    worker_environment(
        monkeypatch,
        stack,
        cliniko.base_url_template,
        write_worker_config(tmp_path),
        # Retries spaced 1, 2, 4 s apart: the dead attempt's record expires in between.
        RETRY_BASE_SECONDS="1",
        # The killed child's invocation is 4 s long; it must still start its record, and
        # reach Cliniko.
        MIN_REMAINING_SECONDS="0",
        RESERVE_SECONDS="0",
    )
    return stack


@pytest.mark.parametrize(
    "draft",
    [
        ContactDraft(first_name="Ana", last_name="Lima", email="ana.lima@example.com"),
        ContactDraft(
            first_name="Ana", last_name="Lima", phone_numbers=(PhoneNumber(number="0412 345 678"),)
        ),
        ContactDraft(first_name="Accounts", company_name="Acme Health Fund"),
    ],
    ids=["email", "name-and-phone", "no-identity"],
)
def test_killed_after_create_then_retried_makes_one_contact(stack, cliniko, draft) -> None:
    killed_after_create(stack, cliniko, draft)

    # The queue delivers it again. Until the dead attempt's INPROGRESS record expires the
    # retry is refused ("in_progress") and the message comes back; then it goes through.
    with captured_logs("intake") as logs:
        retried_until_done(stack)
    outcome_logs = logs.json("submission processed")
    [contact] = cliniko.control.contacts()
    assert [e["contact_id"] for e in stack.ledger_items()] == [contact["id"]]
    assert [r["method"] for r in cliniko.control.requests()].count("POST") == 1
    assert outcome_logs[-1]["action"] == "created"
    assert outcome_logs[-1]["recovered"] is True


def retried_until_done(stack: WorkerStack) -> None:
    context = LambdaContext(function_name="IntakeWorkerFunction", timeout_ms=WORKER_TIMEOUT_MS)
    for _ in range(60):
        got, failed = poll_once(stack, worker_handler.lambda_handler, context, visibility=0)
        if got and not failed:
            return
        time.sleep(0.25)
    pytest.fail("the retried submission never completed")


def killed_after_create(stack: WorkerStack, cliniko, draft: ContactDraft) -> None:
    """The worker's process killed as the create's answer is in: Cliniko has the contact, and
    nothing on our side says so but the create intent."""
    stack.enqueue(json_submission(draft))
    messages = stack.receive(visibility=0)
    child = subprocess.run(  # noqa: S603 - our own interpreter and code
        [sys.executable, "-c", CHILD],
        input=json.dumps(sqs_event(messages, stack.queue_arn)),
        capture_output=True,
        text=True,
        cwd=ROOT,
        env=os.environ.copy(),
        timeout=60,
    )
    assert child.returncode == -signal.SIGKILL, child.stdout + child.stderr
    assert len(cliniko.control.contacts()) == 1
    assert stack.ledger_items() == []


def parked_reasons(stack) -> list[str]:
    parked = stack.drain(stack.parked_queue_url)
    for message in parked:  # visible again for the operator's next replay
        stack.sqs.change_message_visibility(
            QueueUrl=stack.parked_queue_url,
            ReceiptHandle=message["ReceiptHandle"],
            VisibilityTimeout=0,
        )
    return [m["MessageAttributes"]["reason"]["StringValue"] for m in parked]


@pytest.mark.parametrize(
    ("draft", "correction"),
    [
        (
            ContactDraft(
                first_name="Ana",
                last_name="Lima",
                phone_numbers=(PhoneNumber(number="0412 345 678"),),
            ),
            {"phone_numbers": [{"number": "0412 345 679", "phone_type": "Mobile"}]},
        ),
        (
            ContactDraft(first_name="Accounts", company_name="Acme Health Fund"),
            {"company_name": "Acme Health Fund Pty Ltd"},
        ),
    ],
    ids=["name-and-phone", "no-identity"],
)
def test_killed_after_create_then_corrected_by_staff_is_parked_and_never_made_twice(
    stack, cliniko, monkeypatch, draft, correction
):
    clock = WorldClock(monkeypatch, stack, cliniko.control)
    killed_after_create(stack, cliniko, draft)
    [made] = cliniko.control.contacts()
    # Reception corrects the new contact while the message waits out its visibility timeout
    # (12 minutes): no longer provably the lost create's, and, without an email, not found as
    # the same person either. Before, the retry made the person a second contact.
    time.sleep(1.1)  # Cliniko's times are whole seconds
    cliniko.client().update_contact(str(made["id"]), correction)
    retried_until_done(stack)
    assert [c["id"] for c in cliniko.control.contacts()] == [made["id"]]
    assert parked_reasons(stack) == ["ambiguous_recovery"]

    # Staff look at the listed contact and replay an hour later: parked again, as long as the
    # lost create's intent lasts (nothing staff can do in Cliniko changes that).
    clock.advance(timedelta(hours=1))
    replay_parked(stack)
    run_until_empty(stack)
    assert parked_reasons(stack) == ["ambiguous_recovery"]

    # Replayed again on day 14 of the re-parked message (within the parked queue's
    # retention): the intent (14 days from the create) is gone. Before: a second contact,
    # and the ledger names it, not the one the lost create made.
    clock.advance(timedelta(days=14) - timedelta(minutes=1))
    replay_parked(stack)
    with captured_logs("intake") as logs:
        run_until_empty(stack)
    actions = [o["action"] for o in logs.json("submission processed")]
    assert [c["id"] for c in cliniko.control.contacts()] == [made["id"]], actions
    assert actions == ["parked"]
