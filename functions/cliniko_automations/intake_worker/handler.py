"""SQS-triggered Lambda: each queued submission through the intake worker, partial failures.

Thin on purpose, like Powertools' SQS batch example: per record, load the submission
(messages.py: dropped when its body or its person is gone), run the idempotent core
(runtime.py), book what did not complete (retries.py) and report the outcome (telemetry.py).
Done (created, updated, unchanged, parked): SQS deletes the message, and the stored body is
deleted too unless parked (it waits on the parked queue for a person, replayed by id).
"""

from __future__ import annotations

import time
from typing import Any

from aws_lambda_powertools.utilities.batch import (
    BatchProcessor,
    EventType,
    process_partial_response,
)
from aws_lambda_powertools.utilities.batch.types import PartialItemFailureResponse
from aws_lambda_powertools.utilities.data_classes.sqs_event import SQSRecord
from aws_lambda_powertools.utilities.idempotency.exceptions import (
    IdempotencyAlreadyInProgressError,
)
from aws_lambda_powertools.utilities.typing import LambdaContext

from cliniko_automations.common.import_collector import import_finished
from cliniko_automations.common.secrets import prefetch_secrets
from cliniko_automations.intake_worker.messages import (
    Loaded,
    drop_erased,
    forget_body,
    load_submission,
)
from cliniko_automations.intake_worker.retries import (
    count_throttled,
    diagnose_misconfigured,
    keep_body,
    receive_count,
    reject,
    retry,
)
from cliniko_automations.intake_worker.runtime import Parked, Runtime, key_secrets, runtime
from cliniko_automations.intake_worker.telemetry import logger, metrics, report_outcome
from cliniko_automations.intake_worker.worker import (
    ClinikoBusy,
    Erased,
    Misconfigured,
    Rejected,
    RetryLater,
)

# The accounts whose Cliniko failed this batch (5xx, 429, no answer in time), with a 429's
# reset: their other records are handed back at once, with their backoff and not before that
# reset, so that one clinic's outage does not spend the invocation every other clinic's
# records wait on (and, handed back unattempted five times, dead-letter them). A reset the
# invocation has the time to wait out is waited out instead (`_wait_out`), after the batch's
# other records (`_OtherClinicsFirst`).
_stalled: dict[str, float | None] = {}
# The time each account's records have taken this batch, in Cliniko mostly: once one account's
# have taken a record's allowance (MIN_REMAINING_SECONDS), its other records wait until the
# other accounts' are done (`_OtherClinicsFirst`).
_taken: dict[str, float] = {}


class _HeldBack(Exception):
    """A record of an account under a 429's hold the invocation can wait out, met in the
    batch's first round: it is tried in the second, once the other records are done."""


def _can_wait_out(rt: Runtime, not_before: float | None) -> bool:
    """Whether a rate-limit hold's end (`not_before`, UNIX seconds) leaves the invocation its
    MIN_REMAINING_SECONDS for a record after it. A hold without a known end (5xx, no answer)
    is not waited out."""
    remaining = rt.remaining_seconds()
    if not_before is None or remaining is None:
        return False
    return not_before - time.time() <= remaining - rt.settings.min_remaining_seconds


def _wait_out(rt: Runtime, not_before: float | None) -> bool:
    """Sleep until a rate-limit hold's end when the invocation has the time (`_can_wait_out`);
    whether it did.

    Handed back instead, the record and the rest of its batch would fail at once, and so would
    every batch the event source takes next while the hold lasts (with ReportBatchItemFailures
    it does not slow its polling for failed records): each 429 would cost every message of a
    backlog one of its five receives. Waiting here keeps the batches in hand and the backlog
    unreceived in the queue.
    """
    if not _can_wait_out(rt, not_before):
        return False
    assert not_before is not None  # _can_wait_out says so
    wait = not_before - time.time()
    if wait > 0:
        logger.info("waiting out Cliniko's rate-limit hold", extra={"wait_seconds": round(wait, 1)})
        time.sleep(wait)
    return True


class _OtherClinicsFirst(BatchProcessor):
    """Powertools' SQS batch processor, in two rounds. The first takes the records in order
    but sets aside (`_HeldBack`) those of an account in trouble: under a 429's hold the
    invocation can wait out, or whose records have taken a record's allowance of it
    (MIN_REMAINING_SECONDS: its Cliniko answers slowly). The second takes them in order,
    waiting each hold out, handing back what it has no time for. Taken where they were met,
    the hold (65 s at most deployed) held every record behind it, other clinics' too, and a
    slow clinic's records spent the invocation and other clinics' records were handed back
    untried (`invocation_deadline`, a receive each). The held records still wait within the
    invocation, so a backlog stays unreceived (`_wait_out`), and the other records' work
    shortens the wait."""

    first_round = False

    def process(self) -> list[tuple[Any, ...]]:
        self._held_back: list[dict[str, Any]] = []
        _OtherClinicsFirst.first_round = True
        try:
            results = [self._process_record(record) for record in self.records]
        finally:
            _OtherClinicsFirst.first_round = False
        return results + [self._process_record(record) for record in self._held_back]

    def failure_handler(self, record: Any, exception: Any) -> Any:
        if isinstance(exception[1], _HeldBack):
            self._held_back.append(record.raw_event)
            return ("held_back", str(exception[1]), record)
        return super().failure_handler(record, exception)


