"""SQS-triggered Lambda: each queued submission through the intake worker, partial failures.

Thin on purpose: it parses the message (a submission id: the claim check), loads the body
from the submission store, drops a submission whose body is gone (erased, or expired) or
whose person was erased after making it (the tombstone), wraps the core
(`IntakeWorker.process`) in Powertools idempotency keyed on `Submission.idempotency_key`
(never the raw SQS record, whose ids and receipt handles change on every delivery; the
record stores the outcome, which holds ids and field names only), and turns the outcome
into metrics, logs and a batch item result:

- done (created, updated, unchanged, parked): the message is deleted by SQS, and the stored
  body too unless parked. A parked submission is done here but not complete: it waits on
  the parked queue for a person to merge the duplicates and replay it (by id), so its
  idempotency record is dropped rather than saved, and the replay (within the idempotency
  window or after it) is looked up afresh: updated or created once the duplicates are
  gone, parked again while they remain;
- dropped (`submission_body_gone`, `erased`): metric `SubmissionDropped` and a log line with
  the submission id and reason; the message is deleted;
- `RetryLater` (Cliniko 429/5xx, a busy claim, an unknown create outcome, an attempt of the
  same submission still in progress): the message fails, its visibility is raised to an
  exponential backoff by receive count, and its reason is stored by message id; after five
  receives SQS's redrive moves it to the dead-letter queue, where `scripts/dead_letters.py`
  shows that reason;
- `Rejected` (Cliniko 422, malformed message, unknown account): sent to the dead-letter queue
  at once with its reason and deleted: retrying would only fail again;
- `Misconfigured` (Cliniko refused the key, 401/403; the key's secret missing, empty, denied
  or outside SECRETS_PREFIX; a User-Agent or other client setting the runtime refuses): the
  same, plus one log line naming the setting and the fix, the `Misconfigured` metric (alarmed)
  and the fix as the dead letter's `fix` attribute. Replay once the deployment is fixed.
"""

from __future__ import annotations

import functools
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import boto3
from aws_lambda_powertools import Metrics
from aws_lambda_powertools.metrics import MetricUnit
from aws_lambda_powertools.utilities.batch import (
    BatchProcessor,
    EventType,
    process_partial_response,
)
from aws_lambda_powertools.utilities.data_classes.sqs_event import SQSRecord
from aws_lambda_powertools.utilities.idempotency import (
    DynamoDBPersistenceLayer,
    IdempotencyConfig,
    idempotent_function,
)
from aws_lambda_powertools.utilities.idempotency.exceptions import (
    IdempotencyAlreadyInProgressError,
)
from aws_lambda_powertools.utilities.typing import LambdaContext
from pydantic import ValidationError

from cliniko_automations.cliniko.errors import ConfigurationError
from cliniko_automations.common.accounts import ClinikoAccounts, key_secret_setting, load_accounts
from cliniko_automations.common.cliniko_accounts import client_for_secret
from cliniko_automations.common.ledger import DynamoLedger
from cliniko_automations.common.logs import function_logger
from cliniko_automations.common.misconfiguration import Misconfiguration, diagnose, report
from cliniko_automations.common.secrets import SecretMisconfigured
from cliniko_automations.common.submission_store import DynamoSubmissionStore
from cliniko_automations.intake.submission import QueuedSubmission, Submission
from cliniko_automations.intake_worker.parking import SqsParking, SqsQueues
from cliniko_automations.intake_worker.settings import WorkerSettings
from cliniko_automations.intake_worker.store import (
    DynamoClaims,
    DynamoFailures,
    DynamoIntents,
    FailureRecord,
)
from cliniko_automations.intake_worker.worker import (
    IntakeWorker,
    Misconfigured,
    Rejected,
    RetryLater,
    SubmissionFailure,
)

logger = function_logger("intake")
metrics = Metrics(service="intake")

