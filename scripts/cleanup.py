#!/usr/bin/env python3
"""Cleanup runs from the command line: plan, run, and follow them.

  cleanup.py plan   [--rules a,b] [--local]      a dry run: what each rule would archive
  cleanup.py run    [--archive] [--rules a,b] [--local] [--follow]
  cleanup.py status [--run-id ID] [--watch]      progress bar and ETA of the newest run
  cleanup.py backfill-ledger                     once after upgrading (entries get a state)

On a stack, `run` and `plan` start an execution of the cleanup state machine
(CLEANUP_STATE_MACHINE_ARN, the stack output CleanupStateMachineArn; a start while a run is
going is refused by the state machine's first step) and `status` reads the runs table
(CLEANUP_RUNS_TABLE) and the ledger (LEDGER_TABLE). With `--local`, the state machine's loop is
driven in this process through the same step handler (local_run.state_machine: not Step
Functions), with the cleanup function's environment: `eval "$(python -m local_run env)"` sets
it for a local run. AWS_ENDPOINT_URL points boto3 at moto. Dry run unless `--archive`.

Prints rule names, counts and contact ids only.

Exit status: 0 done, 1 the run failed (a rule stopped short: a key Cliniko refuses, a rule
changed mid-run) or a mistake of the environment (no region or credentials, a table or
setting missing, a table of another kind, a bad CLEANUP_RULES_FILE: one line naming it),
2 bad arguments (a rule name the rules file does not have), 3 refused (another run is going),
130 interrupted, 141 output cut short by its reader (`| head`).
"""

from __future__ import annotations

if __name__ == "__main__":  # first: Ctrl-C during the imports below is one line too
    from cliniko_automations.common.operator_cli import interrupted_while_starting

    interrupted_while_starting("cleanup.py")

import argparse
import contextlib
import datetime as dt
import json
import os
import sys
import time
import uuid
import warnings
from collections.abc import Sequence
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "scripts"))

EXIT_OK, EXIT_FAILED, EXIT_USAGE, EXIT_REFUSED = 0, 1, 2, 3
BAR_WIDTH = 30
# The root of template.yaml's (Globals; ClinikoAutomations/<stack> deployed): the step's
# metrics need a namespace, and a local run's go to stderr, so an environment set by hand
# without one is given this.
METRICS_NAMESPACE = "ClinikoAutomations"


def parser() -> argparse.ArgumentParser:
    cli = argparse.ArgumentParser(prog="cleanup.py", description=__doc__.split("\n\n")[0])
    cli.add_argument("--json", action="store_true", help="print raw JSON")
    sub = cli.add_subparsers(dest="command", required=True)
    for name, text in (("plan", "dry run: counts per rule"), ("run", "start a run")):
        command = sub.add_parser(name, help=text)
        command.add_argument("--rules", help="comma-separated rule names (default: all)")
        command.add_argument(
            "--local", action="store_true", help="drive the loop here (same step code)"
        )
        if name == "run":
            command.add_argument(
                "--archive", action="store_true", help="really archive (default: dry run)"
            )
            command.add_argument("--follow", action="store_true", help="watch until it ends")
    sub.add_parser(
        "backfill-ledger",
        help="once after upgrading: ledger entries from before entries had a state become active",
    )
    status = sub.add_parser("status", help="progress of the newest (or a given) run")
    status.add_argument("--run-id")
    status.add_argument("--watch", action="store_true", help="refresh until the run ends")
    return cli


def _boto(service: str) -> Any:
    import boto3

    return boto3.client(service)


