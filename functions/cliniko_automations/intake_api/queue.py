"""The submission queue (SQS): the only place the API side touches it.

Claim check: the body goes to the submission store (with the keyed hashes of its email, or
of its name and phones, for erasure), the queue gets the submission id and source only; past
the source's hourly ceiling, the parked queue gets them instead. A submission is accepted once
SendMessage returns; if the store or SQS cannot take it, the caller answers 503 so the
provider delivers again (nothing is half-accepted: a stored body nobody queued expires).
"""

from __future__ import annotations

import contextlib
import dataclasses

from botocore.client import BaseClient
from botocore.exceptions import BotoCoreError, ClientError

from cliniko_automations.common import aws
from cliniko_automations.common.person_keys import PersonKeys
from cliniko_automations.common.submission_store import DynamoSubmissionStore
from cliniko_automations.intake.submission import QueuedSubmission, Submission
from cliniko_automations.intake_api.accept import HELD_OVER_CEILING
from cliniko_automations.intake_api.errors import ServiceUnavailable


# Fail fast: a provider is waiting (Tally gives 10 s), the function's timeout is 10 s, and a
# Lambda timeout would reach the sender as API Gateway's 500. A 503 makes the provider retry.
# Not cached here: `aws.client` keeps the process's one client for each.
def _sqs() -> BaseClient:
    return aws.client("sqs", config=aws.FAIL_FAST)


def _dynamodb() -> BaseClient:
    return aws.client("dynamodb", config=aws.FAIL_FAST)


class SubmissionQueue:
    def __init__(
        self,
        queue_url: str,
        submission_table: str,
        client: BaseClient | None = None,
        dynamodb: BaseClient | None = None,
        parked_queue_url: str | None = None,
    ) -> None:
        self.queue_url = queue_url
        self.parked_queue_url = parked_queue_url
        self._table = submission_table
        self._client = client
        self._dynamodb = dynamodb

    def send(
        self, submission: Submission, keys: PersonKeys, *, hourly_ceiling: int = 0
    ) -> str | None:
        """Store the body, queue its id; returns why it was held instead, None when the
        worker has it.

        `keys` are the keyed hashes of the submission's email, name and phones
        (common/person_keys), the store's indexes: an erasure finds this body by them.
        `hourly_ceiling`: how many of its source's submissions the worker is sent in a UTC
        hour (0: no ceiling; none without `parked_queue_url`). Past it the submission is held:
        its id goes to the parked queue, as the worker parks one (`intake_worker/parking.py`'s
        attributes), for staff to replay or delete. A flood of valid-looking posts (a form's
        URL is in its page, a webhook's may leak) is held there rather than made a contact
        each in Cliniko, the user's budget spent on them for hours after.
        """
        store = DynamoSubmissionStore(self._dynamodb or _dynamodb(), self._table)
        held = None
        counted = False
        try:
            first = store.first_received(submission.idempotency_key, submission.received_at)
            submission = dataclasses.replace(submission, first_received_at=first.at)
            if hourly_ceiling and self.parked_queue_url is not None:
                if first.at < submission.received_at:
                    # A copy of a submission already taken (a provider's retry, a captured
                    # delivery sent again): the worker makes one contact of them all, so it
                    # is not counted again (copies of one delivery filled the hour and held
                    # every real referral after them), and held where the first was held.
                    held = HELD_OVER_CEILING if first.held else None
                else:
                    counted = store.admit_to_hour(
                        submission.source, submission.received_at, hourly_ceiling
                    )
                    if not counted:
                        held = HELD_OVER_CEILING
                        store.mark_held(submission.idempotency_key)
            if held and store.erased_since(keys.tombstone_keys, submission.made_at):
                # Made before its person was erased (a provider's redelivery days later): the
                # worker drops such a one unstored at once, but held, the erased person's
                # body waited 16 days for staff. Answered as held all the same: the answer
                # tells a sender nothing of an erasure.
                return held
            store.put(submission.submission_id, submission.to_json(), keys)
        except ClientError as exc:
            raise _not_queued("submission_store", exc, store, submission, counted) from None
        except BotoCoreError as exc:
            # No answer (a timeout, no connection): asked again, a stalled store could hold
            # the function past its timeout, API Gateway's 500 in place of the 503. The
            # hour's count stays.
            raise _not_queued(
                "submission_store", exc, store, submission, counted, ask_store=False
            ) from None
        client = self._client or _sqs()
        attributes = {"reason": held} if held else {}
        try:
            client.send_message(
                QueueUrl=self.parked_queue_url if held else self.queue_url,
                MessageBody=QueuedSubmission.of(submission).to_json(),
                # The clinic as the tenant of an SQS fair queue (a standard queue whose
                # messages carry a group id): while one clinic's backlog (an import) drains
                # at its Cliniko budget's pace, SQS hands out the other clinics' submissions
                # first, instead of after the whole backlog. Unordered, unlike a FIFO group.
                MessageGroupId=submission.account,
                # Ids only, so dead letters can be listed without opening their bodies.
                MessageAttributes={
                    name: {"DataType": "String", "StringValue": value}
                    for name, value in {
                        **attributes,
                        "submission_id": submission.submission_id,
                        "source": submission.source,
                    }.items()
                    if value  # SQS refuses an empty attribute
                },
            )
        except (BotoCoreError, ClientError) as exc:
            raise _not_queued("queue", exc, store, submission, counted) from None
        return held


def _not_queued(
    dependency: str,
    exc: Exception,
    store: DynamoSubmissionStore,
    submission: Submission,
    counted: bool,
    *,
    ask_store: bool = True,
) -> ServiceUnavailable:
    """The 503 of a submission the worker was not sent. Counted into its source's hour, the
    count is given back (the store still answering, `ask_store`): its sender delivers it again
    and it is counted then. Kept, a provider's retries after an AWS hiccup each spent the
    source's hour. Best effort: a count not given back changes nothing of the 503."""
    error = ServiceUnavailable(dependency, type(exc).__name__)
    if not counted:
        return error
    error.hour_count = "kept"
    if ask_store:
        with contextlib.suppress(BotoCoreError, ClientError):
            store.leave_hour(submission.source, submission.received_at)
            error.hour_count = "given_back"
    return error
