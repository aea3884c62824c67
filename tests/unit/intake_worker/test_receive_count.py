"""How many times SQS has handed a record over, as the backoff and the dead-lettering read it."""

from __future__ import annotations

import pytest
from aws_lambda_powertools.utilities.data_classes.sqs_event import SQSRecord
from cliniko_automations.intake_worker.retries import receive_count


@pytest.mark.parametrize(
    ("attributes", "count"),
    [
        ({"ApproximateReceiveCount": "3"}, 3),
        ({"ApproximateReceiveCount": "three"}, 1),
        ({}, 1),  # a hand-made event without it: a first delivery, not a crash
    ],
)
def test_the_receive_count_is_read_or_taken_as_a_first_delivery(attributes, count):
    assert receive_count(SQSRecord({"messageId": "m-1", "attributes": attributes})) == count
