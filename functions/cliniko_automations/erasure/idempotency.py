"""Each erasure request answered once, on Powertools' idempotency (DynamoDB persistence).

The idempotency key is the request id. The payload validated against it is the request's
identity (contact id, the email's keyed hash, dry run: workflow.request_identity), so the
same id with another identity is refused, and the email itself never reaches the table.

- A completed outcome is stored and answered again to every repeat (for EXPIRES_AFTER; after
  that the audit trail answers, see workflow.py).
- A failed attempt, or one stopped for confirmation (SeveralMatches), stores nothing: it
  leaves the idempotent function as an exception, on which Powertools deletes the record, so
  the same id may be sent again to retry or to confirm.
- While an attempt runs, a duplicate gets RequestInProgress. An attempt cut short (the
  Lambda's timeout, a killed CLI) holds the id until the time it had left has passed: the
  Lambda context's remaining time, or LOCAL_LEASE outside Lambda.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from datetime import timedelta
from typing import Any, cast

from aws_lambda_powertools.utilities.idempotency import (
    DynamoDBPersistenceLayer,
    IdempotencyConfig,
    idempotent_function,
)
from aws_lambda_powertools.utilities.idempotency.exceptions import (
    IdempotencyAlreadyInProgressError,
    IdempotencyValidationError,
)
from aws_lambda_powertools.utilities.idempotency.serialization.custom_dict import (
    CustomDictSerializer,
)
from aws_lambda_powertools.utilities.typing import LambdaContext

from cliniko_automations.common import aws
from cliniko_automations.common.idempotency_records import RetriesRecognised
from cliniko_automations.common.plain_data import as_data, from_data
from cliniko_automations.erasure.errors import RequestIdConflict, RequestInProgress
from cliniko_automations.erasure.models import Outcome

# The records are named after this, not after the Lambda function (a renamed or redeployed
# function still knows its requests), and the function's IAM policy is limited to keys that
# start with it (template.yaml: dynamodb:LeadingKeys).
KEY_PREFIX = "erasure-request"
# The account only when the request names one: a request stored before requests could keeps
# the payload hash it was stored with.
IDENTITY = (
    "account && [contact_id, email_hmac, dry_run, account] || [contact_id, email_hmac, dry_run]"
)
EXPIRES_AFTER = timedelta(days=30)
# Longer than a CLI run is expected to take.
LOCAL_LEASE = timedelta(minutes=2)


class Lease:
    """The time an attempt has, where no Lambda context gives it (the CLI). The only part of
    a context Powertools reads: when an attempt still marked in progress was cut short."""

    def __init__(self, duration: timedelta) -> None:
        self._remaining_ms = int(duration.total_seconds() * 1000)

    def get_remaining_time_in_millis(self) -> int:
        return self._remaining_ms


class _Unfinished(Exception):
    """Carries an outcome that must not be stored (failed) out of the idempotent function."""

    def __init__(self, outcome: Outcome) -> None:
        super().__init__(outcome.status)
        self.outcome = outcome


def _completed_or_raise(*, identity: dict[str, Any], attempt: Callable[[], Outcome]) -> Outcome:
    outcome = attempt()
    if outcome.status != "completed":
        raise _Unfinished(outcome)
    return outcome


class PowertoolsOnce:
    """The workflow's OncePerRequest port on a DynamoDB table in Powertools' layout."""

    def __init__(
        self,
        table_name: str,
        *,
        context: LambdaContext | Lease | None = None,
        dynamodb: Any = None,
    ) -> None:
        config = IdempotencyConfig(
            event_key_jmespath="request_id",
            payload_validation_jmespath=IDENTITY,
            raise_on_no_idempotency_key=True,
            expires_after_seconds=int(EXPIRES_AFTER.total_seconds()),
        )
        config.register_lambda_context(cast(LambdaContext, context or Lease(LOCAL_LEASE)))
        self._run = idempotent_function(
            data_keyword_argument="identity",
            persistence_store=DynamoDBPersistenceLayer(
                table_name=table_name,
                boto3_client=RetriesRecognised(
                    dynamodb
                    if dynamodb is not None
                    else aws.client("dynamodb", config=aws.FAIL_FAST)
                ),
            ),
            config=config,
            output_serializer=CustomDictSerializer(
                to_dict=as_data, from_dict=lambda data: from_data(Outcome, data)
            ),
            key_prefix=KEY_PREFIX,
        )(_completed_or_raise)

    def __call__(self, identity: Mapping[str, Any], attempt: Callable[[], Outcome]) -> Outcome:
        request_id = str(identity["request_id"])
        try:
            outcome: Outcome = self._run(identity=dict(identity), attempt=attempt)
        except _Unfinished as unfinished:
            return unfinished.outcome
        except IdempotencyValidationError:
            raise RequestIdConflict(request_id) from None
        except IdempotencyAlreadyInProgressError:
            raise RequestInProgress(request_id) from None
        return outcome
