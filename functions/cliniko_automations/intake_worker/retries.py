"""What becomes of a message whose attempt did not complete: booked retry or dead letter.

- `RetryLater` (Cliniko 429/5xx, a busy claim, an unknown create outcome, an attempt of the
  same submission still in progress) and anything unexpected: `retry` books the attempt (its
  reason stored by message id, its visibility raised to an exponential backoff by receive
  count) and the caller re-raises, so the message fails; after five receives SQS's redrive
  moves it to the dead-letter queue, where `scripts/dead_letters.py` shows that reason.
- `Rejected` (Cliniko 422, malformed message, unknown account): `reject` sends it to the
  dead-letter queue at once with its reason, and it is deleted: retrying would only fail
  again. If the dead-letter queue refuses, the queue's own redrive is the fallback.
- `Misconfigured` (Cliniko refused the key, 401/403; the key's secret missing, empty, denied
  or outside SECRETS_PREFIX; a User-Agent or other client setting the runtime refuses): the
  same, plus one log line naming the setting and the fix, the `Misconfigured` metric
  (alarmed) and the fix as the dead letter's `fix` attribute. Replay once the deployment is
  fixed.
"""

from __future__ import annotations

import time
from datetime import UTC, datetime
from typing import Any

from aws_lambda_powertools.metrics import MetricUnit
from aws_lambda_powertools.utilities.data_classes.sqs_event import SQSRecord

from cliniko_automations.common.accounts import key_secret_setting
from cliniko_automations.common.misconfiguration import Misconfiguration, diagnose, report
from cliniko_automations.intake.submission import Submission
from cliniko_automations.intake_worker.runtime import Runtime, accounts
from cliniko_automations.intake_worker.store import FailureRecord
from cliniko_automations.intake_worker.telemetry import logger, metrics
from cliniko_automations.intake_worker.worker import Misconfigured, Rejected


def receive_count(record: SQSRecord) -> int:
    try:
        return int(record.attributes.approximate_receive_count or 1)
    except (KeyError, TypeError, ValueError):  # absent (a hand-made event) or not a number
        return 1


def count_throttled() -> None:
    """One attempt Cliniko turned away (429, 5xx, no answer), handed back or waited out: the
    dashboard and ClinikoThrottledAlarm read it."""
    metrics.add_metric(name="ClinikoThrottled", unit=MetricUnit.Count, value=1)


def retry(
    rt: Runtime,
    record: SQSRecord,
    submission: Submission | None,
    exc: Exception,
    *,
    backoff_base: int | None = None,
) -> None:
    """Book a failed attempt: reason by message id, metric, backoff. The caller re-raises."""
    reason = getattr(exc, "reason", None) or f"unexpected_error:{type(exc).__name__}"
    receives = receive_count(record)
    if getattr(exc, "throttled", False):
        count_throttled()
    retry_in = None
    try:
        rt.failures.record(
            FailureRecord(
                message_id=record.message_id,
                reason=reason,
                submission_id=submission.submission_id if submission else None,
                source=submission.source if submission else None,
                receive_count=receives,
                failed_at=datetime.now(UTC).isoformat(),
            )
        )
        not_before = getattr(exc, "not_before", None)
        retry_in = rt.queues.back_off(
            record.event_source_arn,
            record.receipt_handle,
            receives,
            rt.settings.retry_base_seconds if backoff_base is None else backoff_base,
            rt.settings.retry_max_seconds,
            at_least=not_before - time.time() if not_before else 0.0,
        )
    except Exception as book_exc:  # the retry itself must still happen
        logger.warning(
            "could not book the failed attempt", extra={"error": type(book_exc).__name__}
        )
    if submission is not None:
        # Any failed attempt may be the one SQS's redrive moves to the dead-letter queue,
        # which keeps it 14 days from when it was queued: a parked message replayed by hand
        # late in its 14 days must not leave a letter whose body expires first.
        keep_body(rt, submission)
    logger.warning(
        "submission attempt failed",
        extra={"reason": reason, "receive_count": receives, "retry_in_seconds": retry_in},
    )


def keep_body(rt: Runtime, submission: Submission) -> None:
    # Sent to the parked or dead-letter queue again, for 14 more days: its replay must find
    # the body, and the intent of a create whose answer was lost (none: nothing is made), the
    # only record of when Cliniko may have made the contact. A failure here shortens that
    # wait only, so it does not fail the message.
    try:
        rt.store.keep(submission.submission_id)
    except Exception as exc:
        logger.warning("stored body's expiry not extended", extra={"error": type(exc).__name__})
    try:
        rt.intents.keep(submission.idempotency_key)
    except Exception as exc:
        logger.warning("create intent's expiry not extended", extra={"error": type(exc).__name__})


def _dead_letter(
    rt: Runtime,
    record: SQSRecord,
    submission: Submission | None,
    reason: str,
    problem: Misconfiguration | None = None,
) -> dict[str, Any]:
    attributes = {
        "failure_reason": reason,
        "fix": problem.message if problem else None,
        "submission_id": submission.submission_id if submission else None,
        "source": submission.source if submission else None,
        "original_message_id": record.message_id,
        "receive_count": str(receive_count(record)),
    }
    message_id = rt.queues.dead_letter(record.event_source_arn, record.body, attributes)
    if submission is not None:
        keep_body(rt, submission)
    # The letter is sent and carries its reason: the failure record only adds its time, so a
    # failure to write it must not send the message round again (a second dead letter).
    try:
        rt.failures.record(
            FailureRecord(
                message_id=message_id,
                reason=reason,
                submission_id=attributes["submission_id"],
                source=attributes["source"],
                receive_count=receive_count(record),
                failed_at=datetime.now(UTC).isoformat(),
            )
        )
    except Exception as book_exc:
        logger.warning(
            "could not book the dead letter's failure", extra={"error": type(book_exc).__name__}
        )
    if problem is not None:
        report(problem, logger=logger, metrics=metrics, action="dead_lettered")
    else:
        logger.error("submission dead-lettered", extra={"reason": reason})
    return {"action": "dead_lettered", "reason": reason}


def reject(
    rt: Runtime,
    record: SQSRecord,
    submission: Submission | None,
    reason: str,
    problem: Misconfiguration | None = None,
) -> dict[str, Any]:
    """Dead-letter the message now with its reason (and fix); the outcome that ends it."""
    try:
        return _dead_letter(rt, record, submission, reason, problem)
    except Exception:
        if problem is not None:
            report(problem, logger=logger, metrics=metrics, action="retried")
        # The dead-letter queue refused (a missing permission, an outage): fall back on the
        # queue's own redrive, with the reason booked so the dead letter still explains itself.
        failure = Rejected(reason)
        retry(rt, record, submission, failure)
        raise failure from None


def diagnose_misconfigured(
    rt: Runtime, submission: Submission, failure: Misconfigured
) -> Misconfiguration:
    """What the operator must fix, naming the account's secret and where the file names it."""
    secret = accounts(rt.settings.cliniko_accounts_file).key_secret(submission.account)
    where = key_secret_setting(submission.account)
    problem = diagnose(failure.error, secret=secret, where=where)
    return problem or Misconfiguration(failure.reason, where, str(failure), "see the error")
