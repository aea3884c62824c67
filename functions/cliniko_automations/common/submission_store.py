"""The submission store (DynamoDB `SubmissionStoreTable`, pk `id`): where submitted values live.

The claim-check pattern: the intake's queues (submission, parked, dead-letter) carry only a
submission id and its source; the body, the one copy of what a person submitted, lives here,
encrypted with the stack's KMS key and expiring by itself (TTL). Each body is indexed by the
keyed hashes (HMAC with the erasure pepper, common/person_keys) of its email, or without one
of its name, so an erasure finds and deletes exactly that person's bodies with a query each,
and a queued id whose body is gone is dropped.

Four kinds of item:
- `submission#<submission id>`: `body` (the Submission's JSON), `email_hmac` (index key;
  absent when the submission has no email), `name_hmac` (index key) and `name_phone` (its
  name-and-phone hashes, person_keys.submission_keys; both only on a submission without an
  email that has a first and last name and a phone), `expiration`. Once the worker is done
  with it, only `done_at` and `expiration` (`mark_done`): SQS delivers at least once, and a
  second delivery of the id (one dead-lettered while the first held it, say) reads as done,
  not as a body lost.
- `tombstone#<key>`: `erased_at`, the time of the latest erasure of that email (or that name
  and phone). A submission of that person made before it is dropped wherever it comes from
  (a retry, a replay, a provider's redelivery). Hashes and times only. An erasure writes
  the request's email's first, fenced against the intake worker's claims (`fence`).
- `first-seen#<sha256(idempotency key)>`: when the API first received a submission, for
  payloads without a submission time of their own: a redelivery days later is not new; and
  `held` once the API held it past its source's hourly ceiling, so a copy is held too.
- `source-hour#<source>#<UTC hour>`: `queued`, how many of that source's submissions the API
  sent to the worker in that hour (its hourly ceiling, `admit_to_hour`). A count only.

This module stores text and hashes; the intake parses bodies, the erasure never reads them.
"""

from __future__ import annotations

import hashlib
import time
from collections.abc import Callable, Collection, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from botocore.exceptions import ClientError

from cliniko_automations.common.dynamodb_batches import BATCH_WRITE, get_items, write_items
from cliniko_automations.common.identity_claims import claim_is_free, claim_item_key, waited_for
from cliniko_automations.common.person_keys import PersonKeys

BODY_PREFIX = "submission#"
TOMBSTONE_PREFIX = "tombstone#"
FIRST_SEEN_PREFIX = "first-seen#"
SOURCE_HOUR_PREFIX = "source-hour#"
EMAIL_INDEX = "by-email-hmac"
NAME_INDEX = "by-name-hmac"
DAY = 24 * 3600
# The parked and dead-letter queues keep a message 14 days (SQS's maximum); a body outlives
# them by two days so an id still queued always finds its body until the queue drops it.
BODY_TTL_SECONDS = 16 * DAY
# Tombstones and first-seen times outlive every queued copy and a provider's retries (Typeform
# retries for hours, Tally for a day) with a week's margin.
TOMBSTONE_TTL_SECONDS = 21 * DAY


@dataclass(frozen=True)
class FirstSeen:
    """When a submission's idempotency key first arrived, and whether the API held it then."""

    at: datetime
    held: bool = False


@dataclass(frozen=True)
class StoredSubmission:
    submission_id: str
    body: str
    keys: PersonKeys


@dataclass(frozen=True)
class DoneSubmission:
    """A submission the worker finished: its values are gone, when it was done is kept."""

    submission_id: str
    done_at: str


# Seconds an erasure has left for the purge (None: no bound), read before each batch.
TimeLeft = Callable[[], float | None] | None
# Index items read a query page (each some 100 bytes): the ids held at once, and how far a
# purge reads ahead of its deletes.
PURGE_PAGE = 1000


class PurgeCut(Exception):
    """A purge stopped part-way: `deleted` are gone, the rest is still stored. At its
    deadline, or (`error`) as the store failed: the batch it failed on may be gone too.
    `kept`: what it read and kept on purpose before it stopped (the webhook letters' erasure
    notices)."""

    def __init__(self, deleted: list[str], error: Exception | None = None, kept: int = 0) -> None:
        stop = "the deadline" if error is None else f"a store error ({type(error).__name__})"
        super().__init__(f"{len(deleted)} deleted before {stop}")
        self.deleted = deleted
        self.error = error
        self.kept = kept


# Most claims one fence checks in a transaction (DynamoDB's limit is 100 items, its tombstone
# is one of them).
FENCE_CLAIMS = 90


