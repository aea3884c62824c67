"""The worker's wiring: its adapters and the idempotent core, built once per container.

`handle(submission=...)` is `IntakeWorker.process` wrapped in Powertools idempotency keyed on
`Submission.idempotency_key` (never the raw SQS record, whose ids and receipt handles change
on every delivery; the record stores the outcome, which holds ids and field names only).
A parked outcome leaves as the `Parked` exception, so that its record is dropped rather than
saved: the replay of a parked submission (within the idempotency window or after it) is
looked up afresh, updated or created once the duplicates are gone, parked again while they
remain.
"""

from __future__ import annotations

import functools
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from aws_lambda_powertools.utilities.idempotency import (
    DynamoDBPersistenceLayer,
    IdempotencyConfig,
    idempotent_function,
)
from aws_lambda_powertools.utilities.idempotency.exceptions import (
    IdempotencyPersistenceLayerError,
)

from cliniko_automations.cliniko import errors
from cliniko_automations.cliniko.errors import ConfigurationError
from cliniko_automations.common import aws
from cliniko_automations.common.accounts import ClinikoAccounts, load_accounts
from cliniko_automations.common.cliniko_accounts import (
    client_for_secret,
    key_replaced,
    time_left_after,
)
from cliniko_automations.common.idempotency_records import RetriesRecognised
from cliniko_automations.common.ledger import DynamoLedger
from cliniko_automations.common.secrets import SecretMisconfigured
from cliniko_automations.common.submission_store import DynamoSubmissionStore
from cliniko_automations.intake.submission import Submission
from cliniko_automations.intake_worker.parking import SqsParking
from cliniko_automations.intake_worker.queues import SqsQueues
from cliniko_automations.intake_worker.settings import WorkerSettings
from cliniko_automations.intake_worker.store import DynamoClaims, DynamoFailures, DynamoIntents
from cliniko_automations.intake_worker.worker import (
    IntakeWorker,
    Misconfigured,
    Rejected,
    RetryLater,
    SubmissionFailure,
)

# Powertools idempotency records are named after this, not after the Lambda function, so a
# redeployed or renamed function still recognises submissions it already handled.
IDEMPOTENCY_KEY_PREFIX = "intake-worker"


@dataclass(frozen=True)
class Runtime:
    settings: WorkerSettings
    idempotency: IdempotencyConfig
    handle: Callable[..., dict[str, Any]]
    failures: DynamoFailures
    queues: SqsQueues
    store: DynamoSubmissionStore
    intents: DynamoIntents

    def remaining_seconds(self) -> float | None:
        """Time left in the invocation (None outside Lambda)."""
        return remaining_seconds(self.idempotency)


class Parked(Exception):
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


def remaining_seconds(config: IdempotencyConfig) -> float | None:
    context = config.lambda_context
    return context.get_remaining_time_in_millis() / 1000 if context else None


def _mark_replayed(response: dict[str, Any], idempotent_data: Any) -> dict[str, Any]:
    # Called by Powertools when the answer comes from a completed record: a redelivery,
    # which must not count as a second ContactCreated.
    return {**response, "replayed": True}


@functools.lru_cache(maxsize=8)
def accounts(path: str | None) -> ClinikoAccounts:
    return load_accounts(path)


