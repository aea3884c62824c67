"""The cleanup state machine's loop, run locally. This is NOT Step Functions and does not read
the state machine's definition: it is the few lines of control flow that definition encodes
(template.yaml, `CleanupStateMachine`), calling the same step function the same way:

    begin -> (refused: stop) -> step -> step ... -> done
                                  "wait": sleep wait_seconds, then step
                                  "continue": begin again with the run's id (continue-as-new)
    a step that raises is retried after a pause, 60 s and then twice as long (the definition's
    Retry on States.ALL); past that, the run is released ("release") and the error raised
    (the definition's Catch -> Release -> Fail)
    a begin that raises is retried as well, after a pause (the definition's Retry of Begin);
    past that, a continue-as-new's begin hands the run back (BeginFailed -> HandBack)

`invoke(event) -> answer` is how a step runs: in this process (the local run's
FunctionRuntime.invoke), or in a subprocess that a benchmark kills at random points.
"""

from __future__ import annotations

import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

# As in the definition's Retry of the Step and Begin states on States.ALL.
STEP_RETRIES = 3
STEP_RETRY_SECONDS = 60
BEGIN_RETRIES = 3
BEGIN_RETRY_SECONDS = 10


@dataclass
class LoopResult:
    status: str  # "finished", "refused" (another run holds the lock), "stopped"
    run_id: str | None
    executions: list[str] = field(default_factory=list)
    steps: int = 0
    failed_steps: int = 0
    waits: int = 0
    last: dict[str, Any] = field(default_factory=dict)


def execution_arn(name: str | None = None, state_machine: str = "local-cleanup") -> str:
    name = name or uuid.uuid4().hex
    return f"arn:aws:states:local:000000000000:execution:{state_machine}:{name}"


def run_loop(
    invoke: Callable[[dict[str, Any]], Any],
    start_input: dict[str, Any] | None = None,
    *,
    sleep: Callable[[float], None] = time.sleep,
    step_retries: int = STEP_RETRIES,
    step_retry_seconds: float = STEP_RETRY_SECONDS,
    on_step: Callable[[dict[str, Any]], None] | None = None,
    on_retry: Callable[[float], None] | None = None,
) -> LoopResult:
    """`on_retry(seconds)` is told of each pause before a failed step is repeated."""
    start = {"dry_run": None, "rules": None, "run_id": None, **(start_input or {})}
    result = LoopResult(status="refused", run_id=None)
    execution = execution_arn()
    result.executions.append(execution)
    try:
        answer = _begin(invoke, {"action": "begin", "execution": execution, **start}, sleep)
    except KeyboardInterrupt:
        # Stopped by hand while the begin ran or paused to be repeated: it may have taken its
        # run, which its execution names, and the lock; left, every start was refused for an
        # hour. A begin that took neither (refused) has no run to release. Imported here: the
        # step's modules are imported by the caller, with their logs pointed where it chose.
        from cliniko_automations.cleanup.actions import run_id_of

        invoke({"action": "release", "run_id": run_id_of(execution), "execution": execution})
        raise
    result.last = answer
    if answer.get("next") != "step":
        # As the definition: "refused" ends the execution quietly, anything else fails it.
        result.status = "refused" if answer.get("next") == "refused" else "stopped"
        return result
    run_id, iterations = answer["run_id"], answer["iterations"]
    result.run_id = run_id
    failures = 0
    try:
        while True:
            try:
                answer = invoke(
                    {
                        "action": "step",
                        "run_id": run_id,
                        "iterations": iterations,
                        "execution": execution,
                    }
                )
            except Exception:
                result.failed_steps += 1
                failures += 1
                if failures > step_retries:
                    invoke({"action": "release", "run_id": run_id, "execution": execution})
                    result.status = "stopped"
                    raise
                # A step resumes from its checkpoint; repeated at once, a hiccup of a few
                # seconds (a throttled table) spent every retry and stopped the run.
                pause = step_retry_seconds * 2 ** (failures - 1)
                if on_retry is not None:
                    on_retry(pause)
                sleep(pause)
                continue
            failures = 0
            result.steps += 1
            result.last = answer
            if on_step is not None:
                on_step(answer)
            next_action = answer.get("next")
            iterations = answer.get("iterations", iterations)
            if next_action == "step":
                continue
            if next_action == "wait":
                result.waits += 1
                sleep(answer.get("wait_seconds", 0))
                continue
            if next_action == "continue":
                successor = execution_arn()
                result.executions.append(successor)
                try:
                    begun = _begin(
                        invoke,
                        {"action": "begin", "execution": successor, **start, "run_id": run_id},
                        sleep,
                    )
                except Exception:
                    # As the definition's HandBack: released as the execution that handed the
                    # run over, which still holds it.
                    invoke({"action": "release", "run_id": run_id, "execution": execution})
                    result.status = "stopped"
                    raise
                if begun.get("next") != "step":
                    result.status = "stopped"
                    return result
                execution, iterations = successor, begun["iterations"]
                continue
            result.status = "finished" if next_action == "done" else "stopped"
            return result
    except KeyboardInterrupt:
        # Stopped by hand (Ctrl-C), or ended (a `timeout`'s SIGTERM, a closed terminal's
        # SIGHUP, which `cleanup.py --local` raises as operator_cli.Ended, a KeyboardInterrupt):
        # the run is released, as a failed execution releases
        # it, or its lock would turn every other run of the rule set away for an hour. Named by
        # its run alone: the operator stops the run, whichever execution (a continue-as-new's
        # begin may have been cut short) holds it.
        invoke({"action": "release", "run_id": run_id})
        result.status = "stopped"
        raise


def _begin(
    invoke: Callable[[dict[str, Any]], Any],
    event: dict[str, Any],
    sleep: Callable[[float], None],
) -> Any:
    """A begin, repeated after a failure (safe: its execution names its run); the last
    attempt's error is raised."""
    for attempt in range(BEGIN_RETRIES):
        try:
            return invoke(event)
        except Exception:
            sleep(BEGIN_RETRY_SECONDS * 2**attempt)
    return invoke(event)
