"""The erasure audit trail in DynamoDB: append-only records, pk `request_id`, sk `sk`.

Every write is conditional on the key being new, so nothing in the trail is ever overwritten;
a request's status is read from its records (trail.py: the sort keys and the chain).

On the shared session's low-level client, with boto3's own (de)serialiser: items read and
written exactly as the resource API would (numbers as Decimal), without the resource's second
client and model, which cost a cold start about 40 ms.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from typing import Any

from boto3.dynamodb.types import TypeDeserializer, TypeSerializer
from botocore.exceptions import ClientError

from cliniko_automations.common import aws
from cliniko_automations.erasure.errors import AlreadyRecorded
from cliniko_automations.erasure.trail import SUMMARY_SKS

_SERIALIZER = TypeSerializer()
_DESERIALIZER = TypeDeserializer()


def _item(values: Mapping[str, Any]) -> dict[str, Any]:
    return {name: _SERIALIZER.serialize(value) for name, value in values.items()}


def _values(item: Mapping[str, Any]) -> dict[str, Any]:
    return {name: _DESERIALIZER.deserialize(value) for name, value in item.items()}


class DynamoAuditLog:
    def __init__(self, table_name: str, *, client: Any = None) -> None:
        self._client = client or aws.client("dynamodb")
        self._table_name = table_name

    def records(self, request_id: str) -> list[dict[str, Any]]:
        items: list[dict[str, Any]] = []
        query: dict[str, Any] = {
            "TableName": self._table_name,
            "KeyConditionExpression": "request_id = :id",
            "ExpressionAttributeValues": _item({":id": request_id}),
            # Read what this same request just wrote (a repeat right after the first call).
            "ConsistentRead": True,
        }
        while True:
            page = self._client.query(**query)
            items.extend(_values(item) for item in page.get("Items", []))
            if "LastEvaluatedKey" not in page:
                return items
            query["ExclusiveStartKey"] = page["LastEvaluatedKey"]

    def append(self, request_id: str, sk: str, record: Mapping[str, Any]) -> None:
        item = {key: value for key, value in record.items() if value is not None}
        item.update(request_id=request_id, sk=sk)
        try:
            self._client.put_item(
                TableName=self._table_name,
                Item=_item(item),
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
        scan: dict[str, Any] = {"TableName": self._table_name, "ProjectionExpression": projection}
        if "#s" in projection:
            scan["ExpressionAttributeNames"] = {"#s": "status"}
        while True:
            page = self._client.scan(**scan)
            yield from (_values(item) for item in page.get("Items", []))
            if "LastEvaluatedKey" not in page:
                return
            scan["ExclusiveStartKey"] = page["LastEvaluatedKey"]
