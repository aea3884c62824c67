"""The cleanup's logger and metrics: counts per step, and the fix for a misconfiguration.
Rule names, counts and ids only."""

from __future__ import annotations

from aws_lambda_powertools import Metrics
from aws_lambda_powertools.metrics import MetricUnit

from cliniko_automations.cleanup.core import RunState
from cliniko_automations.common.logs import function_logger
from cliniko_automations.common.misconfiguration import report_account_key

logger = function_logger("cleanup")
metrics = Metrics(service="cleanup")

Counts = dict[str, tuple[int, int, int, bool]]


def counts(state: RunState) -> Counts:
    """Each rule's (matched, archived, failed, stopped) so far: a step reports what it added."""
    return {p.rule: (p.matched, p.archived, p.failed, p.stopped) for p in state.rules}


def report_step(state: RunState, before: Counts) -> None:
    stopped = 0
    for progress in state.rules:
        matched, archived, failed, was_stopped = before[progress.rule]
        if progress.stopped and not was_stopped:
            # A run with a stopped rule still finishes (the state machine succeeds): this
            # count, alarmed, is how a rule that stops on every scheduled run gets noticed.
            stopped += 1
            logger.warning(
                "cleanup rule stopped", extra={"rule": progress.rule, "error": progress.error}
            )
        metrics.add_metric(
            name="CleanupMatched", unit=MetricUnit.Count, value=progress.matched - matched
        )
        metrics.add_metric(
            name="CleanupArchived", unit=MetricUnit.Count, value=progress.archived - archived
        )
        metrics.add_metric(
            name="CleanupFailed", unit=MetricUnit.Count, value=progress.failed - failed
        )
    metrics.add_metric(name="CleanupStopped", unit=MetricUnit.Count, value=stopped)
    pending = sum(1 for progress in state.rules if progress.phase != "done")
    metrics.add_metric(name="CleanupIncomplete", unit=MetricUnit.Count, value=pending)


def report_misconfigured(error: Exception, account: str, secret: str) -> None:
    report_account_key(error, account, secret, logger=logger, metrics=metrics)