def _runs_and_ledger() -> tuple[Any, Any, str]:
    from cliniko_automations.cleanup.config import rules_path
    from cliniko_automations.cleanup.runs import DynamoRuns
    from cliniko_automations.cleanup.settings import CleanupSettings
    from cliniko_automations.cleanup.wiring import rule_set_name
    from cliniko_automations.common.config_file import ConfigError
    from cliniko_automations.common.ledger import DynamoLedger
    from cliniko_automations.common.stack_resources import (
        CLEANUP_RUNS_TABLE,
        LEDGER_TABLE,
        check_table,
    )

    settings = CleanupSettings.from_env()
    rules_file = rules_path(settings.cleanup_rules_file)
    if not rules_file.is_file():
        # Runs are found by their rules file's name: a path mistyped would find none and read
        # as "no cleanup run yet".
        raise ConfigError(rules_file, ["no such rules file (CLEANUP_RULES_FILE)"])
    dynamodb = _boto("dynamodb")
    # Each of its kind, before a run starts or a status is read: another output copied for
    # one (the change feed's table, keyed `pk`, for CLEANUP_RUNS_TABLE) took a run's lock and
    # checkpoints, and a ledger of another kind read "0 ledger entries made active".
    check_table(dynamodb, settings.ledger_table, LEDGER_TABLE, "LEDGER_TABLE")
    check_table(dynamodb, settings.cleanup_runs_table, CLEANUP_RUNS_TABLE, "CLEANUP_RUNS_TABLE")
    return (
        DynamoRuns(dynamodb, settings.cleanup_runs_table),
        DynamoLedger(dynamodb, settings.ledger_table),
        rule_set_name(settings),
    )


class BadRules(ValueError):
    """`--rules` names nothing, or a rule the rules file does not have."""


def start_input(rules: str | None, dry_run: bool) -> dict[str, Any]:
    """The state machine's input. `--rules` is checked against the rules file here, before
    anything starts: the step would refuse an unknown name only after the run had begun, and
    an empty list (`--rules ""`) is a mistake, not "every rule"."""
    from cliniko_automations.cleanup.config import load_cleanup_rules, rules_path

    names = None
    if rules is not None:
        names = [name.strip() for name in rules.split(",") if name.strip()]
        if not names:
            raise BadRules("--rules names no rule; leave it out to run every rule")
        known = load_cleanup_rules()
        try:
            known.selected(names)
        except ValueError as error:
            available = ", ".join(rule.name for rule in known.rules) or "none"
            raise BadRules(f"{error} in {rules_path()} (its rules: {available})") from None
    return {"dry_run": dry_run, "rules": names, "run_id": None}


class _LocalContext:
    """What the step handler reads of Lambda's context, for a step run in this process."""

    def __init__(self, timeout_seconds: float) -> None:
        self.function_name = "CleanupFunction-local"
        self.memory_limit_in_mb = 256
        self.invoked_function_arn = "arn:aws:lambda:local:000000000000:function:cleanup"
        self.aws_request_id = str(uuid.uuid4())
        self._deadline = time.monotonic() + timeout_seconds

    def get_remaining_time_in_millis(self) -> int:
        return max(0, int((self._deadline - time.monotonic()) * 1000))


def local_invoke(step_seconds: float = 900) -> Any:
    os.environ.setdefault("POWERTOOLS_METRICS_NAMESPACE", METRICS_NAMESPACE)
    # The step's own output (JSON logs, metrics) goes to stderr: stdout is this tool's answer.
    # Its logger takes the stream it writes to when the module is imported.
    with contextlib.redirect_stdout(sys.stderr):
        from cliniko_automations.cleanup.handler import lambda_handler

    def invoke(event: dict[str, Any]) -> Any:
        with contextlib.redirect_stdout(sys.stderr), warnings.catch_warnings():
            # A begin counts nothing, and Powertools says so with a Python warning quoting its
            # own source: noise at an operator's terminal, between the step's log lines.
            warnings.filterwarnings("ignore", "No application metrics to publish", UserWarning)
            return lambda_handler(event, _LocalContext(step_seconds))

    return invoke


