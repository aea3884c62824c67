"""The cleanup's logger and metrics: counts per step, and the fix for a misconfiguration.
Rule names, counts and ids only."""

from __future__ import annotations

from aws_lambda_powertools import Metrics
from aws_lambda_powertools.metrics import MetricUnit

from cliniko_automations.cleanup.core import RunState
from cliniko_automations.common.accounts import key_secret_setting
from cliniko_automations.common.logs import function_logger
from cliniko_automations.common.misconfiguration import diagnose, report

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
    problem = diagnose(error, secret=secret, where=key_secret_setting(account))
    if problem is not None:
        report(problem, logger=logger, metrics=metrics, account=account)
