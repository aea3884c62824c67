"""DynamoDB adapters for the worker's own bookkeeping, kept in the idempotency table.

Three small kinds of item share the table Powertools idempotency already uses (pk `id`, TTL
attribute `expiration`), each under its own id prefix so none can collide with Powertools'
records (`intake-worker#<md5>`):

- `intake-claim#<sha256>`: a short lock on one person's identity (the hash of account and
  lower-cased email, or account and name) so concurrent workers look up and create one at a
  time, and an erasure waits for a create in flight (common/identity_claims.py). A
  conditional put takes it; it expires by itself if its holder dies.
- `intake-intent#<sha256(idempotency key)>`: written just before each create attempt (its
  start), stamped when the create's answer is lost, completed with the contact id just
  after; how a retry knows an earlier attempt may have created the contact, and when.
- `intake-failure#<SQS message id>`: the last failure reason of a message, for
  `scripts/dead_letters.py` (SQS redrive keeps the message id, but not anything we could add
  to the message, so the reason is stored beside it and found by that id).

None of them holds personal data: hashes, ids, times and reason codes.
"""

from __future__ import annotations

import contextlib
import hashlib
import math
import random
import secrets
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from botocore.exceptions import BotoCoreError, ClientError

from cliniko_automations.common.identity_claims import claim_is_free, claim_item_key, waited_for
from cliniko_automations.common.submission_store import BODY_TTL_SECONDS
from cliniko_automations.intake_worker.worker import ClaimBusy, Intent

INTENT_PREFIX = "intake-intent#"
FAILURE_PREFIX = "intake-failure#"
# As long as SQS keeps a dead letter at most (14 days): a replay can still find both. An
# intent's expiry then moves with its submission's body, to 16 days from each failed attempt
# or parking (retries.keep_body): a letter replayed late that fails again is kept 14 days more.
LONG_TTL_SECONDS = 14 * 24 * 3600


def _conditional_failed(exc: ClientError) -> bool:
    code: str | None = exc.response.get("Error", {}).get("Code")
    return code == "ConditionalCheckFailedException"


def _in_a_transaction(exc: ClientError) -> bool:
    """DynamoDB refused a write of the claim because a transaction includes that item right
    now: an erasure's fence checking it (TransactWriteItems with a ConditionCheck), which it
    does every 50-500 ms while the claim is held. botocore does not retry this."""
    code: str | None = exc.response.get("Error", {}).get("Code")
    return code == "TransactionConflictException"


# A fence's transaction takes milliseconds: letting go of a claim is tried this many times.
RELEASE_ATTEMPTS = 5


@dataclass
class _Held:
    """`HeldClaim`: how long to keep the claim once the block ends (0: let go)."""

    kept_for: float = 0.0

    def keep_for(self, seconds: float) -> None:
        self.kept_for = seconds


