"""The erasure audit trail in DynamoDB: append-only records, pk `request_id`, sk `sk`.

Every write is conditional on the key being new, so nothing in the trail is ever overwritten;
a request's status is read from its records (trail.py: the sort keys and the chain). A chained
record is written with a claim on its place in the chain (`link#<seq>`), in one transaction:
two writers that read the same head (an attempt and an extension) cannot both link to it, so
the chain stays one line; the second is told to read the head again (`ChainMoved`).

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
from cliniko_automations.erasure.errors import AlreadyRecorded, ChainMoved
from cliniko_automations.erasure.trail import LOOKUP, SUMMARY_SKS

# The sort key prefix of the items that claim a place in a request's chain (no other field).
LINK_PREFIX = "link#"
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
        return self.records_and_places(request_id)[0]

    def records_and_places(self, request_id: str) -> tuple[list[dict[str, Any]], list[int]]:
        """A request's records, and the places in its chain that writes claimed (`link#`):
        a record deleted with nothing after it leaves no gap in `seq`, but its claim."""
        records: list[dict[str, Any]] = []
        places: list[int] = []
        query: dict[str, Any] = {
            "TableName": self._table_name,
            "KeyConditionExpression": "request_id = :id",
            "ExpressionAttributeValues": _item({":id": request_id}),
            # Read what this same request just wrote (a repeat right after the first call).
            "ConsistentRead": True,
        }
        while True:
            page = self._client.query(**query)
            for item in page.get("Items", []):
                sk = item["sk"]["S"]
                if not sk.startswith(LINK_PREFIX):
                    records.append(_values(item))
                elif sk[len(LINK_PREFIX) :].isdecimal():  # not isdigit: int() refuses "²"
                    places.append(int(sk[len(LINK_PREFIX) :]))
            if "LastEvaluatedKey" not in page:
                return records, places
            query["ExclusiveStartKey"] = page["LastEvaluatedKey"]

    def append(self, request_id: str, sk: str, record: Mapping[str, Any]) -> None:
        item = {key: value for key, value in record.items() if value is not None}
        item.update(request_id=request_id, sk=sk)
        new = "attribute_not_exists(request_id) AND attribute_not_exists(sk)"
        puts = [{"TableName": self._table_name, "Item": _item(item), "ConditionExpression": new}]
        if "seq" in item:
            place = {"request_id": request_id, "sk": f"{LINK_PREFIX}{int(item['seq']):06d}"}
            puts.append(
                {"TableName": self._table_name, "Item": _item(place), "ConditionExpression": new}
            )
        try:
            self._client.transact_write_items(TransactItems=[{"Put": put} for put in puts])
        except ClientError as error:
            if error.response["Error"]["Code"] != "TransactionCanceledException":
                raise
            reasons = [r.get("Code") for r in error.response.get("CancellationReasons", [])]
            if reasons[:1] == ["ConditionalCheckFailed"]:
                raise AlreadyRecorded(f"{request_id} {sk}") from None
            # The place is taken, or another transaction is writing it right now.
            if {"ConditionalCheckFailed", "TransactionConflict"} & set(reasons):
                raise ChainMoved(f"{request_id} {sk}") from None
            raise

    def summaries(self) -> Iterator[dict[str, Any]]:
        """The received, extension and outcome records of every request (for the overdue count).

        A scan: erasure requests are few (a handful a month), so a full read once a day costs
        less than an index kept up on every write.
        """
        for item in self._scan("request_id, sk, due_at, dry_run, #s"):
            if item["sk"] in SUMMARY_SKS:
                yield item

    def erased_contacts(self) -> set[tuple[str | None, str]]:
        """Every contact an erasure request (not a dry run) matched, done or still open, as
        (account, contact id): the webhook replay sends none of their fields again. A lookup
        recorded before the erasure covered several accounts gives (None, id): that id in any
        account."""
        matched: dict[str, set[tuple[str | None, str]]] = {}
        dry_runs: set[str] = set()
        for item in self._scan("request_id, sk, dry_run, contact_ids, #a"):
            if item["sk"].endswith(f"#{LOOKUP}"):
                contacts = matched.setdefault(item["request_id"], set())
                by_account = item.get("accounts")
                if by_account is None:
                    by_account = {None: item.get("contact_ids")}
                for account, ids in by_account.items():
                    contacts.update((account, str(contact_id)) for contact_id in ids or [])
            if item.get("dry_run"):
                dry_runs.add(item["request_id"])
        return {c for request, ids in matched.items() if request not in dry_runs for c in ids}

    def request_ids(self) -> list[str]:
        """Every request in the trail (for `verify --all`)."""
        return sorted({item["request_id"] for item in self._scan("request_id, sk")})

    def _scan(self, projection: str) -> Iterator[dict[str, Any]]:
        scan: dict[str, Any] = {"TableName": self._table_name, "ProjectionExpression": projection}
        # Attribute names DynamoDB reserves, or may: referred to by placeholder.
        names = {"#s": "status", "#a": "accounts"}
        used = {
            placeholder: name for placeholder, name in names.items() if placeholder in projection
        }
        if used:
            scan["ExpressionAttributeNames"] = used
        while True:
            page = self._client.scan(**scan)
            for item in page.get("Items", []):
                yield _values(item)
            if "LastEvaluatedKey" not in page:
                return
            scan["ExclusiveStartKey"] = page["LastEvaluatedKey"]
