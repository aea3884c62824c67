"""The daily overdue check against moto's DynamoDB: the metric it publishes, 0 included."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta

import pytest
from botocore.exceptions import ReadTimeoutError
from cliniko_automations.common.timestamps import iso
from cliniko_automations.erasure import overdue_handler
from cliniko_automations.erasure.audit import DynamoAuditLog
from cliniko_automations.erasure.deadlines import due_date, end_of_day
from local_run.template import SamApp

from tests.fixtures.apigw import LambdaContext
from tests.fixtures.aws import finished_within, stalled_services
from tests.integration.erasure.stack import make_audit_table

TABLE = "erasure-audit-overdue"
LATER = timedelta(days=20)
CONTEXT = LambdaContext(function_name="ErasureOverdueFunction")


@pytest.fixture
def audit(aws, monkeypatch):
    make_audit_table(TABLE)
    monkeypatch.setenv("AUDIT_TABLE", TABLE)
    return DynamoAuditLog(TABLE)


def receive(audit: DynamoAuditLog, request_id: str, days_ago: int, *, dry_run=False) -> None:
    arrived = datetime.now(UTC) - timedelta(days=days_ago)
    audit.append(
        request_id,
        "000#received",
        {
            "received_at": iso(arrived),
            "due_at": end_of_day(due_date(arrived.date())),
            "status": "open",
            "dry_run": dry_run,
        },
    )


def published(output: str) -> list[float]:
    """Values of OverdueErasureRequests in the EMF lines Powertools printed."""
    values = []
    for line in output.splitlines():
        try:
            blob = json.loads(line)
        except ValueError:
            continue
        if isinstance(blob, dict) and "_aws" in blob and "OverdueErasureRequests" in blob:
            metric_names = [
                m["Name"] for d in blob["_aws"]["CloudWatchMetrics"] for m in d["Metrics"]
            ]
            assert "OverdueErasureRequests" in metric_names
            # the template's alarm watches namespace/metric with the dimension service=erasure
            assert ["service"] in blob["_aws"]["CloudWatchMetrics"][0]["Dimensions"]
            assert blob["service"] == "erasure"
            value = blob["OverdueErasureRequests"]
            values.extend(value if isinstance(value, list) else [value])
    return values


def test_zero_is_published_when_nothing_is_overdue(audit, capsys):
    receive(audit, "fresh", days_ago=2)
    result = overdue_handler.lambda_handler(
        {}, LambdaContext(function_name="ErasureOverdueFunction")
    )
    assert result["overdue"] == 0
    assert published(capsys.readouterr().out) == [0]


def test_open_and_failed_requests_past_due_are_counted(audit, capsys):
    receive(audit, "open-late", days_ago=33)
    receive(audit, "failed-late", days_ago=45)
    audit.append("failed-late", "001#failed", {"error": "cliniko_ServerError"})
    receive(audit, "done-late", days_ago=40)
    audit.append("done-late", "999#outcome", {"status": "completed"})
    receive(audit, "open-recent", days_ago=20)
    # A failed dry run past its date erases nobody: never owed, never overdue.
    receive(audit, "dry-late", days_ago=45, dry_run=True)
    audit.append("dry-late", "001#failed", {"error": "cliniko_ServerError"})
    # Extended within its first month: due two months later.
    receive(audit, "extended", days_ago=40)
    audit.append("extended", "000#extension", {"due_at": iso(datetime.now(UTC) + LATER)})

    result = overdue_handler.lambda_handler(
        {}, LambdaContext(function_name="ErasureOverdueFunction")
    )

    assert result == {"overdue": 2, "request_ids": ["failed-late", "open-late"]}
    assert published(capsys.readouterr().out) == [2]


OVERDUE_TIMEOUT_SECONDS = SamApp.load().resources["ErasureOverdueFunction"]["Properties"]["Timeout"]


def test_a_stalled_audit_table_is_the_run_s_own_error_within_its_timeout(audit, monkeypatch):
    # A run that ends in its own error, not killed by Lambda at the timeout (on botocore's
    # defaults a Scan page waited up to 240 s): its line says what failed.
    receive(audit, "open-late", days_ago=33)
    context = LambdaContext(
        function_name="ErasureOverdueFunction", timeout_ms=OVERDUE_TIMEOUT_SECONDS * 1000
    )
    with stalled_services(monkeypatch, "DYNAMODB"):
        ended = finished_within(
            OVERDUE_TIMEOUT_SECONDS, lambda: overdue_handler.lambda_handler({}, context)
        )
    assert ended is not None, f"still scanning after the {OVERDUE_TIMEOUT_SECONDS} s timeout"
    assert isinstance(ended.error, ReadTimeoutError)
