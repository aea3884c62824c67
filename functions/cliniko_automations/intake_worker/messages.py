"""From an SQS record to the submission to process, or the outcome that ends its message.

The message is a claim check (the submission id); the body is loaded from the submission
store. A submission whose body is gone (erased, or expired), that another delivery of its id
already finished, or whose person was erased after making it (the tombstone) is dropped, not
processed.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from aws_lambda_powertools.utilities.data_classes.sqs_event import SQSRecord

from cliniko_automations.common.submission_store import DoneSubmission
from cliniko_automations.intake.submission import QueuedSubmission, Submission, SubmissionInvalid
from cliniko_automations.intake_worker.retries import reject, retry
from cliniko_automations.intake_worker.runtime import Runtime
from cliniko_automations.intake_worker.telemetry import logger, report_dropped


def _malformed(exc: SubmissionInvalid, what: str) -> None:
    logger.error(what, extra={"errors": exc.problems})


@dataclass(frozen=True)
class Loaded:
    """A queued submission, and the keys its person's erasure would leave a tombstone under."""

    submission: Submission
    tombstone_keys: tuple[str, ...]

    def erased(self, rt: Runtime) -> bool:
        """Whether its person was erased after it was made."""
        return rt.store.erased_since(self.tombstone_keys, self.submission.made_at)


def load_submission(rt: Runtime, record: SQSRecord) -> Loaded | dict[str, Any]:
    """The queued submission's body from the store, or the outcome that ends the message."""
    try:
        queued = QueuedSubmission.from_json(record.body)
    except SubmissionInvalid as exc:
        _malformed(exc, "malformed submission message")
        logger.set_correlation_id(None)
        return reject(rt, record, None, "malformed_message")
    logger.set_correlation_id(queued.submission_id)
    logger.append_keys(source=queued.source)
    try:
        stored = rt.store.get(queued.submission_id)
    except Exception as exc:  # the store is unreachable: try again later
        retry(rt, record, None, exc)
        raise
    if stored is None:
        # Erased, or kept past the store's TTL: nothing left to process.
        return report_dropped(queued.submission_id, "submission_body_gone")
    if isinstance(stored, DoneSubmission):
        # SQS delivers at least once: another delivery of this id went in.
        return report_dropped(queued.submission_id, "already_done")
    try:
        submission = Submission.from_json(stored.body)
    except SubmissionInvalid as exc:
        _malformed(exc, "malformed stored submission")
        return reject(rt, record, None, "malformed_submission")
    loaded = Loaded(submission, stored.keys.tombstone_keys)
    try:
        if loaded.erased(rt):
            # Made before its person was erased (a retry, a replay, a provider's redelivery):
            # processing it would bring them back.
            return drop_erased(rt, submission)
    except Exception as exc:
        retry(rt, record, submission, exc)
        raise
    return loaded


def drop_erased(rt: Runtime, submission: Submission) -> dict[str, Any]:
    rt.store.delete(submission.submission_id)
    return report_dropped(submission.submission_id, "erased")


def forget_body(rt: Runtime, submission: Submission) -> None:
    # Done with it: its values need not wait for the store's TTL. A failure here costs only
    # that wait, so it does not fail the message.
    try:
        rt.store.mark_done(submission.submission_id, datetime.now(UTC))
    except Exception as exc:
        logger.warning(
            "stored body not replaced by its done time", extra={"error": type(exc).__name__}
        )
