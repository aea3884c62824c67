"""The worker's logger and metrics, and the line and metric each processed submission gets."""

from __future__ import annotations

from typing import Any

from aws_lambda_powertools import Metrics
from aws_lambda_powertools.metrics import MetricUnit

from cliniko_automations.common.logs import function_logger

logger = function_logger("intake")
metrics = Metrics(service="intake")

# Every outcome of a submission processed has its count, so the dashboard's outcomes add up
# to the submissions accepted (less those still queued, dropped or dead-lettered).
METRIC_FOR_ACTION = {
    "created": "ContactCreated",
    "updated": "ContactUpdated",
    "unchanged": "ContactUnchanged",
    "parked": "SubmissionParked",
}


def report_outcome(outcome: dict[str, Any]) -> None:
    action = outcome.get("action")
    replayed = bool(outcome.get("replayed"))
    if not replayed and action in METRIC_FOR_ACTION:
        metrics.add_metric(name=METRIC_FOR_ACTION[action], unit=MetricUnit.Count, value=1)
    logger.info(
        "submission processed",
        extra={
            "action": action,
            "contact_id": outcome.get("contact_id"),
            "reason": outcome.get("reason"),
            "recovered": outcome.get("recovered"),
            "replayed": replayed,
            "fields": outcome.get("fields"),
        },
    )


def report_dropped(submission_id: str, reason: str) -> dict[str, Any]:
    """A submission with nothing left to do (its body gone, its person erased): the outcome."""
    metrics.add_metric(name="SubmissionDropped", unit=MetricUnit.Count, value=1)
    logger.warning("submission dropped", extra={"submission_id": submission_id, "reason": reason})
    return {"action": "dropped", "submission_id": submission_id, "reason": reason}
