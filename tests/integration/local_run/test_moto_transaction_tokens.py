"""The tests' and the local run's moto answer a transaction's ClientRequestToken as DynamoDB
does (`local_run.moto_atomic`): a retry of a transaction it applied is a success that changes
nothing, the same token with other items is refused, and a new token is a new transaction."""

from __future__ import annotations

from typing import Any

import boto3
import pytest
from botocore.exceptions import ClientError

from tests.fixtures.aws import reset_moto
from tests.integration.cleanup.tables import create_table

TABLE = "tokens"


@pytest.fixture
def dynamodb(aws: str) -> Any:
    create_table("IdempotencyTable", TABLE)  # keyed by `id`
    return boto3.client("dynamodb")


def put_new(item_id: str, value: str) -> dict[str, Any]:
    return {
        "Put": {
            "TableName": TABLE,
            "Item": {"id": {"S": item_id}, "value": {"S": value}},
            "ConditionExpression": "attribute_not_exists(id)",
        }
    }


def value_of(dynamodb: Any, item_id: str) -> str | None:
    item = dynamodb.get_item(TableName=TABLE, Key={"id": {"S": item_id}}).get("Item")
    return None if item is None else item["value"]["S"]


def test_a_transaction_sent_again_with_its_token_succeeds_and_is_not_applied_again(
    dynamodb: Any,
) -> None:
    # Applied again, the put's condition would cancel it: the retry of a lost answer met its
    # own first attempt's write.
    items = [put_new("a", "first")]
    dynamodb.transact_write_items(TransactItems=items, ClientRequestToken="token-1")
    dynamodb.transact_write_items(TransactItems=items, ClientRequestToken="token-1")
    assert value_of(dynamodb, "a") == "first"


def test_the_same_token_with_other_items_is_refused(dynamodb: Any) -> None:
    dynamodb.transact_write_items(TransactItems=[put_new("a", "first")], ClientRequestToken="t")
    with pytest.raises(ClientError) as refused:
        dynamodb.transact_write_items(TransactItems=[put_new("b", "other")], ClientRequestToken="t")
    assert refused.value.response["Error"]["Code"] == "IdempotentParameterMismatchException"
    assert value_of(dynamodb, "b") is None


def test_a_new_token_is_a_new_transaction(dynamodb: Any) -> None:
    items = [put_new("a", "first")]
    dynamodb.transact_write_items(TransactItems=items, ClientRequestToken="token-1")
    with pytest.raises(ClientError) as cancelled:
        dynamodb.transact_write_items(TransactItems=items, ClientRequestToken="token-2")
    assert cancelled.value.response["Error"]["Code"] == "TransactionCanceledException"


def test_a_cancelled_transaction_leaves_its_token_free(dynamodb: Any) -> None:
    # DynamoDB remembers the tokens of transactions it applied: once the item that cancelled
    # it is gone, the same call goes through.
    dynamodb.put_item(TableName=TABLE, Item={"id": {"S": "a"}, "value": {"S": "before"}})
    items = [put_new("a", "first")]
    with pytest.raises(ClientError):
        dynamodb.transact_write_items(TransactItems=items, ClientRequestToken="token-1")
    dynamodb.delete_item(TableName=TABLE, Key={"id": {"S": "a"}})
    dynamodb.transact_write_items(TransactItems=items, ClientRequestToken="token-1")
    assert value_of(dynamodb, "a") == "first"


def test_a_reset_forgets_the_tokens(aws: str, dynamodb: Any) -> None:
    dynamodb.transact_write_items(TransactItems=[put_new("a", "first")], ClientRequestToken="t")
    reset_moto(aws)
    create_table("IdempotencyTable", TABLE)
    dynamodb.transact_write_items(TransactItems=[put_new("a", "again")], ClientRequestToken="t")
    assert value_of(dynamodb, "a") == "again"
