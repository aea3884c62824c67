"""moto, as the tests run it, carries out a conditional write atomically, as DynamoDB does:
the identity claims, the idempotency records and the leases are conditional puts, and a
test of who wins one must not be decided by moto's threads (tests/fixtures/aws.py)."""

from __future__ import annotations

import sys
import threading
import uuid

import boto3

from tests.integration.intake_worker.resources import create_worker_stack

ROUNDS = 60
CONTENDERS = 8


def test_one_conditional_put_of_many_at_once_wins(aws):
    table = create_worker_stack().idempotency_table
    client = boto3.client("dynamodb")
    doubled = 0
    interval = sys.getswitchinterval()
    # Threads switching all the time, as on a loaded machine: a switch between moto's check
    # of the condition and its write let two contenders win (4 rounds in 60, unlocked).
    sys.setswitchinterval(1e-6)
    try:
        for _ in range(ROUNDS):
            key = {"id": {"S": f"contended-{uuid.uuid4().hex}"}}
            winners: list[int] = []
            start = threading.Barrier(CONTENDERS)

            def put(n: int, key: dict = key, winners: list = winners, start=start) -> None:
                start.wait()
                try:
                    client.put_item(
                        TableName=table,
                        Item={**key, "n": {"N": str(n)}},
                        ConditionExpression="attribute_not_exists(id)",
                    )
                    winners.append(n)
                except client.exceptions.ConditionalCheckFailedException:
                    pass

            threads = [threading.Thread(target=put, args=(n,)) for n in range(CONTENDERS)]
            for thread in threads:
                thread.start()
            for thread in threads:
                thread.join()
            doubled += len(winners) != 1
    finally:
        sys.setswitchinterval(interval)
    assert doubled == 0