def run_locally(payload: dict[str, Any], as_json: bool) -> int:
    from local_run.state_machine import run_loop

    invoke = local_invoke()
    # The settings and the rules file read now: in the loop, a begin that fails is repeated
    # for over a minute first, as Step Functions repeats it. After local_invoke, which
    # imports the step's modules with their logs pointed at stderr.
    from cliniko_automations.cleanup.settings import CleanupSettings
    from cliniko_automations.cleanup.wiring import cleanup_for

    cleanup_for(CleanupSettings.from_env())
    runs, ledger, rule_set = _runs_and_ledger()

    def show(answer: dict[str, Any]) -> None:
        if not as_json:
            print(
                f"  step {answer.get('iterations')}: next={answer.get('next')} "
                f"matched={answer.get('matched')} archived={answer.get('archived')}",
                file=sys.stderr,
            )

    def retrying(seconds: float) -> None:
        # What failed is in the step's own log above.
        print(f"  step failed: trying it again in {seconds:.0f} s", file=sys.stderr)

    result = run_loop(invoke, payload, on_step=show, on_retry=retrying)
    if result.status == "refused":
        print("refused: another run of the rule set is going", file=sys.stderr)
        return EXIT_REFUSED
    if result.run_id is None:  # the start itself was refused as invalid: no run of ours
        problem = result.last.get("error", result.last.get("next"))
        print(f"cleanup.py: the run did not start: {problem}", file=sys.stderr)
        return EXIT_FAILED
    # This run's report only, never another (older) run's.
    code = print_status(runs, ledger, rule_set, result.run_id, as_json)
    if result.status != "finished":
        problem = result.last.get("error", result.last.get("next"))
        print(f"cleanup.py: run {result.run_id} stopped: {problem}", file=sys.stderr)
        return EXIT_FAILED
    return code


def start_execution(payload: dict[str, Any], follow: bool = False) -> tuple[int, str | None]:
    """(exit status, the execution's ARN). The ARN is the answer on stdout, but for a run
    `follow`ed to its report, which is the answer then (one JSON document with --json)."""
    arn = os.environ.get("CLEANUP_STATE_MACHINE_ARN")
    if not arn:
        print(
            "cleanup.py: set CLEANUP_STATE_MACHINE_ARN (stack output CleanupStateMachineArn)",
            file=sys.stderr,
        )
        return EXIT_FAILED, None
    started = _boto("stepfunctions").start_execution(stateMachineArn=arn, input=json.dumps(payload))
    if not started.get("executionArn"):  # an answer, but not Step Functions' (a web page)
        print(
            "cleanup.py: StartExecution answered without an execution: is AWS_ENDPOINT_URL "
            "an AWS endpoint?",
            file=sys.stderr,
        )
        return EXIT_FAILED, None
    print(started["executionArn"], file=sys.stderr if follow else sys.stdout)
    return EXIT_OK, started["executionArn"]


def run_of_execution(execution_arn: str, wait_seconds: float = 120) -> tuple[int, str | None]:
    """(exit status, the run id) of the run this execution began, read from the output of its
    Begin step in the execution's history: never "the newest run", which may be another.
    An execution that ended without beginning a run was refused (another run holds the lock)
    or failed (its error is printed)."""
    sfn = _boto("stepfunctions")
    deadline = time.monotonic() + wait_seconds
    while True:
        # Its status before its history, which is whole once it has ended: read the other way
        # round, an execution that began its run and ended between the two reads (a small
        # plan takes a second or two) was taken for a refusal.
        described = sfn.describe_execution(executionArn=execution_arn)
        pages = sfn.get_paginator("get_execution_history").paginate(executionArn=execution_arn)
        for page in pages:
            for event in page["events"]:
                details = event.get("taskSucceededEventDetails") or {}
                with contextlib.suppress(ValueError, TypeError):
                    answer = json.loads(details.get("output") or "{}")
                    answer = answer.get("Payload", answer)
                    if answer.get("run_id"):
                        return EXIT_OK, str(answer["run_id"])
        if described["status"] == "SUCCEEDED":
            print("refused: another run of the rule set is going", file=sys.stderr)
            return EXIT_REFUSED, None
        if described["status"] != "RUNNING":
            cause = described.get("error") or described["status"]
            print(f"cleanup.py: the execution ended without a run: {cause}", file=sys.stderr)
            return EXIT_FAILED, None
        if time.monotonic() > deadline:
            print(f"cleanup.py: no run began within {wait_seconds:.0f}s", file=sys.stderr)
            return EXIT_FAILED, None
        time.sleep(2)


