"""The erasure API with DynamoDB stalled (it takes the connection and never answers: an
outage, or a kept connection a NAT or a long freeze silently dropped): the handler's own 503
"send the same request again later", within the function's timeout as template.yaml sets it.

On botocore's defaults (60 s for an answer, DynamoDB's 4 attempts) one call waited 240 s: the
Lambda ran into its 29 s timeout, and API Gateway answered its own 500, which says nothing of
sending the request again."""

from __future__ import annotations

import json
import time
from typing import Any

import pytest
from cliniko_automations.erasure import api_handler
from local_run.template import SamApp

from tests.e2e.test_erasure_api import erasure, http_api_event
from tests.fixtures import apigw
from tests.fixtures.aws import finished_within, stalled_services
from tests.integration.erasure import stack

erasure_stack = stack.erasure_stack  # the fixture

ERASURE_TIMEOUT_SECONDS = SamApp.load().resources["ErasureApiFunction"]["Properties"]["Timeout"]


def post_within_timeout(body: dict[str, Any]) -> tuple[int, dict[str, Any]] | None:
    """The answer to a POST, or None when the handler had none within the function's
    timeout (Lambda would have stopped it there)."""
    context = apigw.LambdaContext(
        function_name="ErasureApiFunction", timeout_ms=ERASURE_TIMEOUT_SECONDS * 1000
    )
    event = http_api_event("POST", "/erasure-requests", body=body)
    ended = finished_within(
        ERASURE_TIMEOUT_SECONDS, lambda: api_handler.lambda_handler(event, context)
    )
    if ended is None:
        return None
    assert ended.error is None
    return ended.value["statusCode"], json.loads(ended.value["body"])


def refusals(capsys: pytest.CaptureFixture[str]) -> list[str]:
    """The `reason` of each ErasureRequestRefused metric written (ErasureUnavailableAlarm)."""
    records = [
        json.loads(line) for line in capsys.readouterr().out.splitlines() if '"_aws"' in line
    ]
    return [record["reason"] for record in records if "ErasureRequestRefused" in record]


def test_a_stalled_dynamodb_is_a_503_within_the_timeout_and_the_same_id_goes_through_later(
    erasure_stack, monkeypatch, capsys
) -> None:
    contact_id = erasure_stack.seed()
    before = len(erasure_stack.log())

    with stalled_services(monkeypatch, "DYNAMODB"):
        started = time.monotonic()
        answer = post_within_timeout(erasure(request_id="stalled", contact_id=contact_id))
        waited = time.monotonic() - started

    assert answer is not None, f"no answer within the {ERASURE_TIMEOUT_SECONDS} s timeout"
    status, body = answer
    assert status == 503 and "send the same request again later" in body["message"], body
    assert refusals(capsys) == ["unavailable"]
    assert erasure_stack.log()[before:] == []  # Cliniko untouched
    # Not a timing test: the answer came with time to spare, not just before the cut.
    assert waited < ERASURE_TIMEOUT_SECONDS / 2
    # DynamoDB back: nothing of the stalled attempt holds the request id.
    answer = post_within_timeout(erasure(request_id="stalled", contact_id=contact_id))
    assert answer is not None and answer[0] == 200 and answer[1]["result"] == "erased", answer