class DynamoClaims:
    """`Claims` on DynamoDB: a conditional put with an owner token and an expiry."""

    def __init__(
        self,
        client: Any,
        table: str,
        *,
        ttl_seconds: int = 90,
        wait_seconds: float = 5.0,
        clock: Callable[[], float] = time.time,
        sleep: Callable[[float], None] = time.sleep,
        remaining_seconds: Callable[[], float | None] = lambda: None,
    ) -> None:
        self._client = client
        self._table = table
        self._ttl = ttl_seconds
        self._remaining = remaining_seconds
        self._wait = wait_seconds
        self._clock = clock
        self._sleep = sleep

    @contextlib.contextmanager
    def hold(self, key: str) -> Iterator[_Held]:
        item_key = claim_item_key(key)
        token = secrets.token_hex(16)
        if not waited_for(lambda: self._try_put(item_key, token), self._wait, self._sleep):
            raise ClaimBusy()
        held = _Held()
        try:
            yield held
        except BaseException:
            # The block's own failure says what becomes of the submission (a dead letter with
            # its fix, a retry not before a time): a release that fails too must not take its
            # place. The claim then ends at its expiry, as a dead holder's does.
            with contextlib.suppress(ClientError, BotoCoreError):
                self._end(item_key, token, held.kept_for)
            raise
        self._end(item_key, token, held.kept_for)

    def _end(self, item_key: dict[str, dict[str, str]], token: str, kept_for: float) -> None:
        """Let go of the claim, or keep it `kept_for` seconds from now: only while it is still
        this holder's (expired and taken by someone else meanwhile: theirs now, left alone)."""
        names = {"#token": "token"}
        values = {":token": {"S": token}}
        for attempt in range(1, RELEASE_ATTEMPTS + 1):
            try:
                if kept_for > 0:
                    # Held while `expiration` >= the whole second now (`claim_is_free`): so
                    # through floor(t) + 1, past t. Rounded up, it stayed held a second more,
                    # up to 5 s for a keep of 3, all of a next submission's wait for it.
                    until = math.floor(self._clock() + kept_for)
                    self._client.update_item(
                        TableName=self._table,
                        Key=item_key,
                        UpdateExpression="SET #exp = :until",
                        ConditionExpression="#token = :token",
                        ExpressionAttributeNames={**names, "#exp": "expiration"},
                        ExpressionAttributeValues={**values, ":until": {"N": str(until)}},
                    )
                else:
                    self._client.delete_item(
                        TableName=self._table,
                        Key=item_key,
                        ConditionExpression="#token = :token",
                        ExpressionAttributeNames=names,
                        ExpressionAttributeValues=values,
                    )
                return
            except ClientError as exc:
                if _conditional_failed(exc):
                    return
                if not _in_a_transaction(exc) or attempt == RELEASE_ATTEMPTS:
                    raise
            self._sleep(0.02 * attempt * random.uniform(0.5, 1.5))  # noqa: S311 - not security

    def _expiry(self, now: int) -> int:
        # A claim is worth nothing once its holder's invocation is over: it lasts until the
        # Lambda would time out (a killed worker frees it then), `ttl_seconds` outside Lambda.
        remaining = self._remaining()
        ttl = self._ttl if remaining is None else min(self._ttl, math.ceil(remaining) + 1)
        return now + max(ttl, 1)

    def _try_put(self, item_key: dict[str, dict[str, str]], token: str) -> bool:
        now = int(self._clock())
        free = claim_is_free(now)
        try:
            self._client.put_item(
                TableName=self._table,
                Item={
                    **item_key,
                    "token": {"S": token},
                    "expiration": {"N": str(self._expiry(now))},
                },
                # Or already this holder's: botocore retries a put whose answer was lost (a
                # timeout), and the retry meets the claim its first attempt took. Refused, the
                # holder waited `wait_seconds` for itself, gave up (ClaimBusy), and the claim
                # stayed held by nobody until its expiry.
                ConditionExpression=f"{free['ConditionExpression']} OR #token = :token",
                ExpressionAttributeNames={**free["ExpressionAttributeNames"], "#token": "token"},
                ExpressionAttributeValues={
                    **free["ExpressionAttributeValues"],
                    ":token": {"S": token},
                },
            )
        except ClientError as exc:
            # Held, or being checked by an erasure's fence at this very moment: wait.
            if _conditional_failed(exc) or _in_a_transaction(exc):
                return False
            raise
        return True


def _intent_id(idempotency_key: str) -> dict[str, str]:
    return {"S": INTENT_PREFIX + hashlib.sha256(idempotency_key.encode()).hexdigest()}