class DynamoSubmissionStore:
    """`claims_table`: where the intake worker's identity claims live, which `fence` checks;
    `fence_wait_seconds`: how long it waits for a held claim to end."""

    def __init__(
        self,
        client: Any,
        table: str,
        *,
        claims_table: str | None = None,
        fence_wait_seconds: float = 5.0,
        clock: Callable[[], float] = time.time,
        sleep: Callable[[float], None] = time.sleep,
    ):
        self._client = client
        self._table = table
        self._claims_table = claims_table
        self._fence_wait = fence_wait_seconds
        self._clock = clock
        self._sleep = sleep

    def _expires(self, seconds: int) -> dict[str, str]:
        return {"N": str(int(self._clock()) + seconds)}

    # -- the intake API ---------------------------------------------------------------------

    def first_received(self, idempotency_key: str, now: datetime, *, races: int = 3) -> FirstSeen:
        """When a submission with this idempotency key first arrived (`now` if never before,
        or only before its record expired), and whether it was held then (`mark_held`)."""
        key = _first_seen_key(idempotency_key)
        values = {
            ":now": {"S": now.isoformat()},
            ":exp": self._expires(TOMBSTONE_TTL_SECONDS),
            ":clock": {"N": str(int(self._clock()))},
        }
        # DynamoDB's TTL deletes lazily (within days): a record past its expiry counts as gone,
        # as a body does (`get`). Read from it, the same details sent again once it expired
        # kept their first arrival's time: made before an erasure since, they were dropped.
        for update, condition in (
            (
                "SET first_received_at = if_not_exists(first_received_at, :now), #exp = :exp",
                "attribute_not_exists(#exp) OR #exp >= :clock",
            ),
            ("SET first_received_at = :now, #exp = :exp", "#exp < :clock"),
        ):
            try:
                answer = self._client.update_item(
                    TableName=self._table,
                    Key={"id": {"S": FIRST_SEEN_PREFIX + key}},
                    UpdateExpression=update,
                    ConditionExpression=condition,
                    ExpressionAttributeNames={"#exp": "expiration"},
                    ExpressionAttributeValues=values,
                    ReturnValues="ALL_NEW",
                )
            except ClientError as exc:
                if exc.response.get("Error", {}).get("Code") != "ConditionalCheckFailedException":
                    raise
                continue
            attributes = answer["Attributes"]
            return FirstSeen(
                datetime.fromisoformat(attributes["first_received_at"]["S"]),
                held=attributes.get("held", {}).get("BOOL", False),
            )
        # Neither: another arrival renewed the expired record between the two (milliseconds
        # ago); its time is this arrival's first. (Bounded: in DynamoDB an `expiration` of
        # another type than a number, which nothing writes, fails both conditions for ever;
        # moto answers such a comparison 500, so no test here can make one.)
        if races <= 0:
            return FirstSeen(now)
        return self.first_received(idempotency_key, now, races=races - 1)

    def mark_held(self, idempotency_key: str) -> None:
        """The submission first received under this key was held past its source's hourly
        ceiling: a copy of it (a provider's retry, a resent capture) is held too, uncounted."""
        self._client.update_item(
            TableName=self._table,
            Key={"id": {"S": FIRST_SEEN_PREFIX + _first_seen_key(idempotency_key)}},
            UpdateExpression="SET held = :held",
            ExpressionAttributeValues={":held": {"BOOL": True}},
        )

    def admit_to_hour(self, source: str, hour: datetime, ceiling: int) -> bool:
        """Count one more of `source`'s submissions into `hour` (UTC) unless `ceiling` are
        counted there already: True when it was counted (the worker may have it), False when
        the hour is full (it is held back instead). One conditional write, so API processes
        at once never count past the ceiling. A write whose answer is lost and is sent again
        counts twice: the hour holds one less, never one more."""
        try:
            self._client.update_item(
                TableName=self._table,
                Key=_hour_key(source, hour),
                UpdateExpression="ADD queued :one SET #exp = if_not_exists(#exp, :exp)",
                ConditionExpression="attribute_not_exists(queued) OR queued < :ceiling",
                ExpressionAttributeNames={"#exp": "expiration"},
                ExpressionAttributeValues={
                    ":one": {"N": "1"},
                    ":ceiling": {"N": str(ceiling)},
                    ":exp": self._expires(2 * DAY),
                },
            )
        except ClientError as exc:
            if exc.response.get("Error", {}).get("Code") != "ConditionalCheckFailedException":
                raise
            return False
        return True

    def leave_hour(self, source: str, hour: datetime) -> None:
        """Take back one count `admit_to_hour` made in `hour` for a submission that did not
        reach the worker after all (the store or the queue failed it: its sender delivers it
        again, and is counted then). Never below nothing."""
        try:
            self._client.update_item(
                TableName=self._table,
                Key=_hour_key(source, hour),
                UpdateExpression="ADD queued :less",
                ConditionExpression="queued > :none",
                ExpressionAttributeValues={":less": {"N": "-1"}, ":none": {"N": "0"}},
            )
        except ClientError as exc:
            if exc.response.get("Error", {}).get("Code") != "ConditionalCheckFailedException":
                raise

    def put(self, submission_id: str, body: str, keys: PersonKeys) -> None:
        item: dict[str, Any] = {
            "id": {"S": BODY_PREFIX + submission_id},
            "body": {"S": body},
            "expiration": self._expires(BODY_TTL_SECONDS),
        }
        if keys.email_hmac:
            item["email_hmac"] = {"S": keys.email_hmac}
        if keys.name_hmac and keys.name_phone:
            item["name_hmac"] = {"S": keys.name_hmac}
            item["name_phone"] = {"SS": list(keys.name_phone)}
        self._client.put_item(TableName=self._table, Item=item)

    # -- the worker and the dead-letter tool ------------------------------------------------

    def get(self, submission_id: str) -> StoredSubmission | DoneSubmission | None:
        """The body; `DoneSubmission` once the worker finished it; None when it is gone
        (erased, expired, never stored)."""
        item = self._client.get_item(
            TableName=self._table,
            Key={"id": {"S": BODY_PREFIX + submission_id}},
            ConsistentRead=True,
        ).get("Item")
        # DynamoDB's TTL deletes lazily (within days): an expired body counts as gone.
        if not item or int(item["expiration"]["N"]) < self._clock():
            return None
        if "body" not in item:
            return DoneSubmission(submission_id, item.get("done_at", {}).get("S", ""))
        name_phone = tuple(sorted(item.get("name_phone", {}).get("SS", ())))
        keys = PersonKeys(
            item.get("email_hmac", {}).get("S"),
            item.get("name_hmac", {}).get("S") if name_phone else None,
            name_phone,
        )
        return StoredSubmission(submission_id, item["body"]["S"], keys)

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

    def mark_done(self, submission_id: str, done_at: datetime) -> None:
        """The worker finished the submission: its values go now, not at the TTL, and what
        stays says so for as long as a queue may still hold another delivery of its id."""
        self._client.put_item(
            TableName=self._table,
            Item={
                "id": {"S": BODY_PREFIX + submission_id},
                "done_at": {"S": done_at.isoformat()},
                "expiration": self._expires(BODY_TTL_SECONDS),
            },
        )

    def delete(self, submission_id: str) -> None:
        self._client.delete_item(
            TableName=self._table, Key={"id": {"S": BODY_PREFIX + submission_id}}
        )

    def erased_at(self, keys: Sequence[str]) -> datetime | None:
        """The latest erasure of any of these keys (a person's `tombstone_keys`); None when
        none was erased. One request for up to 100 keys."""
        wanted = [{"id": {"S": TOMBSTONE_PREFIX + key}} for key in dict.fromkeys(keys)]
        if not wanted:
            return None
        if len(wanted) == 1:
            item = self._client.get_item(
                TableName=self._table, Key=wanted[0], ConsistentRead=True
            ).get("Item")
            return _erased_at([item] if item else [])
        found = get_items(self._client, self._table, wanted, sleep=self._sleep)
        return _erased_at(found)

    def erased_since(self, keys: Sequence[str], made_at: datetime) -> bool:
        """Whether the person of these keys was erased after a submission of theirs was made
        at `made_at`: such a one is dropped wherever it comes from (a retry, a replay, a
        provider's redelivery days later)."""
        erased_at = self.erased_at(keys)
        return erased_at is not None and made_at <= erased_at

    # -- the erasure ------------------------------------------------------------------------

    def tombstone(self, keys: Collection[str], erased_at: datetime) -> None:
        """Mark each of these person keys erased at `erased_at` (25 keys a request)."""
        puts = [
            {"PutRequest": {"Item": self._tombstone(key, erased_at)}}
            for key in dict.fromkeys(keys)  # a batch may not name an item twice
        ]
        write_items(self._client, self._table, puts, sleep=self._sleep)

    def fence(self, key: str, erased_at: datetime, claims: Collection[str]) -> bool:
        """Tombstone `key` in one transaction with the check that no intake worker holds any
        of these identity claims (common/identity_claims.py), deleting those left expired,
        trying again while one is held for up to `fence_wait_seconds`: False if one still is."""
        if self._claims_table is None:
            raise ValueError("a fence needs the table of the identity claims")
        wanted = list(dict.fromkeys(claims))
        return waited_for(
            lambda: self._fenced(key, erased_at, wanted), self._fence_wait, self._sleep
        )

    def _fenced(self, key: str, erased_at: datetime, claims: Sequence[str]) -> bool:
        tombstone = {"Put": {"TableName": self._table, "Item": self._tombstone(key, erased_at)}}
        # Each transaction writes the tombstone (the same item again) with its part of the
        # claims: once every part has passed, each claim was free with the tombstone written.
        for start in range(0, max(len(claims), 1), FENCE_CLAIMS):
            free = claim_is_free(int(self._clock()))
            # A delete where a check would do: a claim left expired (a create's answer lost,
            # a worker killed) waits for DynamoDB's lazy TTL, and its key is an unkeyed hash
            # of the person's email or name. The erased person's go now.
            checks = [
                {"Delete": {"TableName": self._claims_table, "Key": claim_item_key(c), **free}}
                for c in claims[start : start + FENCE_CLAIMS]
            ]
            try:
                self._client.transact_write_items(TransactItems=[tombstone, *checks])
            except ClientError as exc:
                # A claim held, or being taken or given up at this very moment.
                if exc.response.get("Error", {}).get("Code") == "TransactionCanceledException":
                    return False
                raise
        return True

    def _tombstone(self, key: str, erased_at: datetime) -> dict[str, Any]:
        return {
            "id": {"S": TOMBSTONE_PREFIX + key},
            "erased_at": {"S": erased_at.isoformat()},
            "expiration": self._expires(TOMBSTONE_TTL_SECONDS),
        }

    def purge(self, email_hmac: str, *, time_left: TimeLeft = None) -> list[str]:
        """Delete every body stored for this email hash; returns their submission ids.
        `time_left`: see `_purge`."""
        return self._purge(EMAIL_INDEX, "email_hmac", email_hmac, time_left=time_left)

    def purge_person(
        self, name_hmac: str, name_phone: Collection[str], *, time_left: TimeLeft = None
    ) -> list[str]:
        """Delete every body stored under this name that shares a name-and-phone key with
        `name_phone` (the same name and a phone in common: the worker's identity for a
        submission without an email); returns their submission ids. A namesake with other
        phones keeps theirs."""
        wanted = set(name_phone)
        return self._purge(
            NAME_INDEX,
            "name_hmac",
            name_hmac,
            reaches=lambda item: not wanted.isdisjoint(item.get("name_phone", {}).get("SS", ())),
            attributes="id, name_phone",
            time_left=time_left,
        )

    def _purge(
        self,
        index: str,
        key: str,
        value: str,
        *,
        reaches: Callable[[dict[str, Any]], bool] = lambda item: True,
        attributes: str = "id",
        time_left: TimeLeft = None,
    ) -> list[str]:
        """Delete the bodies the index holds under `value` that `reaches` takes; their ids.

        A page of the index at a time, each deleted before the next is read: a person's
        bodies number what senders sent with their email (tens of thousands in a flood), one
        BatchWriteItem per 25 one after another (11,000 bodies: 440 calls, 24 s on moto
        here), which ran on into the erasure API's 29 s timeout. `time_left` (seconds, None
        for no bound): no batch is sent once it is spent, and PurgeCut carries what was
        deleted; the rest stays for the next attempt, whose query finds only what is left."""
        pages = self._client.get_paginator("query").paginate(
            TableName=self._table,
            IndexName=index,
            KeyConditionExpression=f"{key} = :h",
            ExpressionAttributeValues={":h": {"S": value}},
            ProjectionExpression=attributes,
            PaginationConfig={"PageSize": PURGE_PAGE},
        )
        deleted: list[str] = []
        try:
            for page in pages:
                found = {i["id"]["S"]: i["id"] for i in page.get("Items", []) if reaches(i)}
                keys = list(found.values())
                for start in range(0, len(keys), BATCH_WRITE):
                    left = time_left() if time_left is not None else None
                    if left is not None and left <= 0:
                        raise PurgeCut(sorted(deleted))
                    batch = keys[start : start + BATCH_WRITE]
                    deletes = [{"DeleteRequest": {"Key": {"id": k}}} for k in batch]
                    write_items(self._client, self._table, deletes, sleep=self._sleep)
                    deleted += [k["S"].removeprefix(BODY_PREFIX) for k in batch]
        except PurgeCut:
            raise
        except Exception as error:
            # The pages deleted before are gone all the same: the trail counts them.
            raise PurgeCut(sorted(deleted), error) from error
        return sorted(deleted)


def _hour_key(source: str, hour: datetime) -> dict[str, dict[str, str]]:
    return {"id": {"S": f"{SOURCE_HOUR_PREFIX}{source}#{hour.strftime('%Y-%m-%dT%H')}"}}


def _erased_at(tombstones: Sequence[dict[str, Any]]) -> datetime | None:
    times = [datetime.fromisoformat(item["erased_at"]["S"]) for item in tombstones]
    return max(times, default=None)


def _first_seen_key(idempotency_key: str) -> str:
    return hashlib.sha256(idempotency_key.encode("utf-8")).hexdigest()
