"""The change feed with its table and bus stalled (they take the connection and never answer:
an outage, a NAT that forgot the function's connections): a run that ends in its own error
within the function's timeout as template.yaml sets it (its lease not taken), and the next
run publishes what this one could not. On botocore's defaults (60 s for an answer, DynamoDB's
4 attempts) one call waited 240 s: Lambda stopped the run at its timeout, with no line saying
what it waited on."""

from __future__ import annotations

from typing import Any

from botocore.exceptions import ReadTimeoutError
from local_run.template import SamApp

from tests.fixtures.aws import finished_within, stalled_services
from tests.integration.changefeed.test_handler import details, run, stack  # noqa: F401

FEED_TIMEOUT_SECONDS = SamApp.load().resources["ChangeFeedFunction"]["Properties"]["Timeout"]


def test_a_run_against_a_stalled_table_and_bus_ends_within_the_timeout(
    stack: Any,  # noqa: F811 - the fixture
    cliniko: Any,
    monkeypatch: Any,
) -> None:
    run()  # the cursor starts now
    cliniko.control.churn(5, kinds=["create"])

    with stalled_services(monkeypatch, "DYNAMODB", "EVENTBRIDGE"):
        ended = finished_within(FEED_TIMEOUT_SECONDS, run)

    assert ended is not None, f"the run went on past the {FEED_TIMEOUT_SECONDS} s timeout"
    assert isinstance(ended.error, ReadTimeoutError)  # the lease's, its line in the log
    assert details(stack) == []
    (account,) = run()["accounts"]
    assert (account["changes"], account["complete"]) == (5, True)
    assert len(details(stack)) == 5
