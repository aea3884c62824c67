"""The cleanup's AWS writes whose answer is lost (tests/fixtures/lost_answers.py): botocore
retries, and the retry meets the write its first attempt made. A run begun and stepped to its
end with each write losing its answer once ends as a run without losses does."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest
from cliniko_automations.common import aws

from tests.fixtures.lost_answers import answers_lost
from tests.integration.cleanup.test_handler import (
    EXECUTION,
    archived,
    begin,
    deployed,  # noqa: F401 - the fixture
    invoke,
)


def keyed(pk_prefix: str, sk: str | None = None) -> Callable[[dict[str, Any]], bool]:
    def matching(body: dict[str, Any]) -> bool:
        item = body.get("Item") or body.get("Key") or {}
        pk, its_sk = item.get("pk", {}).get("S", ""), item.get("sk", {}).get("S", "")
        return pk.startswith(pk_prefix) and (sk is None or its_sk.startswith(sk))

    return matching


CLEANUP_WRITES = {
    "the lock taken": ("PutItem", keyed("lock#")),
    "the run written": ("PutItem", keyed("run#", "state")),
    "the latest run named": ("PutItem", keyed("rule-set#")),
    "the lease renewed": ("UpdateItem", keyed("lock#")),
    "the run saved": ("UpdateItem", keyed("run#", "state")),
    "the ids recorded": ("UpdateItem", keyed("run#", "ids#")),
    "the ledger entry archived": ("UpdateItem", lambda body: "contact_id" in body.get("Key", {})),
    "the lock let go": ("DeleteItem", keyed("lock#")),
}


@pytest.mark.parametrize("write", CLEANUP_WRITES)
def test_a_run_whose_write_lost_its_answer_ends_as_it_would_have(write, deployed, cliniko):  # noqa: F811
    operation, matching = CLEANUP_WRITES[write]
    with answers_lost(
        aws.client("dynamodb", config=aws.FAIL_FAST), operation, matching=matching
    ) as lost:
        started = begin(dry_run=False)
        assert started["next"] == "step"
        step = {"action": "step", "run_id": started["run_id"], "iterations": 0}
        assert invoke({**step, "execution": EXECUTION})["next"] == "done"
    assert lost.lost == 1 and len(lost.sent) >= 2
    runs = deployed["runs"]
    assert runs.latest("cleanup_rules") == started["run_id"]
    assert runs.load(started["run_id"]).status == "finished"
    assert runs.holder("cleanup_rules") is None
    assert archived(cliniko) == {deployed["test"]}
