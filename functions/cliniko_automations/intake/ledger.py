"""The ledger of contacts the intake created (DynamoDB `LedgerTable`, pk `contact_id`).

For the cleanup rules: which Cliniko contacts came from a form, from which source and
submission, when. Ids and times only, never personal data. Keyed by the contact id and
written only if absent: the first entry for a contact names the submission that created it
for good; a later write (a recovered attempt recording its entry again, or any bug that
would name another submission) leaves it as it is.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

from botocore.exceptions import ClientError

from cliniko_automations.intake.worker import LedgerEntry


class DynamoLedger:
    def __init__(self, client: Any, table: str) -> None:
        self._client = client
        self._table = table

    def record(self, entry: LedgerEntry) -> None:
        try:
            self._client.put_item(
                TableName=self._table,
                Item={
                    "contact_id": {"S": entry.contact_id},
                    "account": {"S": entry.account},
                    "source": {"S": entry.source},
                    "submission_id": {"S": entry.submission_id},
                    "created_at": {"S": entry.created_at},
                },
                ConditionExpression="attribute_not_exists(contact_id)",
            )
        except ClientError as exc:
            # Already recorded: the first entry stays (see the module docstring).
            if exc.response.get("Error", {}).get("Code") != "ConditionalCheckFailedException":
                raise

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
