"""A submission the intake API cannot take (its store or queue refuses: a permission, the
stack's KMS key, a missing resource; or a bug) is answered 503 and the handler returns
normally, so Lambda counts no error and IntakeApiErrorsAlarm never sees it. Every such answer
must still reach an alarm: a browser form is not retried at all, and providers give up."""

from __future__ import annotations

import pytest
from cliniko_automations.intake_api import telemetry
from local_run.template import ROOT, load

from tests.integration.intake_api.test_api_handler import emf, typeform

TEMPLATE = load(ROOT / "template.yaml")
# The stack's own namespace, as the template writes it for the functions and the alarms.
NAMESPACE = TEMPLATE["Globals"]["Function"]["Environment"]["Variables"][
    "POWERTOOLS_METRICS_NAMESPACE"
]


def _watched(metric: dict) -> bool:
    """Whether an alarm of the template watches this EMF metric (name and dimensions)."""
    for resource in TEMPLATE["Resources"].values():
        if resource["Type"] != "AWS::CloudWatch::Alarm":
            continue
        props = resource["Properties"]
        watched = [
            q["MetricStat"]["Metric"] for q in props.get("Metrics", []) if "MetricStat" in q
        ] or [props]
        for alarmed in watched:
            dimensions = {d["Name"]: d["Value"] for d in alarmed.get("Dimensions", [])}
            if (
                alarmed.get("Namespace") == NAMESPACE
                and alarmed.get("MetricName") == metric["name"]
                and dimensions == metric["dimensions"]
            ):
                return True
    return False


def test_a_store_that_refuses_every_submission_raises_an_alarm(intake, monkeypatch, capsys):
    monkeypatch.setenv("SUBMISSION_TABLE", "no-such-table")  # as an AccessDenied would
    body, headers = typeform()
    answer = intake.post("referral-typeform", body, headers)  # returned, not raised
    assert answer["statusCode"] == 503 and intake.messages() == []
    metrics = emf(capsys.readouterr().out)
    assert any(_watched(m) and sum(m["value"]) > 0 for m in metrics), (
        f"published {metrics}: no alarm watches any of them"
    )


@pytest.mark.parametrize(
    "report",
    [telemetry.report_unexpected, telemetry.report_misconfigured],
    ids=lambda r: r.__name__,
)
def test_an_unexpected_error_or_a_misconfiguration_raises_an_alarm(report, capsys):
    # What the handler reports for a bug or a broken deployment, before it answers 503.
    report(KeyError("a bug"))
    telemetry.metrics.flush_metrics()
    metrics = emf(capsys.readouterr().out)
    assert any(_watched(m) and sum(m["value"]) > 0 for m in metrics), (
        f"published {metrics}: no alarm watches any of them"
    )