def _handle(rt: Runtime, loaded: Loaded) -> dict[str, Any]:
    """The idempotent core, once more after waiting out a rate-limit hold that met the first
    attempt. Safe as a retry through the queue is: the first attempt's idempotency record is
    released as it fails, and a create Cliniko refused with a 429 made nothing. A claim kept on
    purpose (after a create whose answer was lost, for its settling time) is kept: the second
    attempt finds it busy and the record is handed back, as it would have been."""
    try:
        return rt.handle(submission=loaded.submission, erased=lambda: loaded.erased(rt))
    except ClinikoBusy as busy:
        if _OtherClinicsFirst.first_round and _can_wait_out(rt, busy.not_before):
            # Waited out after the batch's other records, with the account's others in it.
            _stalled[loaded.submission.account] = busy.not_before
            count_throttled()
            raise _HeldBack("rate_limit_hold") from None
        if not _wait_out(rt, busy.not_before):
            raise
        # Counted as a hand-back counts it: waited out, a 429 still delays the batch.
        count_throttled()
    return rt.handle(submission=loaded.submission, erased=lambda: loaded.erased(rt))


def record_handler(record: SQSRecord) -> dict[str, Any]:
    rt = runtime()
    # Keys stay for the whole batch: the previous record's source and submission id must not
    # label this one.
    logger.remove_keys(["source"])
    logger.set_correlation_id(None)
    logger.append_keys(message_id=record.message_id, receive_count=receive_count(record))
    loaded = load_submission(rt, record)
    if not isinstance(loaded, Loaded):
        return loaded  # dropped or rejected: the message ends here
    submission = loaded.submission
    if submission.account in _stalled:
        # A 429's reset holds for the account's other records too: sooner is refused again.
        not_before = _stalled[submission.account]
        if _OtherClinicsFirst.first_round and _can_wait_out(rt, not_before):
            raise _HeldBack("rate_limit_hold")
        if not _wait_out(rt, not_before):
            failure = RetryLater("account_unavailable", not_before=not_before)
            retry(rt, record, submission, failure)
            raise failure
        del _stalled[submission.account]
    if (
        _OtherClinicsFirst.first_round
        and _taken.get(submission.account, 0.0) >= rt.settings.min_remaining_seconds
    ):
        raise _HeldBack("slow_account")
    remaining = rt.remaining_seconds()
    if remaining is not None and remaining < rt.settings.min_remaining_seconds:
        # Too little time left to finish this one (Cliniko's waits can take a while): hand
        # it back at once rather than be killed mid-way, which would fail the whole batch.
        failure = RetryLater("invocation_deadline")
        retry(rt, record, submission, failure, backoff_base=0)
        raise failure
    began = time.monotonic()
    try:
        outcome: dict[str, Any] = _handle(rt, loaded)
    except Parked as parked:
        outcome = parked.outcome
    except Erased:
        return drop_erased(rt, submission)
    except Misconfigured as exc:
        problem = diagnose_misconfigured(rt, submission, exc)
        return reject(rt, record, submission, problem.reason, problem)
    except Rejected as exc:
        return reject(rt, record, submission, exc.reason)
    except IdempotencyAlreadyInProgressError:
        failure = RetryLater("in_progress")
        retry(rt, record, submission, failure)
        raise failure from None
    except _HeldBack:
        raise  # tried again in the batch's second round: nothing to book
    except Exception as exc:
        if isinstance(exc, ClinikoBusy):
            _stalled[submission.account] = exc.not_before
        retry(rt, record, submission, exc)
        raise
    finally:
        _taken[submission.account] = _taken.get(submission.account, 0.0) + (
            time.monotonic() - began
        )
    report_outcome(outcome)
    if outcome.get("action") == "parked":
        keep_body(rt, submission)
    else:
        forget_body(rt, submission)
    return outcome


# log_event=False whatever POWERTOOLS_LOGGER_LOG_EVENT says: an event holds personal data.
@logger.inject_lambda_context(clear_state=True, log_event=False)
@metrics.log_metrics
def lambda_handler(event: dict[str, Any], context: LambdaContext) -> PartialItemFailureResponse:
    rt = runtime()
    # Lets Powertools expire an INPROGRESS record when this invocation would have timed
    # out, so a crashed attempt does not block its retry for the record's whole lifetime.
    rt.idempotency.register_lambda_context(context)
    _stalled.clear()
    _taken.clear()
    # One processor per invocation: it keeps per-batch state. A batch whose records all
    # failed is still answered with their ids, not an error: each failure was booked (reason,
    # backoff) and the function itself did not fail.
    processor = _OtherClinicsFirst(event_type=EventType.SQS, raise_on_entire_batch_failure=False)
    return process_partial_response(
        event=event, record_handler=record_handler, processor=processor, context=context
    )


# The API keys' reads start now, during Lambda's init, and overlap the first call's work.
prefetch_secrets(key_secrets)

# Last: the import is over (common/import_collector.py).
import_finished()
