"""The submission store (DynamoDB `SubmissionStoreTable`, pk `id`): where submitted values live.

The claim-check pattern: the intake's queues (submission, parked, dead-letter) carry only a
submission id and its source; the body, the one copy of what a person submitted, lives here,
encrypted with the stack's KMS key and expiring by itself (TTL). Each body is indexed by the
keyed hash (HMAC with the erasure pepper) of its email, so an erasure finds and deletes exactly
that person's bodies with one query, and a queued id whose body is gone is dropped.

Three kinds of item:
- `submission#<submission id>`: `body` (the Submission's JSON), `email_hmac` (index key;
  absent when the submission has no email), `expiration`.
- `tombstone#<email hmac>`: `erased_at`, the time of the latest erasure of that email. A
  submission for that email made before it is dropped wherever it comes from (a retry, a
  replay, a provider's redelivery). Hashes and times only.
- `first-seen#<sha256(idempotency key)>`: when the API first received a submission, for
  payloads without a submission time of their own: a redelivery days later is not new.

This module stores text and hashes; the intake parses bodies, the erasure never reads them.
"""

from __future__ import annotations

import hashlib
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from typing import Any

BODY_PREFIX = "submission#"
TOMBSTONE_PREFIX = "tombstone#"
FIRST_SEEN_PREFIX = "first-seen#"
EMAIL_INDEX = "by-email-hmac"
DAY = 24 * 3600
# The parked and dead-letter queues keep a message 14 days (SQS's maximum); a body outlives
# them by two days so an id still queued always finds its body until the queue drops it.
BODY_TTL_SECONDS = 16 * DAY
# Tombstones and first-seen times outlive every queued copy and a provider's retries (Typeform
# retries for hours, Tally for a day) with a week's margin.
TOMBSTONE_TTL_SECONDS = 21 * DAY


@dataclass(frozen=True)
class StoredSubmission:
    submission_id: str
    body: str
    email_hmac: str | None


class DynamoSubmissionStore:
    def __init__(self, client: Any, table: str, *, clock: Callable[[], float] = time.time):
        self._client = client
        self._table = table
        self._clock = clock

    def _expires(self, seconds: int) -> dict[str, str]:
        return {"N": str(int(self._clock()) + seconds)}

    # -- the intake API ---------------------------------------------------------------------

    def first_received(self, idempotency_key: str, now: datetime) -> datetime:
        """When a submission with this idempotency key first arrived (`now` if never before)."""
        key = hashlib.sha256(idempotency_key.encode("utf-8")).hexdigest()
        answer = self._client.update_item(
            TableName=self._table,
            Key={"id": {"S": FIRST_SEEN_PREFIX + key}},
            UpdateExpression="SET first_received_at = if_not_exists(first_received_at, :now), "
            "#exp = :exp",
            ExpressionAttributeNames={"#exp": "expiration"},
            ExpressionAttributeValues={
                ":now": {"S": now.isoformat()},
                ":exp": self._expires(TOMBSTONE_TTL_SECONDS),
            },
            ReturnValues="ALL_NEW",
        )
        return datetime.fromisoformat(answer["Attributes"]["first_received_at"]["S"])

    def put(self, submission_id: str, body: str, email_hmac: str | None) -> None:
        item: dict[str, Any] = {
            "id": {"S": BODY_PREFIX + submission_id},
            "body": {"S": body},
            "expiration": self._expires(BODY_TTL_SECONDS),
        }
        if email_hmac:
            item["email_hmac"] = {"S": email_hmac}
        self._client.put_item(TableName=self._table, Item=item)

    # -- the worker and the dead-letter tool ------------------------------------------------

    def get(self, submission_id: str) -> StoredSubmission | None:
        item = self._client.get_item(
            TableName=self._table,
            Key={"id": {"S": BODY_PREFIX + submission_id}},
            ConsistentRead=True,
        ).get("Item")
        # DynamoDB's TTL deletes lazily (within days): an expired body counts as gone.
        if not item or int(item["expiration"]["N"]) < self._clock():
            return None
        return StoredSubmission(
            submission_id, item["body"]["S"], item.get("email_hmac", {}).get("S")
        )

    def keep(self, submission_id: str) -> None:
        """Push a body's expiry back to BODY_TTL_SECONDS from now: its id was just sent to the
        parked or dead-letter queue again, in a message that queue keeps 14 days from now, and
        must find its body when replayed. A body already gone (erased, expired) stays gone."""
        try:
            self._client.update_item(
                TableName=self._table,
                Key={"id": {"S": BODY_PREFIX + submission_id}},
                UpdateExpression="SET #exp = :exp",
                ConditionExpression="attribute_exists(id) AND #exp >= :now",
                ExpressionAttributeNames={"#exp": "expiration"},
                ExpressionAttributeValues={
                    ":exp": self._expires(BODY_TTL_SECONDS),
                    ":now": {"N": str(int(self._clock()))},
                },
            )
        except self._client.exceptions.ConditionalCheckFailedException:
            return

    def delete(self, submission_id: str) -> None:
        self._client.delete_item(
            TableName=self._table, Key={"id": {"S": BODY_PREFIX + submission_id}}
        )

    def erased_at(self, email_hmac: str) -> datetime | None:
        item = self._client.get_item(
            TableName=self._table,
            Key={"id": {"S": TOMBSTONE_PREFIX + email_hmac}},
            ConsistentRead=True,
        ).get("Item")
        return datetime.fromisoformat(item["erased_at"]["S"]) if item else None

    # -- the erasure ------------------------------------------------------------------------

    def tombstone(self, email_hmac: str, erased_at: datetime) -> None:
        self._client.put_item(
            TableName=self._table,
            Item={
                "id": {"S": TOMBSTONE_PREFIX + email_hmac},
                "erased_at": {"S": erased_at.isoformat()},
                "expiration": self._expires(TOMBSTONE_TTL_SECONDS),
            },
        )

    def purge(self, email_hmac: str) -> list[str]:
        """Delete every body stored for this email hash; returns their submission ids."""
        ids: list[str] = []
        paginator = self._client.get_paginator("query")
        pages = paginator.paginate(
            TableName=self._table,
            IndexName=EMAIL_INDEX,
            KeyConditionExpression="email_hmac = :h",
            ExpressionAttributeValues={":h": {"S": email_hmac}},
            ProjectionExpression="id",
        )
        for page in pages:
            for item in page.get("Items", []):
                self._client.delete_item(TableName=self._table, Key={"id": item["id"]})
                ids.append(item["id"]["S"].removeprefix(BODY_PREFIX))
        return sorted(ids)
