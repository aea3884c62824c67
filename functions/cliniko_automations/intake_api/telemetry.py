"""The intake API's logger and metrics, and the line and metric each answer gets.

Logs carry source, provider, submission_id, outcome and field NAMES only; an unexpected
error's type and where it was raised, never its message (which could quote submitted values).
"""

from __future__ import annotations

import os
import traceback
from pathlib import Path
from typing import Any

from aws_lambda_powertools import Metrics
from aws_lambda_powertools.metrics import MetricUnit, single_metric

from cliniko_automations.common.logs import function_logger
from cliniko_automations.common.misconfiguration import Misconfiguration, report
from cliniko_automations.intake.config import FormSource
from cliniko_automations.intake.submission import Submission
from cliniko_automations.intake_api.accept import (
    SENDER_KEYED_PROVIDERS,
    Accepted,
    Dropped,
    Ignored,
)
from cliniko_automations.intake_api.errors import FieldsInvalid, IntakeError, ServiceUnavailable

logger = function_logger("intake")
# A namespace is required to flush metrics; without one the flush would raise after the answer
# was built and API Gateway would turn that into a 500. The template sets the same value.
metrics = Metrics(
    service="intake",
    namespace=os.environ.get("POWERTOOLS_METRICS_NAMESPACE") or "ClinikoAutomations",
)


def name_source(configured: FormSource | None) -> None:
    # The path is the sender's text until it names a configured source: log only known names.
    logger.append_keys(
        source=configured.name if configured else "(unknown)",
        provider=configured.provider if configured else None,
    )


def report_ignored(outcome: Ignored) -> None:
    logger.info(
        "Delivery acknowledged, not a submission",
        extra={"outcome": "ignored", "reason": outcome.why},
    )


def report_dropped(outcome: Dropped) -> None:
    count_rejected(outcome.why)
    logger.info("Submission dropped", extra={"outcome": "dropped", "reason": outcome.why})


def report_accepted(outcome: Accepted) -> None:
    submission = outcome.submission
    metrics.add_metric(name="SubmissionAccepted", unit=MetricUnit.Count, value=1)
    extra: dict[str, Any] = {
        "outcome": "accepted",
        "submission_id": submission.submission_id,
        "fields": sorted(submission.draft.cliniko_fields()),
        "keyed_by": _keyed_by(submission),
    }
    if outcome.left_out:
        # IntakeAnswersLeftOutAlarm: a label the source's `values` (or a country list) lacks.
        metrics.add_metric(name="AnswersLeftOut", unit=MetricUnit.Count, value=1)
        extra["left_out"] = list(outcome.left_out)
    if outcome.held:
        # IntakeHourlyCeilingAlarm: a flood, or a burst of real ones to replay by hand.
        metrics.add_metric(name="SubmissionHeld", unit=MetricUnit.Count, value=1)
        extra["held"] = outcome.held
    logger.info("Submission accepted", extra=extra)


def _keyed_by(submission: Submission) -> str:
    """What the submission's idempotency key stands on (accept.idempotency_key)."""
    if submission.idempotency_key.startswith(f"{submission.source}:sha256:"):
        return "content"
    return "sender_key" if submission.provider in SENDER_KEYED_PROVIDERS else "provider_id"


def report_refused(exc: IntakeError, problem: Misconfiguration | None) -> None:
    count_rejected(exc.reason)
    extra: dict[str, Any] = {"outcome": "rejected", "reason": exc.reason, "status": exc.status}
    if exc.detail:
        extra["detail"] = exc.detail
    if isinstance(exc, FieldsInvalid):
        extra["fields"] = sorted(exc.errors)
    if problem is not None:
        report(problem, logger=logger, metrics=metrics, **extra)
    elif isinstance(exc, ServiceUnavailable):
        extra |= {"dependency": exc.dependency, "error_type": exc.error_type}
        if exc.hour_count is not None:
            extra["hour_count"] = exc.hour_count
        logger.error("Submission not accepted: a dependency failed", extra=extra)
    else:
        logger.info("Submission refused", extra=extra)


def report_misconfigured(exc: Exception) -> None:
    # These messages name settings and config paths, never request content: log them whole.
    count_rejected("misconfigured")
    logger.error(
        "Deployment misconfigured",
        extra={"outcome": "error", "error_type": type(exc).__name__, "problem": str(exc)},
    )


def report_unexpected(exc: Exception) -> None:
    # The message may quote submitted values: log the type and the raising line only.
    # The deepest frame in our own code says most; a library frame if ours is not involved.
    frames = traceback.extract_tb(exc.__traceback__)
    ours = [frame for frame in frames if "cliniko_automations" in frame.filename]
    chosen = ours or list(frames)
    where = f"{Path(chosen[-1].filename).name}:{chosen[-1].lineno}" if chosen else None
    count_rejected("internal")
    logger.error(
        "Unexpected error",
        extra={"outcome": "error", "error_type": type(exc).__name__, "at": where},
    )


def count_rejected(reason: str) -> None:
    # One outcome per invocation, so the dimension only ever applies to this metric.
    metrics.add_dimension(name="reason", value=reason)
    metrics.add_metric(name="SubmissionRejected", unit=MetricUnit.Count, value=1)


def count_signature_checked(matched: bool) -> None:
    """`SignatureRefused`, 1 for a delivery refused by its source's signing secret or token, 0
    for one that matched it: FormSignatureRefusedAlarm reads its Minimum, 1 only for an hour in
    which every delivery checked was refused (a secret that no longer matches the provider's),
    never for an hour with one forged post among deliveries that matched."""
    # A metric of its own, dimensioned by service alone: a refusal's `reason` dimension, added
    # for SubmissionRejected, would make it another metric to CloudWatch than a match's.
    with single_metric(
        name="SignatureRefused",
        unit=MetricUnit.Count,
        value=0 if matched else 1,
        namespace=metrics.namespace,
        default_dimensions={"service": metrics.service},
    ):
        pass
