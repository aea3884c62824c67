"""The cleanup with its tables stalled (they take the connection and never answer: an outage,
a NAT that forgot the function's connections). A step may make its last DynamoDB call, the
checkpoint after Cliniko's last answer, with only the time it keeps for it left
(`RESERVE_SECONDS`): it ends in its own error within that time, which the state machine's
Retry and Catch see, where on botocore's defaults (60 s for an answer, DynamoDB's 4 attempts)
one call waited up to 240 s and Lambda stopped the step at its timeout."""

from __future__ import annotations

from typing import Any

from botocore.exceptions import ReadTimeoutError
from cliniko_automations.cleanup import handler
from cliniko_automations.cleanup.wiring import RESERVE_SECONDS

from tests.fixtures.apigw import LambdaContext
from tests.fixtures.aws import finished_within, stalled_services
from tests.integration.cleanup.test_handler import begin, deployed  # noqa: F401


def test_a_step_with_its_reserve_left_ends_in_its_own_error_against_a_stalled_table(
    deployed: Any,  # noqa: F811 - the fixture
    monkeypatch: Any,
) -> None:
    started = begin(dry_run=True)
    step = {"action": "step", "run_id": started["run_id"], "iterations": 0}
    context = LambdaContext(function_name="CleanupFunction", timeout_ms=int(RESERVE_SECONDS * 1000))

    with stalled_services(monkeypatch, "DYNAMODB"):
        ended = finished_within(RESERVE_SECONDS, lambda: handler.lambda_handler(step, context))

    assert ended is not None, f"the step went on past the {RESERVE_SECONDS:.0f} s it had left"
    assert isinstance(ended.error, ReadTimeoutError)
