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

Counts = dict[str, tuple[int, int, int]]


def counts(state: RunState) -> Counts:
    """Each rule's (matched, archived, failed) so far: a step reports what it added."""
    return {p.rule: (p.matched, p.archived, p.failed) for p in state.rules}


def report_step(state: RunState, before: Counts) -> None:
    for progress in state.rules:
        matched, archived, failed = before[progress.rule]
        metrics.add_metric(
            name="CleanupMatched", unit=MetricUnit.Count, value=progress.matched - matched
        )
        metrics.add_metric(
            name="CleanupArchived", unit=MetricUnit.Count, value=progress.archived - archived
        )
        metrics.add_metric(
            name="CleanupFailed", unit=MetricUnit.Count, value=progress.failed - failed
        )
    pending = sum(1 for progress in state.rules if progress.phase != "done")
    metrics.add_metric(name="CleanupIncomplete", unit=MetricUnit.Count, value=pending)


def report_misconfigured(error: Exception, account: str, secret: str) -> None:
    report_account_key(error, account, secret, logger=logger, metrics=metrics)
