"""scripts/cleanup.py's progress of one rule: its total and ETA in entries asked about."""

from __future__ import annotations

import dataclasses
import importlib.util
from pathlib import Path

from cliniko_automations.cleanup.core import RuleProgress, RunState

SCRIPT = Path(__file__).resolve().parents[3] / "scripts" / "cleanup.py"
_spec = importlib.util.spec_from_file_location("cleanup_cli", SCRIPT)
assert _spec and _spec.loader
cli = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(cli)


class Ledger:
    """The ledger's count of active entries after a cursor: 200 of a 300-entry ledger."""

    def count_active(self, account: str, cursor: str | None) -> int:
        return 200


def test_a_batch_in_hand_is_not_counted_twice_in_the_total() -> None:
    # 100 entries asked about, found matching and not archived yet: they are among the asked.
    # Counted again as work left, the total read 400 for a 300-entry ledger, then shrank as
    # the batch was archived.
    progress = RuleProgress(
        "test-submissions", "clinic", True, phase="archive", pending=[str(i) for i in range(100)]
    )
    progress.asked = 100
    status = cli.rule_status(progress, Ledger(), elapsed=50.0)
    assert status["total"] == 300
    progress.pending = progress.pending[50:]
    assert cli.rule_status(progress, Ledger(), elapsed=60.0)["total"] == 300


def test_a_stopped_rule_has_no_total_nor_eta_and_fails_the_report(capsys) -> None:
    # Refused for good (on its last batch too) or changed mid-run: it did not do its work.
    progress = RuleProgress("test-submissions", "clinic", True, phase="archive", exhausted=True)
    progress.asked, progress.failed = 3, 3
    progress.stop("cliniko_Forbidden")
    status = cli.rule_status(progress, Ledger(), elapsed=50.0)
    assert (status["phase"], status["total"], status["eta_seconds"]) == ("stopped", None, None)
    assert "100.0%" not in cli.progress_bar(status["asked"], status["total"])
    # A refresh of --watch says nothing more on stderr; the final report says it once.
    assert cli._verdict([status], final=False) == cli.EXIT_FAILED
    assert capsys.readouterr().err == ""
    assert cli._verdict([status], final=True) == cli.EXIT_FAILED
    assert capsys.readouterr().err == (
        "cleanup.py: rule test-submissions stopped: cliniko_Forbidden\n"
    )
    progress.exhausted = True  # a rule that did its work, a contact of it refused
    status = cli.rule_status(progress, Ledger(), elapsed=50.0)
    assert (status["phase"], status["total"]) == ("done", 3)
    assert cli._verdict([status], final=True) == cli.EXIT_OK


def test_a_run_stored_before_stopped_was_asked_reads_the_same() -> None:
    stored = {
        "run_id": "r1",
        "dry_run": False,
        "started_at": "2026-12-03T00:00:00+00:00",
        "rules": [
            {"rule": "a", "account": "c", "created_by_intake": False, "phase": "done"},
            {"rule": "b", "account": "c", "created_by_intake": False, "phase": "done"}
            | {"error": "rule_changed"},
        ],
    }
    state = RunState.from_dict(stored)
    assert [progress.stopped for progress in state.rules] == [False, True]
    # Nothing new is stored: code from before this reads what this stores.
    assert set(RunState.from_dict(state.as_dict()).as_dict()["rules"][1]) == set(
        dataclasses.asdict(RuleProgress("b", "c", False))
    )


def test_a_run_stored_by_a_later_release_still_loads() -> None:
    # Rolled back under a running run: what the later release added is left out.
    stored = RunState("r1", False, "2026-12-03T00:00:00+00:00", [RuleProgress("a", "c", False)])
    data = stored.as_dict() | {"priority": 1}
    data["rules"][0] |= {"contacts_skipped": ["1"], "archived": 7}
    loaded = RunState.from_dict(data)
    assert loaded.rules[0].archived == 7 and not hasattr(loaded.rules[0], "contacts_skipped")
    assert loaded.run_id == "r1" and "priority" not in loaded.as_dict()


class StepFunctions:
    """Step Functions as cleanup.py reads an execution: `history` the Begin step's answers,
    `status` the execution's."""

    def __init__(self, history: list[dict], status: str) -> None:
        self._history, self._status = history, status

    def get_paginator(self, name: str) -> StepFunctions:
        return self

    def paginate(self, **_: str) -> list[dict]:
        return [{"events": self._history}]

    def describe_execution(self, **_: str) -> dict[str, str]:
        return {"status": self._status}


def test_an_execution_that_began_no_run_was_refused_or_failed(monkeypatch, capsys) -> None:
    # README "Scheduled cleanup": a start refused while another run goes exits 3, not 0.
    refused = {"taskSucceededEventDetails": {"output": '{"next": "refused", "running": "r0"}'}}
    monkeypatch.setattr(cli, "_boto", lambda _: StepFunctions([refused], "SUCCEEDED"))
    assert cli.run_of_execution("arn:x") == (cli.EXIT_REFUSED, None)
    assert "refused" in capsys.readouterr().err
    monkeypatch.setattr(cli, "_boto", lambda _: StepFunctions([], "FAILED"))
    assert cli.run_of_execution("arn:x") == (cli.EXIT_FAILED, None)
    began = {"taskSucceededEventDetails": {"output": '{"Payload": {"run_id": "r1"}}'}}
    monkeypatch.setattr(cli, "_boto", lambda _: StepFunctions([began], "RUNNING"))
    assert cli.run_of_execution("arn:x") == (cli.EXIT_OK, "r1")


class Runs:
    """The runs table holding one run, `r1`, that the state machine gave up on."""

    def latest(self, rule_set: str) -> str:
        return "r1"

    def load(self, run_id: str) -> RunState:
        return RunState("r1", True, "2026-12-03T00:00:00+00:00", rules=[], status="failed")

    def contact_ids(self, run_id: str, kind: str) -> dict[str, list[str]]:
        return {}


def test_a_followed_run_that_failed_exits_1(monkeypatch, capsys) -> None:
    # README "Scheduled cleanup": a run that `plan` or `--follow` follows and that fails
    # exits 1, though none of its rules stopped (its steps kept failing: released).
    monkeypatch.setattr(cli, "start_execution", lambda payload: (cli.EXIT_OK, "arn:x"))
    monkeypatch.setattr(cli, "run_of_execution", lambda arn: (cli.EXIT_OK, "r1"))
    monkeypatch.setattr(cli, "_runs_and_ledger", lambda: (Runs(), Ledger(), "cleanup_rules"))
    assert cli.command(cli.parser().parse_args(["plan"])) == cli.EXIT_FAILED
    assert "failed" in capsys.readouterr().out
