"""scripts/cleanup.py prints a stopped rule's error, the kind of Cliniko's refusal (a 422's
field names), as the runs table keeps it; and a plan followed on a stack answers in JSON as a
local one does."""

from __future__ import annotations

import dataclasses
import datetime as dt
import json
import os
from pathlib import Path

import boto3
import pytest
from cliniko_automations.cleanup.core import RuleProgress, RunState

from tests.integration.cleanup.test_handler import deployed, run_cli  # noqa: F401 (fixture)
from tests.integration.common.test_http_transport import ScriptedServer
from tests.integration.terminal.hostile import assert_printable, cliniko_refusing_everything
from tests.unit.cleanup.test_status import cli


@pytest.fixture
def hostile_cliniko(deployed, monkeypatch):  # noqa: F811
    server = ScriptedServer(cliniko_refusing_everything)
    monkeypatch.setenv("CLINIKO_BASE_URL", f"http://127.0.0.1:{server.port}/{{shard}}/v1")
    yield server
    server.stop()


def test_a_rule_stopped_by_cliniko_is_reported_without_terminal_controls(hostile_cliniko):
    planned = run_cli("plan", "--local")
    assert planned.returncode == 1 and "stopped" in planned.stdout, planned.stderr
    assert_printable(planned.stdout)
    shown = run_cli("status")
    assert "stopped" in shown.stdout
    assert_printable(shown.stdout + shown.stderr)
    json.loads(run_cli("--json", "status").stdout)


def test_the_stopped_rule_line_on_stderr_has_no_terminal_controls(hostile_cliniko):
    planned = run_cli("plan", "--local")
    (line,) = [line for line in planned.stderr.splitlines() if "stopped:" in line]
    assert_printable(line)


class StartedExecution:
    """Step Functions as cleanup.py starts and follows a plan on a stack: the execution began
    run `run_id` (its Begin step's answer in the history) and is running."""

    arn = "arn:aws:states:ap-southeast-2:123456789012:execution:cleanup:plan-1"

    def __init__(self, run_id: str) -> None:
        self._run_id = run_id
        self.status = "RUNNING"

    def start_execution(self, **_: str) -> dict[str, str]:
        return {"executionArn": self.arn}

    def get_paginator(self, name: str) -> StartedExecution:
        return self

    def paginate(self, **_: str) -> list[dict]:
        output = json.dumps({"Payload": {"run_id": self._run_id, "next": "step"}})
        return [{"events": [{"taskSucceededEventDetails": {"output": output}}]}]

    def describe_execution(self, **_: str) -> dict[str, str]:
        return {"status": self.status}


def a_started_plan(
    stack: dict, monkeypatch: pytest.MonkeyPatch, run_id: str, phase: str
) -> tuple[StartedExecution, RunState]:
    """A plan's execution on `stack` (the `deployed` fixture; Step Functions stood in for),
    and the run it began, in the runs table with its rule at `phase`."""
    sfn = StartedExecution(run_id)
    clients = {"stepfunctions": sfn}
    monkeypatch.setattr(cli, "_boto", lambda service: clients.get(service) or boto3.client(service))
    monkeypatch.setenv("CLEANUP_STATE_MACHINE_ARN", "arn:aws:states:::stateMachine:cleanup")
    progress = RuleProgress("form-tests", "test-clinic", True, phase=phase)
    state = RunState(run_id, True, dt.datetime.now(dt.UTC).isoformat(), [progress])
    stack["runs"].create(Path(os.environ["CLEANUP_RULES_FILE"]).stem, state)
    return sfn, state


def test_a_plan_followed_on_a_stack_answers_one_json_report(
    deployed,  # noqa: F811
    monkeypatch,
    capsys,
):
    # `--json plan` on a stack (a Step Functions execution, followed until the run ends) is one
    # JSON report on stdout, as `--json plan --local` is: stdout held the execution's ARN and
    # then a report per 10 s refresh, which no JSON reader takes.
    sfn, state = a_started_plan(deployed, monkeypatch, "plan-1", phase="done")

    def the_run_ends(_: float) -> None:  # the watch's 10 s pause: the step finished it
        deployed["runs"].save(dataclasses.replace(state, status="finished", steps=2))

    monkeypatch.setattr(cli.time, "sleep", the_run_ends)
    assert cli.main(["--json", "plan"]) == 0
    captured = capsys.readouterr()
    report = json.loads(captured.out)
    assert (report["run_id"], report["status"], report["dry_run"]) == ("plan-1", "finished", True)
    assert sfn.arn in captured.err


def test_a_followed_run_whose_execution_was_stopped_ends_with_a_failure(
    deployed,  # noqa: F811
    monkeypatch,
    capsys,
):
    # An execution stopped from the console (or past its time) finishes nothing: its run stays
    # "running" in the table, and `plan` (or `run --follow`) waited for it for ever.
    sfn, _ = a_started_plan(deployed, monkeypatch, "plan-2", phase="matching")
    pauses: list[float] = []

    def the_execution_is_stopped(seconds: float) -> None:
        pauses.append(seconds)
        assert len(pauses) < 3, "still following a run whose execution ended"
        sfn.status = "ABORTED"

    monkeypatch.setattr(cli.time, "sleep", the_execution_is_stopped)
    assert cli.main(["plan"]) == 1
    captured = capsys.readouterr()
    assert "the execution ended (ABORTED) while its run plan-2 was still running" in captured.err
    assert "plan-2" in captured.out and "running" in captured.out  # its last report
    assert len(pauses) == 1
