"""The erasure audit trail in DynamoDB: append-only records, pk `request_id`, sk `sk`.

Every write is conditional on the key being new, so nothing in the trail is ever overwritten;
a request's status is read from its records (trail.py: the sort keys and the chain).
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from typing import Any

from boto3.dynamodb.conditions import Key
from botocore.exceptions import ClientError

from cliniko_automations.common import aws
from cliniko_automations.erasure.errors import AlreadyRecorded
from cliniko_automations.erasure.trail import SUMMARY_SKS


class DynamoAuditLog:
    def __init__(self, table_name: str, *, resource: Any = None) -> None:
        self._table = (resource or aws.dynamodb_resource()).Table(table_name)

    def records(self, request_id: str) -> list[dict[str, Any]]:
        items: list[dict[str, Any]] = []
        query: dict[str, Any] = {
            "KeyConditionExpression": Key("request_id").eq(request_id),
            # Read what this same request just wrote (a repeat right after the first call).
            "ConsistentRead": True,
        }
        while True:
            page = self._table.query(**query)
            items.extend(page.get("Items", []))
            if "LastEvaluatedKey" not in page:
                return items
            query["ExclusiveStartKey"] = page["LastEvaluatedKey"]

    def append(self, request_id: str, sk: str, record: Mapping[str, Any]) -> None:
        item = {key: value for key, value in record.items() if value is not None}
        item.update(request_id=request_id, sk=sk)
        try:
            self._table.put_item(
                Item=item,
                ConditionExpression="attribute_not_exists(request_id) AND attribute_not_exists(sk)",
            )
        except ClientError as error:
            if error.response["Error"]["Code"] == "ConditionalCheckFailedException":
                raise AlreadyRecorded(f"{request_id} {sk}") from None
            raise

    def summaries(self) -> Iterator[dict[str, Any]]:
        """The received, extension and outcome records of every request (for the overdue count).

        A scan: erasure requests are few (a handful a month), so a full read once a day costs
        less than an index kept up on every write.
        """
        for item in self._scan("request_id, sk, due_at, dry_run, #s"):
            if item["sk"] in SUMMARY_SKS:
                yield item

    def request_ids(self) -> list[str]:
        """Every request in the trail (for `verify --all`)."""
        return sorted({item["request_id"] for item in self._scan("request_id, sk")})

    def _scan(self, projection: str) -> Iterator[dict[str, Any]]:
        scan: dict[str, Any] = {"ProjectionExpression": projection}
        if "#s" in projection:
            scan["ExpressionAttributeNames"] = {"#s": "status"}
        while True:
            page = self._table.scan(**scan)
            yield from page.get("Items", [])
            if "LastEvaluatedKey" not in page:
                return
            scan["ExclusiveStartKey"] = page["LastEvaluatedKey"]