@functools.lru_cache(maxsize=4)
def _runtime(settings: WorkerSettings) -> Runtime:
    # FAIL_FAST: a stalled table or queue is the record's own failure (handed back, the
    # batch going on) within the invocation, where one call on botocore's defaults waited up
    # to 240 s, past the 120 s timeout that then failed the whole batch.
    dynamodb = aws.client("dynamodb", config=aws.FAIL_FAST)
    sqs = aws.ClientOnFirstUse("sqs", aws.FAIL_FAST)
    config = IdempotencyConfig(
        event_key_jmespath="idempotency_key",
        raise_on_no_idempotency_key=True,
        expires_after_seconds=settings.idempotency_ttl_seconds,
        response_hook=_mark_replayed,
    )
    intents = DynamoIntents(dynamodb, settings.idempotency_table)
    worker = IntakeWorker(
        claims=DynamoClaims(
            dynamodb,
            settings.idempotency_table,
            ttl_seconds=settings.claim_ttl_seconds,
            wait_seconds=settings.claim_wait_seconds,
            remaining_seconds=lambda: remaining_seconds(config),
        ),
        intents=intents,
        ledger=DynamoLedger(dynamodb, settings.ledger_table),
        parking=SqsParking(sqs, settings.parked_queue_url),
        now=lambda: now(),  # looked up at each call, so tests can move the clock
        lost_create_settles_seconds=settings.lost_create_settles_seconds,
        created_search_settles_seconds=settings.created_search_settles_seconds,
    )
    persistence = DynamoDBPersistenceLayer(
        table_name=settings.idempotency_table, boto3_client=RetriesRecognised(dynamodb)
    )

    @idempotent_function(  # type: ignore[untyped-decorator]  # Powertools: it returns Any
        data_keyword_argument="submission",
        persistence_store=persistence,
        config=config,
        key_prefix=IDEMPOTENCY_KEY_PREFIX,
    )
    def handle(*, submission: Submission, erased: Callable[[], bool]) -> dict[str, Any]:
        secret = accounts(settings.cliniko_accounts_file).key_secret(submission.account)
        if secret is None:
            raise Rejected("unknown_account")
        try:
            client = client_for_secret(
                secret,
                secrets_prefix=settings.secrets_prefix,
                settings=settings.cliniko,
                time_left=time_left_after(
                    lambda: remaining_seconds(config), settings.reserve_seconds
                ),
            )
        except (ConfigurationError, SecretMisconfigured) as exc:
            raise Misconfigured("misconfigured", exc) from None
        try:
            outcome = worker.process(submission, client, erased).as_dict()
        except Misconfigured as exc:
            if isinstance(exc.error, errors.Unauthorized | errors.Forbidden) and key_replaced(
                secret, client.key_id, secrets_prefix=settings.secrets_prefix
            ):
                # The key was refused, but the secret holds another one now (rotated within
                # the cache's five minutes, the old key archived): the next delivery uses it.
                raise RetryLater(errors.KEY_ROTATED) from None
            raise
        if outcome["action"] == "parked":
            raise Parked(outcome)
        return outcome

    def handle_decided(*, submission: Submission, erased: Callable[[], bool]) -> dict[str, Any]:
        """`handle`, its attempt's own outcome kept when Powertools then failed to release
        the record: a parked, refused or erased submission, or one to retry not before a
        time, went on as a plain failure (`IdempotencyPersistenceLayerError`), parked twice,
        sent to Cliniko again instead of the dead-letter queue, or retried into a 429. The
        record then stays in progress until its lease ends, as a killed attempt's does."""
        try:
            answer: dict[str, Any] = handle(submission=submission, erased=erased)
        except IdempotencyPersistenceLayerError as error:
            attempt = error.__cause__.__context__ if error.__cause__ else None
            if isinstance(attempt, Parked | SubmissionFailure):
                raise attempt from None
            raise
        return answer

    return Runtime(
        settings=settings,
        idempotency=config,
        handle=handle_decided,
        failures=DynamoFailures(dynamodb, settings.idempotency_table),
        queues=SqsQueues(sqs, dead_letter_queue_url=settings.dead_letter_queue_url),
        store=DynamoSubmissionStore(dynamodb, settings.submission_table),
        intents=intents,
    )


def runtime() -> Runtime:
    return _runtime(WorkerSettings.from_env())


def key_secrets() -> list[str]:
    """Every account's API key secret: a message may be for any of them."""
    settings = WorkerSettings.from_env()
    return [name for _, name in accounts(settings.cliniko_accounts_file).secret_references()]
