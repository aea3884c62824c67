"""The cleanup state machine's events to the step function, parsed (InvalidEvent otherwise).

- `{"action": "begin", "execution": ARN, "dry_run": bool?, "rules": [names]?, "run_id"?}`:
  start a run (or, with `run_id`, carry on a run in a new execution: continue-as-new);
- `{"action": "step", "run_id", "iterations"}`: one bounded step;
- `{"action": "release", "run_id"}`: the run failed; mark it so and free the lock.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any


class InvalidEvent(ValueError):
    pass


@dataclass(frozen=True)
class Begin:
    execution: str
    # Set when an execution carries on a run (continue-as-new): the run keeps its options.
    run_id: str | None = None
    dry_run: bool | None = None
    rules: list[str] | None = None


@dataclass(frozen=True)
class Step:
    run_id: str
    iterations: int
    # The execution taking the step (the state machine's $$.Execution.Id): a run's lock goes
    # on only for the execution holding it. None from an older definition: any execution.
    execution: str | None = None


@dataclass(frozen=True)
class Release:
    run_id: str
    # The execution whose step kept failing: a run another execution holds goes on. None from
    # an older definition.
    execution: str | None = None


def parse_event(event: Any) -> Begin | Step | Release:
    if not isinstance(event, dict):
        raise InvalidEvent("the event must be a JSON object")
    action = event.get("action")
    if action == "begin":
        execution = _text(event, "execution")
        if event.get("run_id") is not None:
            return Begin(execution, run_id=_text(event, "run_id"))
        return Begin(execution, dry_run=_dry_run(event), rules=_rule_names(event))
    if action == "step":
        run_id = _text(event, "run_id")
        iterations = event.get("iterations", 0)
        if isinstance(iterations, bool) or not isinstance(iterations, int) or iterations < 0:
            raise InvalidEvent("iterations must be a whole number")
        step_execution = _text(event, "execution") if "execution" in event else None
        return Step(run_id, iterations, step_execution)
    if action == "release":
        release_execution = _text(event, "execution") if "execution" in event else None
        return Release(_text(event, "run_id"), release_execution)
    raise InvalidEvent("action must be begin, step or release")


def _text(event: dict[str, Any], name: str) -> str:
    value = event.get(name)
    if not isinstance(value, str) or not value:
        raise InvalidEvent(f"{name} must be a non-empty string")
    return value


def _dry_run(event: dict[str, Any]) -> bool | None:
    dry_run = event.get("dry_run")
    if dry_run is not None and not isinstance(dry_run, bool):
        raise InvalidEvent("dry_run must be true or false")
    return dry_run


def _rule_names(event: dict[str, Any]) -> list[str] | None:
    names = event.get("rules")
    if names is not None and (
        not isinstance(names, list) or not names or not all(isinstance(n, str) for n in names)
    ):
        raise InvalidEvent("rules must be a non-empty list of rule names")
    return names