# Powertools idempotency records are named after this, not after the Lambda function, so a
# redeployed or renamed function still recognises submissions it already handled.
IDEMPOTENCY_KEY_PREFIX = "intake-worker"

METRIC_FOR_ACTION = {
    "created": "ContactCreated",
    "updated": "ContactUpdated",
    "parked": "SubmissionParked",
}


@dataclass(frozen=True)
class Runtime:
    settings: WorkerSettings
    idempotency: IdempotencyConfig
    handle: Callable[..., dict[str, Any]]
    failures: DynamoFailures
    queues: SqsQueues
    store: DynamoSubmissionStore


class _Parked(Exception):
    """Raised out of the idempotent function with a parked outcome: Powertools deletes the
    submission's record on an exception, so a replay of the parked message is processed
    again instead of being answered "parked" from the record."""

    def __init__(self, outcome: dict[str, Any]) -> None:
        super().__init__("parked")
        self.outcome = outcome


def now() -> datetime:
    """The worker's clock, which Cliniko's `created_at` is compared with (a module function
    so that tests replaying a message days later move it with the emulator's)."""
    return datetime.now(UTC)


def _mark_replayed(response: dict[str, Any], _record: Any) -> dict[str, Any]:
    # Called by Powertools when the answer comes from a completed record: a redelivery,
    # which must not count as a second ContactCreated.
    return {**response, "replayed": True}


@functools.lru_cache(maxsize=8)
def _accounts(path: str | None) -> ClinikoAccounts:
    return load_accounts(path)


@functools.lru_cache(maxsize=4)
def _runtime(settings: WorkerSettings) -> Runtime:
    dynamodb = boto3.client("dynamodb")
    sqs = boto3.client("sqs")
    config = IdempotencyConfig(
        event_key_jmespath="idempotency_key",
        raise_on_no_idempotency_key=True,
        expires_after_seconds=settings.idempotency_ttl_seconds,
        response_hook=_mark_replayed,
    )

    def remaining_seconds() -> float | None:
        context = config.lambda_context
        return context.get_remaining_time_in_millis() / 1000 if context else None

    worker = IntakeWorker(
        claims=DynamoClaims(
            dynamodb,
            settings.idempotency_table,
            ttl_seconds=settings.claim_ttl_seconds,
            wait_seconds=settings.claim_wait_seconds,
            remaining_seconds=remaining_seconds,
        ),
        intents=DynamoIntents(dynamodb, settings.idempotency_table),
        ledger=DynamoLedger(dynamodb, settings.ledger_table),
        parking=SqsParking(sqs, settings.parked_queue_url),
        now=lambda: now(),  # looked up at each call, so tests can move the clock
    )
    persistence = DynamoDBPersistenceLayer(
        table_name=settings.idempotency_table, boto3_client=dynamodb
    )

    @idempotent_function(
        data_keyword_argument="submission",
        persistence_store=persistence,
        config=config,
        key_prefix=IDEMPOTENCY_KEY_PREFIX,
    )
    def handle(*, submission: Submission) -> dict[str, Any]:
        secret = _accounts(settings.cliniko_accounts_file).key_secret(submission.account)
        if secret is None:
            raise Rejected("unknown_account")
        try:
            client = client_for_secret(secret, secrets_prefix=settings.secrets_prefix)
        except (ConfigurationError, SecretMisconfigured) as exc:
            raise Misconfigured("misconfigured", exc) from None
        outcome = worker.process(submission, client).as_dict()
        if outcome["action"] == "parked":
            raise _Parked(outcome)
        return outcome

    return Runtime(
        settings=settings,
        idempotency=config,
        handle=handle,
        failures=DynamoFailures(dynamodb, settings.idempotency_table),
        queues=SqsQueues(sqs, dead_letter_queue_url=settings.dead_letter_queue_url),
        store=DynamoSubmissionStore(dynamodb, settings.submission_table),
    )


def runtime() -> Runtime:
    return _runtime(WorkerSettings.from_env())


