"""One clinic's 429 must not hold another clinic's submissions in the same batch: the worker
through its SQS handler, two accounts on two shards of the emulator, and clinic A's Cliniko
window spent by something outside the shared budget (another integration on A's user).

A's reset is further off than one request may wait (CLINIKO_MAX_WAIT_SECONDS) and near enough
for the invocation to wait it out, so the worker waits it out rather than hand A's records
back (test_a_backlog_meets_a_429.py says why). Before, it waited at A's record, and clinic B's
records behind it in the batch waited too: deployed, up to 65 s for a 429, and a batch took
every record of both clinics, so B's trickle waited on each window A's user spent. Now A's
records wait at the end of the batch, B's done first."""

from __future__ import annotations

import time
from datetime import UTC, datetime
from typing import Any

import pytest
from cliniko_automations.intake_worker import handler as worker_handler

from tests.fixtures.apigw import LambdaContext
from tests.fixtures.emulator import before_each_answer
from tests.integration.intake_worker.resources import (
    captured_logs,
    clinic_submission,
    emf_metrics,
    poll_once,
    two_clinics_stack,
    worker_environment,
)

# Longer than one request may wait (1 s here, 25 s deployed), shorter than the invocation has
# to spare (30 s less 4 s kept to start a record; 120 s less 30 s deployed).
HOLD_SECONDS = 3.0


def throttle_shard(server: Any, monkeypatch: pytest.MonkeyPatch, shard: str, seconds: float):
    """Every request to `shard` answered 429 until `seconds` from now, with that reset: its
    user's window spent elsewhere. Returns when the hold ends (UNIX time)."""
    ends = time.time() + seconds
    app = server.app
    real = app._answer

    def answer(method: str, *args: Any) -> Any:
        if args[1] == shard and time.time() < ends:  # (match, shard, query, headers, ...)
            return app._throttled(int(ends) + 1)
        return real(method, *args)

    monkeypatch.setattr(app, "_answer", answer)
    return int(ends) + 1


@pytest.fixture
def two_clinics(aws, cliniko, monkeypatch, tmp_path):
    stack, accounts = two_clinics_stack(cliniko, tmp_path)
    worker_environment(
        monkeypatch,
        stack,
        cliniko.base_url_template,
        accounts,
        CLINIKO_MAX_WAIT_SECONDS="1",
        MIN_REMAINING_SECONDS="1",
        RESERVE_SECONDS="0.4",
    )
    return stack


def created_at(cliniko, shard: str) -> dict[str, float]:
    """Each contact created on `shard`: its first name and when Cliniko answered its create."""
    return {
        c["first_name"]: datetime.fromisoformat(c["created_at"]).astimezone(UTC).timestamp()
        for c in cliniko.control.contacts(shard=shard)
    }


def processed_in_order(logs: Any, sent: list[Any]) -> list[str]:
    """The first names of the submissions the worker logged as processed, in its order (the
    order of its work, which a busy machine's clock cannot blur)."""
    names = {each.submission_id: each.draft.first_name for each in sent}
    return [names[line["correlation_id"]] for line in logs.json("submission processed")]


def test_another_clinic_s_records_are_not_held_by_a_429_waited_out(
    two_clinics, cliniko, monkeypatch, capsys
):
    stack = two_clinics
    # A's record first, as a queue in arrival order hands them: A's bulk import began first.
    sent = [clinic_submission("clinic-a", "Ana"), clinic_submission("clinic-a", "Aldo")]
    sent += [clinic_submission("clinic-b", name) for name in ("Bea", "Bruno", "Bia")]
    for each in sent:
        stack.enqueue(each)
    # B's records must not take a record's allowance of the invocation between them, or B
    # would be set aside as a slow clinic: 4 s, which no busy machine spends on three creates.
    monkeypatch.setenv("MIN_REMAINING_SECONDS", "4")
    hold_ends = throttle_shard(cliniko.server, monkeypatch, "au2", HOLD_SECONDS)

    context = LambdaContext(function_name="IntakeWorkerFunction", timeout_ms=30_000)
    with captured_logs("intake") as logs:
        messages, failed = poll_once(stack, worker_handler.lambda_handler, context)

    assert len(messages) == len(sent) and failed == set()  # every record done, none handed back
    out = capsys.readouterr().out
    clinic_b = created_at(cliniko, "au1")
    assert sorted(clinic_b) == ["Bea", "Bia", "Bruno"]
    # Before, B's three were made after A's hold was waited out; now before it, in order.
    assert processed_in_order(logs, sent) == ["Bea", "Bruno", "Bia", "Ana", "Aldo"]
    # A keeps its guarantees: waited out in this invocation (no receive spent), each made once,
    # not before its reset, and the 429 still counted for ClinikoThrottledAlarm.
    clinic_a = created_at(cliniko, "au2")
    assert sorted(clinic_a) == ["Aldo", "Ana"]
    assert min(clinic_a.values()) >= hold_ends - 1  # Cliniko stamps whole seconds
    assert emf_metrics(out).get("ClinikoThrottled", 0) >= 1


def test_another_clinic_s_records_are_not_handed_back_for_a_slow_clinic(
    two_clinics, cliniko, monkeypatch
):
    # A's Cliniko answers, but each answer takes most of what a request may wait (0.9 of 1 s
    # here; deployed, 20 s of 25): four of A's records took the invocation, and B's record
    # behind them was handed back untried (`invocation_deadline`, one of its five receives),
    # batch after batch while A's import lasted.
    stack = two_clinics
    sent = [clinic_submission("clinic-a", name) for name in ("Ana", "Aldo", "Alba", "Aida")]
    sent.append(clinic_submission("clinic-b", "Bea"))
    message_ids = [stack.enqueue(each) for each in sent]
    before_each_answer(cliniko.server, monkeypatch, lambda *_: time.sleep(0.9), shard="au2")

    context = LambdaContext(function_name="IntakeWorkerFunction", timeout_ms=8_000)
    with captured_logs("intake") as logs:
        _messages, failed = poll_once(stack, worker_handler.lambda_handler, context)

    assert message_ids[-1] not in failed
    assert list(created_at(cliniko, "au1")) == ["Bea"]
    # Once A's records had taken a record's time (MIN_REMAINING_SECONDS), B's went next:
    # some of A's came after it (made, or handed back), where it used to wait behind all four.
    assert processed_in_order(logs, sent)[-1] != "Bea" or failed
    # A pays for its own Cliniko: what the invocation had no time for is handed back
    # untried, the rest made once each.
    made = created_at(cliniko, "au2")
    assert failed <= set(message_ids[:-1])
    assert len(made) + len(failed) == 4
    assert set(made) | {sent[message_ids.index(m)].draft.first_name for m in failed} == {
        "Ana",
        "Aldo",
        "Alba",
        "Aida",
    }
