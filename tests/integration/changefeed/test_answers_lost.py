"""The change feed's AWS writes whose answer is lost (tests/fixtures/lost_answers.py): botocore
retries, and the retry meets the write its first attempt made."""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable
from typing import Any

import pytest
from cliniko_automations.common import aws

from tests.fixtures.lost_answers import answers_lost
from tests.integration.changefeed.test_handler import details, run, stack  # noqa: F401


def keyed(prefix: str) -> Callable[[dict[str, Any]], bool]:
    def matching(body: dict[str, Any]) -> bool:
        item = body.get("Item") or body.get("Key") or {}
        return str(item.get("pk", {}).get("S", "")).startswith(prefix)

    return matching


FEED_WRITES = {
    "the lease taken": ("dynamodb", "PutItem", keyed("lease#")),
    "the lease let go": ("dynamodb", "DeleteItem", keyed("lease#")),
    "the cursor saved": ("dynamodb", "UpdateItem", keyed("cursor#")),
    "the published states recorded": ("dynamodb", "BatchWriteItem", lambda body: True),
    "the events put on the bus": ("events", "PutEvents", lambda body: True),
}


@pytest.mark.parametrize("write", FEED_WRITES)
def test_a_run_whose_write_lost_its_answer_publishes_each_change_once(
    write: str,
    stack: Any,  # noqa: F811 - the fixture
    cliniko: Any,
) -> None:
    # PutEvents sent again by botocore is accepted again: each of its events reaches the bus
    # twice, with the same event id (and webhook-id), which receivers dedupe on.
    run()
    cliniko.control.churn(12, kinds=["create"])
    service, operation, matching = FEED_WRITES[write]
    with answers_lost(
        aws.client(service, config=aws.FAIL_FAST), operation, matching=matching
    ) as lost:
        (account,) = run()["accounts"]
    assert lost.lost == 1 and len(lost.sent) >= 2
    assert (account["changes"], account["complete"]) == (12, True)
    copies = Counter(detail["event_id"] for detail in details(stack))
    assert len(copies) == 12
    assert set(copies.values()) == ({1, 2} if write == "the events put on the bus" else {1})
    if write == "the events put on the bus":
        assert sum(copies.values()) == 12 + 10  # the batch sent again: 10 entries
    (account,) = run()["accounts"]
    assert account["changes"] == 0 and details(stack) == []
    assert not [item for item in stack.items() if item["pk"]["S"].startswith("lease#")]