class DynamoIntents:
    """`Intents` on DynamoDB."""

    def __init__(self, client: Any, table: str, *, clock: Callable[[], float] = time.time):
        self._client = client
        self._table = table
        self._clock = clock

    def get(self, idempotency_key: str) -> Intent | None:
        item = self._client.get_item(
            TableName=self._table, Key={"id": _intent_id(idempotency_key)}, ConsistentRead=True
        ).get("Item")
        if not item:
            return None
        lost = item.get("lost_at", {}).get("S")
        return Intent(
            started_at=datetime.fromisoformat(item["started_at"]["S"]),
            lost_at=datetime.fromisoformat(lost) if lost else None,
            contact_id=item.get("contact_id", {}).get("S"),
        )

    def begin(self, idempotency_key: str, started_at: datetime) -> None:
        # Each attempt replaces the last one's window: a retry adopts only what the latest
        # create could have made (the earlier ones were looked for before this one began).
        self._client.update_item(
            TableName=self._table,
            Key={"id": _intent_id(idempotency_key)},
            UpdateExpression="SET started_at = :t, #exp = :exp REMOVE lost_at",
            ExpressionAttributeNames={"#exp": "expiration"},
            ExpressionAttributeValues={
                ":t": {"S": started_at.isoformat()},
                ":exp": {"N": str(int(self._clock()) + LONG_TTL_SECONDS)},
            },
        )

    def lost(self, idempotency_key: str, lost_at: datetime) -> None:
        self._stamp(idempotency_key, "lost_at", lost_at.isoformat())

    def complete(self, idempotency_key: str, contact_id: str) -> None:
        self._stamp(idempotency_key, "contact_id", contact_id)

    def _stamp(self, idempotency_key: str, name: str, value: str) -> None:
        # Only on an intent that is there: one gone since this attempt read it (abandoned by
        # another attempt, or taken by DynamoDB's TTL) is not made again by the update, which
        # would make it without `expiration` (kept for ever) and without `started_at`.
        try:
            self._client.update_item(
                TableName=self._table,
                Key={"id": _intent_id(idempotency_key)},
                UpdateExpression="SET #name = :value",
                ConditionExpression="attribute_exists(id)",
                ExpressionAttributeNames={"#name": name},
                ExpressionAttributeValues={":value": {"S": value}},
            )
        except ClientError as exc:
            if not _conditional_failed(exc):
                raise

    def abandon(self, idempotency_key: str) -> None:
        self._client.delete_item(TableName=self._table, Key={"id": _intent_id(idempotency_key)})

    def keep(self, idempotency_key: str) -> None:
        # As long as the parked submission's body (BODY_TTL_SECONDS from its parking); an
        # intent already gone is not made again.
        try:
            self._client.update_item(
                TableName=self._table,
                Key={"id": _intent_id(idempotency_key)},
                UpdateExpression="SET #exp = :exp",
                ConditionExpression="attribute_exists(id)",
                ExpressionAttributeNames={"#exp": "expiration"},
                ExpressionAttributeValues={
                    ":exp": {"N": str(int(self._clock()) + BODY_TTL_SECONDS)}
                },
            )
        except ClientError as exc:
            if exc.response.get("Error", {}).get("Code") != "ConditionalCheckFailedException":
                raise


@dataclass(frozen=True)
class FailureRecord:
    message_id: str
    reason: str
    submission_id: str | None
    source: str | None
    receive_count: int
    failed_at: str


class DynamoFailures:
    """The last failure reason per SQS message id."""

    def __init__(self, client: Any, table: str, *, clock: Callable[[], float] = time.time):
        self._client = client
        self._table = table
        self._clock = clock

    def record(self, failure: FailureRecord) -> None:
        item: dict[str, Any] = {
            "id": {"S": FAILURE_PREFIX + failure.message_id},
            "reason": {"S": failure.reason},
            "receive_count": {"N": str(failure.receive_count)},
            "failed_at": {"S": failure.failed_at},
            "expiration": {"N": str(int(self._clock()) + LONG_TTL_SECONDS)},
        }
        if failure.submission_id:
            item["submission_id"] = {"S": failure.submission_id}
        if failure.source:
            item["source"] = {"S": failure.source}
        self._client.put_item(TableName=self._table, Item=item)

    def get(self, message_id: str) -> FailureRecord | None:
        item = self._client.get_item(
            TableName=self._table, Key={"id": {"S": FAILURE_PREFIX + message_id}}
        ).get("Item")
        if not item:
            return None
        return FailureRecord(
            message_id=message_id,
            reason=item["reason"]["S"],
            submission_id=item.get("submission_id", {}).get("S"),
            source=item.get("source", {}).get("S"),
            receive_count=int(item["receive_count"]["N"]),
            failed_at=item["failed_at"]["S"],
        )
