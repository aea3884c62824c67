"""What each of the state machine's events does: begin a run under the rule set's lock, take
one bounded step of it, or release it after a failure."""

from __future__ import annotations

import datetime as dt
import uuid
from typing import Any

from aws_lambda_powertools.utilities.typing import LambdaContext

from cliniko_automations.cleanup.core import RuleProgress, RunState
from cliniko_automations.cleanup.events import Begin, Release, Step
from cliniko_automations.cleanup.telemetry import counts, logger, report_step
from cliniko_automations.cleanup.wiring import Cleanup, cleanup_step


def begin(event: Begin, cleanup: Cleanup) -> dict[str, Any]:
    if event.run_id is None:
        return _start(event, cleanup)
    # Continue-as-new: the same run in a fresh execution.
    runs, rule_set, run_id = cleanup.runs, cleanup.rule_set, event.run_id
    state = runs.load(run_id)
    # A finished or failed run is over: continuing it would only hold the lock.
    if (
        state is None
        or state.status != "running"
        or not runs.acquire(rule_set, run_id, event.execution)
    ):
        logger.warning("cleanup run cannot continue", extra={"run_id": run_id})
        return {"run_id": run_id, "next": "refused"}
    return {"run_id": run_id, "iterations": 0, "next": "step"}


def _start(event: Begin, cleanup: Cleanup) -> dict[str, Any]:
    """A new run under the rule set's lock; a retried start finds the run it began."""
    runs, rule_set = cleanup.runs, cleanup.rule_set
    rules = cleanup.rules.selected(event.rules)
    dry_run = cleanup.settings.cleanup_dry_run if event.dry_run is None else event.dry_run
    run_id = run_id_of(event.execution)
    if not runs.acquire(rule_set, run_id, event.execution):
        holder = runs.holder(rule_set) or {}
        logger.info(
            "cleanup already running; start refused", extra={"holder": holder.get("run_id")}
        )
        return {"next": "refused", "running": holder.get("run_id")}
    state = RunState(
        run_id=run_id,
        dry_run=dry_run,
        started_at=dt.datetime.now(dt.UTC).isoformat(timespec="seconds"),
        rules=[RuleProgress.start(rule) for rule in rules],
    )
    try:
        # Written only if new: a run already there is this execution's own.
        begun = None if runs.create(rule_set, state) else runs.load(run_id)
    except Exception:
        # No run to step or to release: the lock would turn every start away for an hour.
        # (A retry of this begin takes it again and finds the run if it was written.)
        runs.release(rule_set, run_id, event.execution)
        raise
    if begun is not None:
        # This execution's begin ran before and its answer was lost (Step Functions retried
        # it): the run it started goes on, once.
        if begun.status != "running":
            runs.release(rule_set, run_id, event.execution)
            return {"run_id": run_id, "next": "refused"}
        return {"run_id": run_id, "iterations": 0, "next": "step", "dry_run": begun.dry_run}
    logger.info("cleanup run started", extra={"run_id": run_id, "dry_run": dry_run})
    return {"run_id": run_id, "iterations": 0, "next": "step", "dry_run": dry_run}


def run_id_of(execution: str) -> str:
    """The run an execution begins: the same for each attempt of its begin, so a begin retried
    after its answer was lost finds its own run (and lock) instead of being refused by them."""
    return uuid.uuid5(uuid.NAMESPACE_URL, execution).hex


def step(event: Step, cleanup: Cleanup, context: LambdaContext) -> dict[str, Any]:
    run_id, runs = event.run_id, cleanup.runs
    logger.append_keys(run_id=run_id)
    state = runs.load(run_id)
    if state is None:
        return {"error": "no such run", "run_id": run_id, "next": "invalid"}
    if state.status != "running":  # a retried last step whose answer was lost, or failed
        runs.release(cleanup.rule_set, run_id)  # if it still holds the lock, it is done with it
        return {"run_id": run_id, "iterations": event.iterations, "next": "done"}
    if not runs.renew(cleanup.rule_set, run_id, event.execution):
        logger.warning("cleanup run no longer holds the lock; stopping")
        return {"run_id": run_id, "next": "refused"}
    margin_ms = cleanup.settings.stop_margin_seconds * 1000
    bounded = cleanup_step(
        cleanup,
        out_of_time=lambda: context.get_remaining_time_in_millis() < margin_ms,
        remaining_seconds=lambda: context.get_remaining_time_in_millis() / 1000,
    )
    before = counts(state)
    outcome = bounded.run(state)
    iterations = event.iterations + 1
    next_action: str = outcome.next
    if outcome.next == "done":
        runs.release(cleanup.rule_set, run_id)
    elif iterations >= cleanup.settings.steps_per_execution:
        next_action = "continue"
    report_step(state, before)
    answer = {
        "run_id": run_id,
        "iterations": iterations,
        "next": next_action,
        "wait_seconds": outcome.wait_seconds,
        "dry_run": state.dry_run,
        "matched": sum(p.matched for p in state.rules),
        "archived": sum(p.archived for p in state.rules),
        "failed": sum(p.failed for p in state.rules),
    }
    logger.info("cleanup step finished", extra=answer)
    return answer


def release(event: Release, cleanup: Cleanup) -> dict[str, Any]:
    """End a run whose step kept failing: mark it failed and give up its lock. Only a running
    run, and not one another execution took on (a continue-as-new, a start retried): a late
    or replayed release must not end a live run, nor turn a finished one into a failure."""
    runs, run_id = cleanup.runs, event.run_id
    if event.execution is not None and runs.held_elsewhere(
        cleanup.rule_set, run_id, event.execution
    ):
        logger.warning("cleanup run goes on in another execution; release refused")
        return {"run_id": run_id, "next": "refused"}
    if runs.load(run_id) is None:
        return {"error": "no such run", "run_id": run_id, "next": "invalid"}
    failed = runs.mark_failed(run_id)
    runs.release(cleanup.rule_set, run_id, event.execution)
    if failed:
        logger.warning("cleanup run failed; lock released", extra={"run_id": run_id})
    else:
        logger.info("cleanup run was already over; released", extra={"run_id": run_id})
    return {"run_id": run_id, "next": "done"}
