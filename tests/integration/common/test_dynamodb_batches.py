"""DynamoDB's batch calls against moto, with DynamoDB's throttling played at the AWS boundary
(a botocore hook leaves keys or writes unprocessed, as a throttled table answers): every key
read, every item written, or a clear error after a bounded number of paused attempts."""

from __future__ import annotations

import boto3
import pytest
from cliniko_automations.common.dynamodb_batches import (
    ATTEMPTS,
    LeftUnprocessed,
    get_items,
    write_items,
)

TABLE = "batches"


@pytest.fixture
def dynamodb(aws):
    client = boto3.client("dynamodb")
    client.create_table(
        TableName=TABLE,
        AttributeDefinitions=[{"AttributeName": "id", "AttributeType": "S"}],
        KeySchema=[{"AttributeName": "id", "KeyType": "HASH"}],
        BillingMode="PAY_PER_REQUEST",
    )
    return client


def throttled(client, operation: str, times: int | None) -> None:
    """The next `times` answers of `operation` (None: every one) leave all of it unprocessed."""
    left = {"n": times}

    def hook(parsed, params=None, **_: object) -> None:
        if left["n"] is not None:
            if left["n"] == 0:
                return
            left["n"] -= 1
        if operation == "BatchGetItem":
            parsed["Responses"] = {}
            parsed["UnprocessedKeys"] = params["RequestItems"]
        else:
            parsed["UnprocessedItems"] = params["RequestItems"]

    def keep_params(params, **kwargs):
        kwargs["context"]["batch_params"] = params

    client.meta.events.register(f"before-parameter-build.dynamodb.{operation}", keep_params)
    client.meta.events.register(
        f"after-call.dynamodb.{operation}",
        lambda parsed, context, **_: hook(parsed, context.get("batch_params")),
    )


def puts(count: int) -> list[dict]:
    return [{"PutRequest": {"Item": {"id": {"S": f"item-{n}"}}}} for n in range(count)]


def test_every_key_is_read_through_throttling_and_beyond_a_hundred(dynamodb):
    pauses: list[float] = []
    write_items(dynamodb, TABLE, puts(230), sleep=pauses.append)
    throttled(dynamodb, "BatchGetItem", times=2)
    keys = [{"id": {"S": f"item-{n}"}} for n in range(250)]  # 20 of them do not exist
    found = get_items(dynamodb, TABLE, keys, sleep=pauses.append)
    assert sorted(item["id"]["S"] for item in found) == sorted(f"item-{n}" for n in range(230))
    assert pauses == [0.05, 0.1]


def test_a_batch_throttled_throughout_is_an_error_after_bounded_paused_attempts(dynamodb):
    # Sent again at once and without end, a throttled read spun until the Lambda's timeout.
    pauses: list[float] = []
    throttled(dynamodb, "BatchGetItem", times=None)
    with pytest.raises(LeftUnprocessed):
        get_items(dynamodb, TABLE, [{"id": {"S": "item-1"}}], sleep=pauses.append)
    assert len(pauses) == ATTEMPTS - 1 and pauses == sorted(pauses) and max(pauses) <= 2.0


def test_every_write_is_made_through_throttling(dynamodb):
    pauses: list[float] = []
    throttled(dynamodb, "BatchWriteItem", times=1)
    write_items(dynamodb, TABLE, puts(30), sleep=pauses.append)
    assert dynamodb.scan(TableName=TABLE, Select="COUNT")["Count"] == 30
    assert pauses == [0.05]
