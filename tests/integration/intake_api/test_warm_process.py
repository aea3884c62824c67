"""One intake API process, invocation after invocation, as Lambda keeps it warm: a delivery's
source and correlation id in the logs, and a refusal's `reason` dimension, are its own, never
the previous delivery's."""

from __future__ import annotations

import json
from typing import Any

from tests.fixtures.apigw import form_post_event
from tests.unit.intake_api import samples


def emitted(intake, capsys) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    """(log lines, EMF records) written since the last call."""
    out = capsys.readouterr().out.splitlines()
    records = [json.loads(line) for line in out if line.startswith('{"_aws"')]
    lines = intake.log_records()
    intake.logs.seek(0)
    intake.logs.truncate()
    return lines, records


def dimensions(record: dict[str, Any]) -> list[list[str]]:
    return [d for directive in record["_aws"]["CloudWatchMetrics"] for d in directive["Dimensions"]]


def test_nothing_of_one_delivery_reaches_the_next(intake, capsys, monkeypatch):
    body = samples.typeform_body(response_token="forged")
    headers = {"Content-Type": "application/json", "Typeform-Signature": "sha256=Zm9yZ2Vk"}
    assert intake.invoke(form_post_event("referral-typeform", body, headers))["statusCode"] == 401
    emitted(intake, capsys)  # a `reason` dimension, the typeform source
    body, content_type = samples.jotform_body()
    accepted = form_post_event(
        "intake-jotform",
        body,
        {"Content-Type": content_type},
        base64=True,
        query={"token": samples.TOKEN},
    )
    assert intake.invoke(accepted)["statusCode"] == 202
    lines, records = emitted(intake, capsys)
    assert [line["message"] for line in lines] == ["Submission accepted"]
    assert (lines[0]["source"], lines[0]["provider"]) == ("intake-jotform", "jotform")
    assert lines[0]["correlation_id"] == accepted["requestContext"]["requestId"]
    metric = next(record for record in records if "SubmissionAccepted" in record)
    assert dimensions(metric) == [["service"]] and "reason" not in metric
    # Refused before its source is named (the deployment misconfigured): nothing of the
    # accepted delivery's on its line.
    monkeypatch.delenv("SUBMISSION_QUEUE_URL")
    refused = form_post_event("intake-jotform", body, {"Content-Type": content_type}, base64=True)
    assert intake.invoke(refused)["statusCode"] == 503
    lines, records = emitted(intake, capsys)
    assert [line["message"] for line in lines] == ["Deployment misconfigured"]
    assert lines[0]["correlation_id"] == refused["requestContext"]["requestId"]
    assert not {"source", "provider", "submission_id"} & set(lines[0])
    [metric] = records
    assert (metric["reason"], metric["SubmissionRejected"]) == ("misconfigured", [1.0])
    assert "SubmissionAccepted" not in metric
