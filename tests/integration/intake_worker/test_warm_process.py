"""One worker process, invocation after invocation, as Lambda keeps it warm: nothing of one
invocation (its log keys, its metrics, its clinics stalled, its time left) reaches the next."""

from __future__ import annotations

import json

import pytest
from cliniko_automations.intake.submission import ContactDraft, Submission
from cliniko_automations.intake_worker import handler as worker_handler

from tests.fixtures.apigw import LambdaContext
from tests.integration.intake_worker.resources import (
    captured_logs,
    emf_metrics,
    json_submission,
    one_clinic_stack,
    poll_once,
)


def submission(first: str) -> Submission:
    draft = ContactDraft(first_name=first, last_name="Lima", email=f"{first.lower()}@example.com")
    return json_submission(draft)


@pytest.fixture
def stack(aws, cliniko, monkeypatch, tmp_path):
    stack = one_clinic_stack(cliniko, monkeypatch, tmp_path)
    return stack


def invoke(stack, timeout_ms: int):
    context = LambdaContext(function_name="IntakeWorkerFunction", timeout_ms=timeout_ms)
    with captured_logs("intake") as logs:
        messages, failed = poll_once(stack, worker_handler.lambda_handler, context)
    lines = [json.loads(line) for line in logs.lines if line.startswith("{")]
    return context, messages, failed, lines


def test_nothing_of_one_invocation_reaches_the_next(stack, cliniko, capsys):
    # The first: the clinic's Cliniko fails every request; its record is handed back and the
    # clinic marked stalled, with the batch's log keys and its failure's metric.
    ana, bea = submission("Ana"), submission("Bea")
    stack.enqueue(ana)
    cliniko.control.set_faults(error_rate=1.0, statuses=[503])
    _, _, failed, _ = invoke(stack, 120_000)
    assert len(failed) == 1
    capsys.readouterr()
    cliniko.control.clear_faults()
    # The second has too little time left to start a record: handed back, untried.
    _, messages, failed, _ = invoke(stack, 2_000)
    assert failed == {m["MessageId"] for m in messages} and len(failed) == 1
    capsys.readouterr()
    # The third, with time again and Cliniko back: the clinic is not stalled for it, and
    # its time left is its own.
    stack.enqueue(bea)
    third, messages, failed, lines = invoke(stack, 120_000)
    metrics = emf_metrics(capsys.readouterr().out)
    assert failed == set() and len(messages) == 2
    assert sorted(c["first_name"] for c in cliniko.control.contacts()) == ["Ana", "Bea"]
    assert metrics == {"ContactCreated": 2}
    ours = {m["MessageId"] for m in messages}
    assert lines and all(line["function_request_id"] == third.aws_request_id for line in lines)
    assert all(line.get("message_id") in ours for line in lines)
    assert all(
        line.get("correlation_id") in {ana.submission_id, bea.submission_id, None} for line in lines
    )