def progress_bar(done: int, total: int | None) -> str:
    if total is None:  # a rule that pages Cliniko itself: its total is not known ahead
        return "[" + "?" * BAR_WIDTH + "]"
    if total == 0:
        done, total = 1, 1
    filled = min(BAR_WIDTH, round(BAR_WIDTH * done / total))
    return "[" + "#" * filled + "." * (BAR_WIDTH - filled) + f"] {100 * done / total:5.1f}%"


def rule_status(progress: Any, ledger: Any, elapsed: float) -> dict[str, Any]:
    """Counts of one rule, its share done and an ETA from the rate measured so far."""
    # Unknown for a rule that pages Cliniko itself, and for one ended by an error (a key
    # Cliniko refuses, a rule changed mid-run) before its work was done: no total, no ETA.
    remaining: int | None = None
    if progress.phase == "done" and not progress.stopped:
        remaining = 0
    elif progress.created_by_intake and not progress.stopped:
        # Entries still to ask about: the batch in hand was asked about when it was found.
        remaining = ledger.count_active(progress.account, progress.cursor)
    total = None if remaining is None else progress.asked + remaining
    rate = progress.asked / elapsed if elapsed > 0 else 0.0
    eta = None if remaining is None or not rate else remaining / rate
    return {
        "rule": progress.rule,
        "phase": "stopped" if progress.stopped else progress.phase,
        "asked": progress.asked,
        "total": total,
        "matched": progress.matched,
        "archived": progress.archived,
        "gone": progress.gone,
        "failed": progress.failed,
        "error": progress.error,
        "eta_seconds": None if eta is None else round(eta),
    }


def print_status(
    runs: Any, ledger: Any, rule_set: str, run_id: str | None, as_json: bool, final: bool = True
) -> int:
    """The run's report on stdout; EXIT_FAILED when a rule stopped short, which a `final`
    report (not a refresh of --watch) also says on stderr."""
    run_id = run_id or runs.latest(rule_set)
    state = runs.load(run_id) if run_id else None
    if state is None:
        from cliniko_automations.common.printable import printable

        # The id as typed, escaped: one pasted from elsewhere may hide a control.
        print(
            "no cleanup run yet" if not run_id else f"no run {printable(run_id)}", file=sys.stderr
        )
        return EXIT_FAILED
    started = dt.datetime.fromisoformat(state.started_at)
    elapsed = (dt.datetime.now(dt.UTC) - started).total_seconds()
    rules = [rule_status(progress, ledger, elapsed) for progress in state.rules]
    report = {
        "run_id": state.run_id,
        "status": state.status,
        "dry_run": state.dry_run,
        "started_at": state.started_at,
        "steps": state.steps,
        "rules": rules,
        "archived_ids": runs.contact_ids(state.run_id, "archived"),
        # Found, then gone before their archive (staff archived them meanwhile): not the run's.
        "gone_ids": runs.contact_ids(state.run_id, "gone"),
        "matched_ids": runs.contact_ids(state.run_id, "matched") if state.dry_run else {},
    }
    if state.dry_run:
        # A contact several rules match is each one's match in a dry run, but a run archives
        # it once (under the rule that reaches it first): the plan's figure is the distinct ids.
        report["would_archive"] = len({i for ids in report["matched_ids"].values() for i in ids})
    if as_json:
        print(json.dumps(report, indent=2))
        return _verdict(rules, final)
    from cliniko_automations.common.printable import counted, printable

    mode = "dry run" if state.dry_run else "archiving"
    print(f"run {state.run_id} ({mode}) {state.status}, started {state.started_at}, "
          f"{state.steps} steps")  # fmt: skip
    for rule in rules:
        eta = "" if rule["eta_seconds"] is None else f" ETA {rule['eta_seconds'] // 60} min"
        print(
            f"  {rule['rule']:<28} {progress_bar(rule['asked'], rule['total'])} "
            f"{rule['phase']:<8} matched {rule['matched']} archived {rule['archived']} "
            + (f"gone {rule['gone']} " if rule["gone"] else "")
            + f"failed {rule['failed']}{eta}"
            + (f" ({printable(rule['error'])})" if rule["error"] else "")
        )
    if state.dry_run:
        print(f"  would archive {counted(report['would_archive'], 'contact')} (one that several "
              "rules match is counted under each rule above)")  # fmt: skip
    return _verdict(rules, final)


