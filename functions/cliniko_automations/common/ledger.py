"""The ledger of contacts the intake created (DynamoDB `LedgerTable`, pk `contact_id`).

For the cleanup rules: which Cliniko contacts came from a form, from which source and
submission, when. Ids and times only, never personal data. Keyed by the contact id and
written only if absent: the first entry for a contact names the submission that created it
for good; a later write (a recovered attempt recording its entry again, or any bug that
would name another submission) leaves it as it is.

An entry also keeps `last_submission_at`, when a later submission last met its contact and
found nothing to change in it: a resubmission that changes nothing leaves
Cliniko's `updated_at` as it was, and a cleanup rule on `updated_at` must not take that person
for one nobody has touched.

Each entry has a `state`: "active" when the intake writes it, "archived" once the cleanup has
archived the contact. Active entries also carry `active_account` (their account), the key of
the sparse index `ActiveByAccount`: an archived entry loses it and so leaves the index, and a
cleanup run only ever pages through the contacts that may still need archiving.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

from botocore.exceptions import ClientError

from cliniko_automations.common.dynamodb_batches import get_items

ACTIVE_INDEX = "ActiveByAccount"
ACTIVE = "active"
ARCHIVED = "archived"


@dataclass(frozen=True)
class LedgerEntry:
    """What the intake created (the worker writes it, the cleanup reads it): ids and times
    only, never personal data."""

    contact_id: str
    account: str
    source: str
    submission_id: str
    created_at: str


def ledger_item(entry: LedgerEntry) -> dict[str, Any]:
    """The DynamoDB item of a new, active entry (on the sparse index of active entries)."""
    return {
        "contact_id": {"S": entry.contact_id},
        "account": {"S": entry.account},
        "source": {"S": entry.source},
        "submission_id": {"S": entry.submission_id},
        "created_at": {"S": entry.created_at},
        "state": {"S": ACTIVE},
        "active_account": {"S": entry.account},
    }


class DynamoLedger:
    def __init__(
        self, client: Any, table: str, *, sleep: Callable[[float], None] = time.sleep
    ) -> None:
        self._client = client
        self._table = table
        self._sleep = sleep

    def record(self, entry: LedgerEntry) -> None:
        try:
            self._client.put_item(
                TableName=self._table,
                Item=ledger_item(entry),
                ConditionExpression="attribute_not_exists(contact_id)",
            )
        except ClientError as exc:
            # Already recorded: the first entry stays (see the module docstring).
            if exc.response.get("Error", {}).get("Code") != "ConditionalCheckFailedException":
                raise

    def seen(self, contact_id: str, at: str) -> None:
        """A submission met this contact at `at`. Only an entry the ledger holds keeps it: a
        contact staff made is none of its business, and gets no entry."""
        try:
            self._client.update_item(
                TableName=self._table,
                Key={"contact_id": {"S": contact_id}},
                UpdateExpression="SET last_submission_at = :at",
                ConditionExpression="attribute_exists(contact_id)",
                ExpressionAttributeValues={":at": {"S": at}},
            )
        except ClientError as exc:
            if exc.response.get("Error", {}).get("Code") != "ConditionalCheckFailedException":
                raise

    def last_submissions(self, contact_ids: Sequence[str]) -> dict[str, str]:
        """When a submission last met each of `contact_ids`, for those it met (keys left
        unprocessed are read again after a pause, a bounded number of times: dynamodb_batches)."""
        keys = [{"contact_id": {"S": i}} for i in dict.fromkeys(contact_ids)]
        return {
            item["contact_id"]["S"]: item["last_submission_at"]["S"]
            for item in get_items(self._client, self._table, keys, sleep=self._sleep)
            if "last_submission_at" in item
        }

    def _active_query(self, account: str, after: str | None, **extra: str) -> dict[str, Any]:
        """A query of `account`'s active entries on the sparse index, after the id `after`."""
        query: dict[str, Any] = {
            "TableName": self._table,
            "IndexName": ACTIVE_INDEX,
            "KeyConditionExpression": "active_account = :account",
            "ExpressionAttributeValues": {":account": {"S": account}},
            **extra,
        }
        if after is not None:
            query["KeyConditionExpression"] += " AND contact_id > :after"
            query["ExpressionAttributeValues"][":after"] = {"S": after}
        return query

    def active_ids(self, account: str, after: str | None, limit: int) -> list[str]:
        """Up to `limit` ids of `account`'s active entries, in id order, after the id `after`
        (None: from the start). A keyset page: entries archived meanwhile never shift it."""
        query = self._active_query(account, after, ProjectionExpression="contact_id")
        ids: list[str] = []
        while len(ids) < limit:
            page = self._client.query(**query, Limit=limit - len(ids))
            ids += [item["contact_id"]["S"] for item in page.get("Items", [])]
            if "LastEvaluatedKey" not in page:
                break
            query["ExclusiveStartKey"] = page["LastEvaluatedKey"]
        return ids

    def count_active(self, account: str, after: str | None = None) -> int:
        """How many of `account`'s entries are active (after the id `after`): for progress."""
        query = self._active_query(account, after, Select="COUNT")
        count: int = 0
        while True:
            page = self._client.query(**query)
            count += page["Count"]
            if "LastEvaluatedKey" not in page:
                return count
            query["ExclusiveStartKey"] = page["LastEvaluatedKey"]

    def activate_unmarked(self) -> int:
        """Entries written before entries had a state (no `state`) become active, so the
        cleanup sees them: a one-off after upgrading (`scripts/cleanup.py backfill-ledger`).
        Returns how many were changed; running it again changes nothing."""
        changed = 0
        pages = self._client.get_paginator("scan").paginate(
            TableName=self._table,
            FilterExpression="attribute_not_exists(#state)",
            ExpressionAttributeNames={"#state": "state"},
            ProjectionExpression="contact_id, account",
        )
        for page in pages:
            for item in page.get("Items", []):
                try:
                    self._client.update_item(
                        TableName=self._table,
                        Key={"contact_id": item["contact_id"]},
                        UpdateExpression="SET #state = :active, active_account = :account",
                        ConditionExpression="attribute_not_exists(#state)",
                        ExpressionAttributeNames={"#state": "state"},
                        ExpressionAttributeValues={
                            ":active": {"S": ACTIVE},
                            ":account": item["account"],
                        },
                    )
                except self._client.exceptions.ConditionalCheckFailedException:
                    continue  # marked meanwhile (by the intake or the cleanup)
                changed += 1
        return changed

    def mark_archived(self, contact_ids: Sequence[str], archived_at: str) -> None:
        """The contacts the ledger holds leave the active set; any other is none of its
        business (a contact staff made, archived by a rule on every contact), and gets no entry.
        One update each (a transaction would make the batch all or nothing, which nothing
        needs: each update stands on its own, and one that is lost to a crash is made again by
        the next step's check of the batch)."""
        for contact_id in contact_ids:
            try:
                self._client.update_item(
                    TableName=self._table,
                    Key={"contact_id": {"S": contact_id}},
                    UpdateExpression="SET #state = :archived, archived_at = "
                    "if_not_exists(archived_at, :at) REMOVE active_account",
                    ConditionExpression="attribute_exists(contact_id)",
                    ExpressionAttributeNames={"#state": "state"},
                    ExpressionAttributeValues={
                        ":archived": {"S": ARCHIVED},
                        ":at": {"S": archived_at},
                    },
                )
            except ClientError as error:
                if error.response.get("Error", {}).get("Code") != "ConditionalCheckFailedException":
                    raise