def _remaining_seconds(rt: Runtime) -> float | None:
    context = rt.idempotency.lambda_context
    return context.get_remaining_time_in_millis() / 1000 if context else None


def _receive_count(record: SQSRecord) -> int:
    try:
        return int(record.attributes.approximate_receive_count or 1)
    except (TypeError, ValueError):
        return 1


def _retry(
    rt: Runtime,
    record: SQSRecord,
    submission: Submission | None,
    exc: Exception,
    *,
    backoff_base: int | None = None,
) -> None:
    """Book a failed attempt: reason by message id, metric, backoff. The caller re-raises."""
    reason = getattr(exc, "reason", None) or f"unexpected_error:{type(exc).__name__}"
    receives = _receive_count(record)
    if getattr(exc, "throttled", False):
        metrics.add_metric(name="ClinikoThrottled", unit=MetricUnit.Count, value=1)
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
        retry_in = rt.queues.back_off(
            record.event_source_arn,
            record.receipt_handle,
            receives,
            rt.settings.retry_base_seconds if backoff_base is None else backoff_base,
            rt.settings.retry_max_seconds,
        )
    except Exception as book_exc:  # the retry itself must still happen
        logger.warning(
            "could not book the failed attempt", extra={"error": type(book_exc).__name__}
        )
    logger.warning(
        "submission attempt failed",
        extra={"reason": reason, "receive_count": receives, "retry_in_seconds": retry_in},
    )


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
        "receive_count": str(_receive_count(record)),
    }
    message_id = rt.queues.dead_letter(record.event_source_arn, record.body, attributes)
    rt.failures.record(
        FailureRecord(
            message_id=message_id,
            reason=reason,
            submission_id=attributes["submission_id"],
            source=attributes["source"],
            receive_count=_receive_count(record),
            failed_at=datetime.now(UTC).isoformat(),
        )
    )
    if problem is not None:
        report(problem, logger=logger, metrics=metrics, action="dead_lettered")
    else:
        logger.error("submission dead-lettered", extra={"reason": reason})
    return {"action": "dead_lettered", "reason": reason}


def _reject(
    rt: Runtime,
    record: SQSRecord,
    submission: Submission | None,
    reason: str,
    problem: Misconfiguration | None = None,
) -> dict[str, Any]:
    try:
        return _dead_letter(rt, record, submission, reason, problem)
    except Exception:
        if problem is not None:
            report(problem, logger=logger, metrics=metrics, action="retried")
        # The dead-letter queue refused (a missing permission, an outage): fall back on the
        # queue's own redrive, with the reason booked so the dead letter still explains itself.
        failure = Rejected(reason)
        _retry(rt, record, submission, failure)
        raise failure from None


def _drop(submission_id: str, reason: str) -> dict[str, Any]:
    metrics.add_metric(name="SubmissionDropped", unit=MetricUnit.Count, value=1)
    logger.warning("submission dropped", extra={"submission_id": submission_id, "reason": reason})
    return {"action": "dropped", "submission_id": submission_id, "reason": reason}


def _malformed(exc: ValidationError, what: str) -> None:
    # Only where and what kind: pydantic's own message would quote the input.
    logger.error(
        what,
        extra={"errors": [(".".join(map(str, e["loc"])), e["type"]) for e in exc.errors()]},
    )


