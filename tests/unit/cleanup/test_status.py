"""scripts/cleanup.py's progress of one rule: its total and ETA in entries asked about."""

from __future__ import annotations

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
    assert set(RunState.from_dict(state.as_dict()).as_dict()["rules"][1]) == FIELDS_BEFORE


# RuleProgress's fields in the release of 2026-12-04 (774e5fb; early 2026-12-05's, 608a678, knew
# failing_since too), whose loader passes every stored field to RuleProgress(**...): one more
# is a TypeError there.
FIELDS_BEFORE = {
    *("rule", "account", "created_by_intake", "phase", "cursor", "pending", "exhausted"),
    *("asked", "matched", "archived", "failed", "batches", "error", "failed_ids", "definition"),
}
# A run of release 774e5fb as it stored it (the runs table's `state`), two rules mid-batch, the
# archives having met 502s: recorded from that release's cleanup step against moto and the
# emulator.
STORED_BY_774E5FB = {
    "run_id": "c49605fe020f5f0598c3eb720cc5e17b",
    "dry_run": False,
    "started_at": "2026-12-05T08:12:20+00:00",
    "rules": [
        {
            "rule": "form-tests",
            "account": "test-clinic",
            "created_by_intake": True,
            "phase": "archive",
            "cursor": "1390712996921112084",
            "pending": ["1390712996921095324", "1390712996921099329", "1390712996921104036"],
            "exhausted": True,
            "asked": 5,
            "matched": 3,
            "archived": 0,
            "failed": 0,
            "batches": 1,
            "error": "cliniko_ServerError",
            "failed_ids": [],
            "definition": "d105fcc6d32826d9d7c7b61df7e5317f873e90bb7c30f46058e6cf5bdef1e7fb",
        },
        {
            "rule": "more-tests",
            "account": "test-clinic",
            "created_by_intake": True,
            "phase": "archive",
            "cursor": "1390712996921112084",
            "pending": ["1390712996921111065", "1390712996921112084"],
            "exhausted": True,
            "asked": 5,
            "matched": 2,
            "archived": 0,
            "failed": 0,
            "batches": 1,
            "error": "cliniko_ServerError",
            "failed_ids": [],
            "definition": "e3cf85a8d55cffab05df6bcb1c8e2e44d98892e3b3ee36a34502796dbccec748",
        },
    ],
    "next_rule": 0,
    "steps": 1,
    "status": "running",
}


def test_a_run_stored_by_the_release_before_goes_on_where_it_was() -> None:
    state = RunState.from_dict(STORED_BY_774E5FB)
    first = state.rules[0]
    assert (first.phase, first.pending[0], first.matched) == ("archive", "1390712996921095324", 3)
    assert (first.failing_since, first.archive_faults, first.batch_archived) == (None, {}, False)


def test_a_run_this_release_stores_loads_in_the_release_before() -> None:
    # Rolled back under a running run (CloudFormation undoing a failed update, a redeploy of
    # the previous release): every rule as stored must be one the release before can build.
    state = RunState.from_dict(STORED_BY_774E5FB)
    # Its first rule between batches (the first archived), its second done.
    state.rules[0].phase, state.rules[0].pending, state.rules[0].archived = "find", [], 3
    state.rules[1].phase, state.rules[1].pending, state.rules[1].archived = "done", [], 2
    started = RunState("r2", False, "2026-12-05T09:00:00+00:00", [RuleProgress("a", "c", True)])
    for stored in (state.as_dict(), started.as_dict()):
        for progress in stored["rules"]:
            assert set(progress) <= FIELDS_BEFORE
    assert RunState.from_dict(state.as_dict()) == state


def test_a_rule_meeting_server_errors_stores_what_it_needs() -> None:
    # Its count of 5xx must survive the step: only then is a new field stored (README
    # "Updating a stack deployed from an earlier release").
    progress = RuleProgress("a", "c", True, phase="archive", pending=["1", "2"])
    progress.failing_since, progress.archive_faults = "2026-12-05T09:00:00+00:00", {"1": 2}
    progress.batch_archived = True
    stored = RunState("r3", False, "2026-12-05T09:00:00+00:00", [progress]).as_dict()
    assert set(stored["rules"][0]) - FIELDS_BEFORE == {
        "failing_since",
        "archive_faults",
        "batch_archived",
    }
    assert RunState.from_dict(stored).rules[0] == progress


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
    monkeypatch.setattr(cli, "start_execution", lambda payload, follow: (cli.EXIT_OK, "arn:x"))
    monkeypatch.setattr(cli, "run_of_execution", lambda arn: (cli.EXIT_OK, "r1"))
    monkeypatch.setattr(cli, "_boto", lambda _: StepFunctions([], "FAILED"))
    monkeypatch.setattr(cli, "_runs_and_ledger", lambda: (Runs(), Ledger(), "cleanup_rules"))
    assert cli.command(cli.parser().parse_args(["plan"])) == cli.EXIT_FAILED
    assert "failed" in capsys.readouterr().out


class EndingExecution(StepFunctions):
    """An execution that begins its run and ends (SUCCEEDED) right after the first thing
    cleanup.py asks of it: a plan of a few contacts takes a second or two."""

    def __init__(self, history: list[dict]) -> None:
        super().__init__([], "RUNNING")
        self._ended = (history, "SUCCEEDED")
        self._asked = 0

    def _ask(self) -> None:
        self._asked += 1
        if self._asked == 2:
            self._history, self._status = self._ended

    def paginate(self, **_: str) -> list[dict]:
        self._ask()
        return super().paginate()

    def describe_execution(self, **_: str) -> dict[str, str]:
        self._ask()
        return super().describe_execution()


def test_a_run_that_ends_between_two_reads_is_its_run_not_a_refusal(monkeypatch, capsys) -> None:
    # The history read before the run began, the status after the execution ended: the run
    # was taken for a refusal ("another run of the rule set is going", exit 3), its report
    # never shown. Ended, the execution's history is whole, and names the run it began.
    began = {"taskSucceededEventDetails": {"output": '{"Payload": {"run_id": "r1"}}'}}
    monkeypatch.setattr(cli, "_boto", lambda _: EndingExecution([began]))
    assert cli.run_of_execution("arn:x") == (cli.EXIT_OK, "r1")
    assert capsys.readouterr().err == ""