def _verdict(rules: list[dict[str, Any]], final: bool) -> int:
    """EXIT_FAILED when a rule stopped short: the run did not do what it was asked."""
    from cliniko_automations.common.printable import printable

    stopped = [rule for rule in rules if rule["phase"] == "stopped"]
    for rule in stopped if final else []:
        print(
            f"cleanup.py: rule {rule['rule']} stopped: {printable(rule['error'])}", file=sys.stderr
        )
    return EXIT_FAILED if stopped else EXIT_OK


def main(argv: Sequence[str] | None = None) -> int:
    from cliniko_automations.common.operator_cli import parsed_arguments, run_tool

    args = parsed_arguments("cleanup.py", parser(), argv)
    return run_tool("cleanup.py", lambda: command(args))


def execution_ended(execution_arn: str) -> str | None:
    """The status of an execution that is no longer running (None while it runs)."""
    status = str(_boto("stepfunctions").describe_execution(executionArn=execution_arn)["status"])
    return None if status == "RUNNING" else status


def command(args: argparse.Namespace) -> int:
    tables: tuple[Any, Any, str] | None = None
    execution_arn: str | None = None
    if args.command in ("plan", "run"):
        dry_run = args.command == "plan" or not args.archive
        try:
            payload = start_input(args.rules, dry_run)
        except BadRules as error:
            from cliniko_automations.common.printable import printable

            # It quotes the names as typed: escaped, as a pasted one may hide a control.
            print(f"cleanup.py: {printable(error)}", file=sys.stderr)
            return EXIT_USAGE
        if args.local:
            return run_locally(payload, args.json)
        # A plan is only its counts: follow it to the end, on tables checked before it starts
        # (with a state machine to start: without, start_execution says which setting).
        follow = args.command == "plan" or args.follow
        if follow and os.environ.get("CLEANUP_STATE_MACHINE_ARN"):
            tables = _runs_and_ledger()
        code, execution_arn = start_execution(payload, follow)
        if code or execution_arn is None or not follow:
            return code
        code, args.run_id = run_of_execution(execution_arn)
        if code:
            return code
        args.watch = True
    runs, ledger, rule_set = tables or _runs_and_ledger()
    if args.command == "backfill-ledger":
        from cliniko_automations.common.printable import counted

        made_active = ledger.activate_unmarked()
        print(f"{counted(made_active, 'ledger entry', 'ledger entries')} made active")
        return EXIT_OK
    started_here = args.command in ("plan", "run")
    while True:
        # The execution before its run: one that has ended wrote its run's last state first.
        ended = execution_ended(execution_arn) if execution_arn else None
        state = runs.load(args.run_id or runs.latest(rule_set) or "")
        last = not args.watch or state is None or state.status != "running" or bool(ended)
        # A run started here answers with its last report alone in JSON, as with --local.
        if last or not (args.json and started_here):
            code = print_status(runs, ledger, rule_set, args.run_id, args.json, final=last)
        if last and state and state.status == "running":
            # Stopped from the console, or past its time: nothing will finish the run.
            print(
                f"cleanup.py: the execution ended ({ended}) while its run {state.run_id} was "
                "still running: nothing will finish it, and another run of the rule set is "
                "refused until its lock's lease ends (within the hour)",
                file=sys.stderr,
            )
            return EXIT_FAILED
        if last:
            # A run this command started and followed answers for its end; `status` for itself.
            return EXIT_FAILED if started_here and state and state.status == "failed" else code
        time.sleep(10)


if __name__ == "__main__":
    sys.exit(main())