def _load(rt: Runtime, record: SQSRecord) -> Submission | dict[str, Any]:
    """The queued submission's body from the store, or the outcome that ends the message."""
    try:
        queued = QueuedSubmission.model_validate_json(record.body)
    except ValidationError as exc:
        _malformed(exc, "malformed submission message")
        logger.set_correlation_id(None)
        return _reject(rt, record, None, "malformed_message")
    logger.set_correlation_id(queued.submission_id)
    logger.append_keys(source=queued.source)
    try:
        stored = rt.store.get(queued.submission_id)
    except Exception as exc:  # the store is unreachable: try again later
        _retry(rt, record, None, exc)
        raise
    if stored is None:
        # Erased, or kept past the store's TTL: nothing left to process.
        return _drop(queued.submission_id, "submission_body_gone")
    try:
        submission = Submission.model_validate_json(stored.body)
    except ValidationError as exc:
        _malformed(exc, "malformed stored submission")
        return _reject(rt, record, None, "malformed_submission")
    try:
        erased_at = rt.store.erased_at(stored.email_hmac) if stored.email_hmac else None
        if erased_at is not None and submission.made_at <= erased_at:
            # Made before its person was erased (a retry, a replay, a provider's redelivery):
            # processing it would bring them back.
            rt.store.delete(submission.submission_id)
            return _drop(submission.submission_id, "erased")
    except Exception as exc:
        _retry(rt, record, submission, exc)
        raise
    return submission


def _forget_body(rt: Runtime, submission: Submission) -> None:
    # Done with it: its values need not wait for the store's TTL. A failure here costs only
    # that wait, so it does not fail the message.
    try:
        rt.store.delete(submission.submission_id)
    except Exception as exc:
        logger.warning("stored body not deleted", extra={"error": type(exc).__name__})


def record_handler(record: SQSRecord) -> dict[str, Any]:
    rt = runtime()
    logger.append_keys(message_id=record.message_id, receive_count=_receive_count(record))
    loaded = _load(rt, record)
    if isinstance(loaded, dict):
        return loaded
    submission = loaded
    remaining = _remaining_seconds(rt)
    if remaining is not None and remaining < rt.settings.min_remaining_seconds:
        # Too little time left to finish this one (Cliniko's waits can take a while): hand
        # it back at once rather than be killed mid-way, which would fail the whole batch.
        failure = RetryLater("invocation_deadline")
        _retry(rt, record, submission, failure, backoff_base=0)
        raise failure
    try:
        outcome: dict[str, Any] = rt.handle(submission=submission)
    except _Parked as parked:
        outcome = parked.outcome
    except Misconfigured as exc:
        problem = _diagnose(rt, submission, exc)
        return _reject(rt, record, submission, problem.reason, problem)
    except Rejected as exc:
        return _reject(rt, record, submission, exc.reason)
    except IdempotencyAlreadyInProgressError:
        failure = RetryLater("in_progress")
        _retry(rt, record, submission, failure)
        raise failure from None
    except SubmissionFailure as exc:
        _retry(rt, record, submission, exc)
        raise
    except Exception as exc:
        _retry(rt, record, submission, exc)
        raise
    _report(outcome)
    if outcome.get("action") != "parked":
        _forget_body(rt, submission)
    return outcome


def _diagnose(rt: Runtime, submission: Submission, failure: Misconfigured) -> Misconfiguration:
    """What the operator must fix, naming the account's secret and where the file names it."""
    secret = _accounts(rt.settings.cliniko_accounts_file).key_secret(submission.account)
    where = key_secret_setting(submission.account)
    problem = diagnose(failure.error, secret=secret, where=where)
    return problem or Misconfiguration(failure.reason, where, str(failure), "see the error")


def _report(outcome: dict[str, Any]) -> None:
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


@logger.inject_lambda_context(clear_state=True)
@metrics.log_metrics
def lambda_handler(event: dict[str, Any], context: LambdaContext) -> dict[str, Any]:
    rt = runtime()
    # Lets Powertools expire an INPROGRESS record when this invocation would have timed
    # out, so a crashed attempt does not block its retry for the record's whole lifetime.
    rt.idempotency.register_lambda_context(context)
    # One processor per invocation: it keeps per-batch state. A batch whose records all
    # failed is still answered with their ids, not an error: each failure was booked (reason,
    # backoff) and the function itself did not fail.
    processor = BatchProcessor(event_type=EventType.SQS, raise_on_entire_batch_failure=False)
    return process_partial_response(
        event=event, record_handler=record_handler, processor=processor, context=context
    )
