"""The ledger of contacts the intake created (DynamoDB `LedgerTable`, pk `contact_id`).

For the cleanup rules: which Cliniko contacts came from a form, from which source and
submission, when. Ids and times only, never personal data. Written with a plain put keyed by
the contact id, so writing the same entry again (a recovered attempt) is harmless.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

from cliniko_automations.intake.worker import LedgerEntry


class DynamoLedger:
    def __init__(self, client: Any, table: str) -> None:
        self._client = client
        self._table = table

    def record(self, entry: LedgerEntry) -> None:
        self._client.put_item(
            TableName=self._table,
            Item={
                "contact_id": {"S": entry.contact_id},
                "account": {"S": entry.account},
                "source": {"S": entry.source},
                "submission_id": {"S": entry.submission_id},
                "created_at": {"S": entry.created_at},
            },
        )

    def get(self, contact_id: str) -> LedgerEntry | None:
        item = self._client.get_item(
            TableName=self._table, Key={"contact_id": {"S": contact_id}}, ConsistentRead=True
        ).get("Item")
        if not item:
            return None
        return LedgerEntry(**{key: value["S"] for key, value in item.items()})

    def contact_ids(self, account: str) -> Iterator[str]:
        """The ids of every contact the intake created in `account` (a paginated scan)."""
        paginator = self._client.get_paginator("scan")
        pages = paginator.paginate(
            TableName=self._table,
            FilterExpression="account = :account",
            ExpressionAttributeValues={":account": {"S": account}},
            ProjectionExpression="contact_id",
        )
        for page in pages:
            for item in page.get("Items", []):
                yield item["contact_id"]["S"]
