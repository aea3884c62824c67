"""The shared Cliniko budget's booking whose answer is lost (tests/fixtures/lost_answers.py):
botocore's retry (FAIL_FAST: one) meets the booking its first attempt made. Not recognised on
purpose: what it costs is bounded and measured here, one booking's cost on the key's schedule
(the slots of one lease: 0.3 s a slot at Cliniko's 200 a minute), gone as the schedule runs."""

from __future__ import annotations

import time

import boto3
import pytest
from cliniko_automations.cliniko.shared_pacing import Booking
from cliniko_automations.common import aws
from cliniko_automations.common.rate_limit_table import DynamoBudgetStore

from tests.fixtures.lost_answers import answers_lost
from tests.integration.cliniko.test_shared_budget import TABLE, table  # noqa: F401

COST = 0.6  # a lease of two slots


def tat(key: str) -> float:
    item = boto3.client("dynamodb").get_item(TableName=TABLE, Key={"key_id": {"S": key}})
    return float(item["Item"]["tat"]["N"])


@pytest.mark.parametrize("branch", ["idle", "busy"])
def test_a_booking_whose_answer_was_lost_is_booked_twice_never_more(
    branch: str,
    table: str,  # noqa: F811 - the fixture
) -> None:
    # Idle, the retry is refused (the schedule is ahead of now now) and the booking is tried
    # once more as busy, which adds the cost again; busy, the retry adds it again itself.
    client = aws.client("dynamodb", config=aws.FAIL_FAST)
    store = DynamoBudgetStore(client, TABLE)
    now = time.time()
    booking = Booking("tat", COST, now + 10)
    if branch == "busy":
        assert store.book("k", now, [booking]).granted
    before = max(now, tat("k")) if branch == "busy" else now
    with answers_lost(client, "UpdateItem") as lost:
        assert store.book("k", now, [booking]).granted
    assert lost.lost == 1
    assert tat("k") == pytest.approx(before + 2 * COST, abs=1e-3)


def test_a_booking_whose_retry_meets_the_ceiling_is_refused_though_it_was_made(
    table: str,  # noqa: F811 - the fixture
) -> None:
    # The caller waits for a slot it holds, and books another: two bookings' cost for one.
    client = aws.client("dynamodb", config=aws.FAIL_FAST)
    store = DynamoBudgetStore(client, TABLE)
    now = time.time()
    booking = Booking("tat", COST, now + 2 * COST)  # room for two bookings
    assert store.book("k", now, [booking]).granted
    with answers_lost(client, "UpdateItem") as lost:
        answer = store.book("k", now, [booking])
    assert lost.lost == 1
    assert not answer.granted
    assert tat("k") == pytest.approx(now + 2 * COST, abs=1e-3)  # the second booking stands
