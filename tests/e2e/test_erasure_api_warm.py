"""One erasure API process, invocation after invocation, as Lambda keeps it warm: an
invocation's request id in the logs, its refusal's `reason` dimension and its time left (the
Cliniko client is kept for the container) are its own, never the previous one's."""

from __future__ import annotations

import json
from typing import Any

from cliniko_automations.erasure import api_handler

from tests.e2e.test_erasure_api import erasure, http_api_event, lambda_logs
from tests.fixtures import apigw
from tests.integration.erasure import stack

erasure_stack = stack.erasure_stack  # the fixture
__all__ = ["erasure_stack", "lambda_logs"]  # fixtures


def post(body: dict[str, Any], timeout_ms: int = 10_000) -> tuple[int, dict[str, Any]]:
    context = apigw.LambdaContext(function_name="ErasureApiFunction", timeout_ms=timeout_ms)
    event = http_api_event("POST", "/erasure-requests", body=body)
    answer = api_handler.lambda_handler(event, context)
    return answer["statusCode"], json.loads(answer["body"])


def emitted(capsys, lambda_logs) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    """(log lines, EMF records) written since the last call."""
    records = [
        json.loads(line) for line in capsys.readouterr().out.splitlines() if '"_aws"' in line
    ]
    lines = [json.loads(line) for line in lambda_logs.getvalue().splitlines()]
    lambda_logs.seek(0)
    lambda_logs.truncate()
    return lines, records


def dimensions(record: dict[str, Any]) -> list[list[str]]:
    return [d for directive in record["_aws"]["CloudWatchMetrics"] for d in directive["Dimensions"]]


def test_nothing_of_one_invocation_reaches_the_next(erasure_stack, capsys, lambda_logs):
    ids = sorted([erasure_stack.seed(), erasure_stack.seed(first_name="Hortensia")])
    email = stack.PERSONAL["email"]
    assert post(erasure(request_id="several", email=email))[0] == 409  # reason dimension
    emitted(capsys, lambda_logs)
    # Too little time left for a Cliniko request: failed, nothing changed.
    status, body = post(erasure(request_id="by-id", contact_id=ids[0]), timeout_ms=4_500)
    assert (status, body["status"], body["cliniko_requests"]) == (502, "failed", 0)
    emitted(capsys, lambda_logs)
    # The same request with the time to finish: the kept client is bounded by this one's.
    status, body = post(erasure(request_id="by-id", contact_id=ids[0]))
    assert (status, body["result"]) == (200, "erased"), body
    lines, records = emitted(capsys, lambda_logs)
    assert {line.get("erasure_request_id") for line in lines} == {"by-id"}
    [record] = records
    assert record["ErasureCompleted"] == [1.0] and dimensions(record) == [["service"]]
    # A request refused before its id is read: no id of the previous one on its line.
    assert post(erasure(request_id="bad", contact_id=ids[1], dry_run="maybe"))[0] == 422
    lines, records = emitted(capsys, lambda_logs)
    assert lines and all("erasure_request_id" not in line for line in lines)
    [record] = records
    assert (record["reason"], record["ErasureRequestRefused"]) == ("invalid", [1.0])
    assert "ErasureCompleted" not in record
