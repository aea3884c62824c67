"""The cleanup's Lambda step, invoked by the cleanup state machine (template.yaml,
`CleanupStateMachine`) or by the local run's loop, one action per invocation (events.py):

- `begin` takes the rule set's lock and starts a run (or carries one on in a new execution).
  Answers `{"run_id", "next": "step"}`, or `{"next": "refused"}` while another run holds the
  lock (a second start is refused, never doubled).
- `step` runs one bounded step (`core.CleanupStep`). Answers `{"run_id", "iterations",
  "next": "step" | "wait" | "continue" | "done", "wait_seconds", ...counts}`; "continue" once
  `iterations` reaches STEPS_PER_EXECUTION, so the execution hands over to a new one before
  Step Functions' history limit.
- `release`: the run failed; mark it so and free the lock.

An event the function cannot act on gets `{"error": message, "next": "invalid"}` (the
execution fails). Dry run unless the event or CLEANUP_DRY_RUN says otherwise.
"""

from __future__ import annotations

from typing import Any

from aws_lambda_powertools.utilities.typing import LambdaContext

from cliniko_automations.cleanup import actions
from cliniko_automations.cleanup.events import Begin, Release, parse_event
from cliniko_automations.cleanup.settings import CleanupSettings
from cliniko_automations.cleanup.telemetry import logger, metrics
from cliniko_automations.cleanup.wiring import cleanup_for
from cliniko_automations.common.import_collector import import_finished


# log_event=False whatever POWERTOOLS_LOGGER_LOG_EVENT says: an event holds personal data.
@logger.inject_lambda_context(clear_state=True, log_event=False)
@metrics.log_metrics
def lambda_handler(event: Any, context: LambdaContext) -> dict[str, Any]:
    cleanup = cleanup_for(CleanupSettings.from_env())
    try:
        action = parse_event(event)
        if isinstance(action, Begin):
            return actions.begin(action, cleanup)
        if isinstance(action, Release):
            return actions.release(action, cleanup)
    except ValueError as error:  # an unknown rule name too
        logger.warning("cleanup invocation refused", extra={"problem": str(error)})
        return {"error": str(error), "next": "invalid"}
    return actions.step(action, cleanup, context)


# Last: the import is over (common/import_collector.py).
import_finished()
