"""One clinic's Cliniko stalling must not dead-letter another clinic's submissions: the worker
through its SQS handler, two accounts on two shards of the emulator, one of them holding every
answer, and the deployed backoff."""

from __future__ import annotations

import threading

import pytest
from cliniko_automations.intake.submission import QueuedSubmission
from cliniko_automations.intake_worker import handler as worker_handler

from tests.fixtures.apigw import LambdaContext
from tests.fixtures.emulator import before_each_answer
from tests.integration.intake_worker.resources import (
    clinic_submission,
    poll_once,
    two_clinics_stack,
    worker_environment,
)


@pytest.fixture
def clinic_a_stalled(aws, cliniko, monkeypatch, tmp_path):
    stack, accounts = two_clinics_stack(cliniko, tmp_path)
    # The deployed timings scaled down 24 times (a 120 s timeout, 30 s kept to start a record,
    # 10 s reserved), with the deployed backoff: a failed attempt hidden 30 s, then longer.
    worker_environment(
        monkeypatch,
        stack,
        cliniko.base_url_template,
        accounts,
        MIN_REMAINING_SECONDS="1.25",
        RESERVE_SECONDS="0.4",
        RETRY_BASE_SECONDS="30",
    )
    release = threading.Event()
    before_each_answer(cliniko.server, monkeypatch, lambda *_: release.wait(30), shard="au2")
    yield stack
    release.set()


def test_a_stalled_clinic_does_not_dead_letter_another_clinic_s_submission(
    clinic_a_stalled, cliniko
):
    stack = clinic_a_stalled
    for n in range(5):
        stack.enqueue(clinic_submission("clinic-a", f"Ana{n}"))
    sent_b = clinic_submission("clinic-b", "Bea")
    stack.enqueue(sent_b)
    for _ in range(6):  # past the five receives after which SQS dead-letters a message
        context = LambdaContext(function_name="IntakeWorkerFunction", timeout_ms=5_000)
        poll_once(stack, worker_handler.lambda_handler, context)
    dead = [
        QueuedSubmission.from_json(m["Body"]).submission_id
        for m in stack.drain(stack.dead_letter_queue_url)
    ]
    # Before, clinic A's first record spent each invocation and the rest, B's included, were
    # handed back untried: five receives, and B's went to the dead letters unattempted.
    assert sent_b.submission_id not in dead
    assert [c["first_name"] for c in cliniko.control.contacts()] == ["Bea"]
