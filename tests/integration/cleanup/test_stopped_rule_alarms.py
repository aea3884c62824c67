"""A scheduled cleanup run whose rule Cliniko refuses for good (not the key: a 4xx on the
rule's own requests) stops that rule and finishes: the state machine ends `Finished`, so
CleanupRunFailedAlarm stays quiet, and the step must publish a metric an alarm watches."""

from __future__ import annotations

from local_run.template import ROOT, load

from tests.integration.cleanup.test_handler import begin, deployed, invoke  # noqa: F401
from tests.integration.intake_worker.resources import emf_metrics

TEMPLATE = load(ROOT / "template.yaml")
# The stack's own namespace, as the template writes it for the functions and the alarms.
NAMESPACE = TEMPLATE["Globals"]["Function"]["Environment"]["Variables"][
    "POWERTOOLS_METRICS_NAMESPACE"
]


def _cleanup_alarmed_metrics() -> set[str]:
    """The stack's own metrics an alarm of the template watches for service cleanup."""
    names = set()
    for resource in TEMPLATE["Resources"].values():
        props = resource["Properties"]
        if resource["Type"] != "AWS::CloudWatch::Alarm" or "MetricName" not in props:
            continue
        dimensions = {d["Name"]: d["Value"] for d in props.get("Dimensions", [])}
        if props["Namespace"] == NAMESPACE and dimensions == {"service": "cleanup"}:
            names.add(props["MetricName"])
    return names


def test_a_rule_cliniko_refuses_for_good_alarms_though_the_run_finishes(
    deployed,  # noqa: F811
    cliniko,
    capsys,
):
    started = begin(dry_run=None, rules=None, run_id=None)  # the schedule's input
    # The rule's filter is one this Cliniko will not take: 400 "email is not filterable",
    # refused for good (not retried), on every run alike.
    cliniko.control.set_behaviour(unfilterable=["email"])

    answer = invoke({"action": "step", "run_id": started["run_id"], "iterations": 0})

    (progress,) = deployed["runs"].load(started["run_id"]).rules
    assert progress.stopped and progress.matched == 0  # the rule did none of its work
    # The state machine's Continue choice goes to Finished (Succeed): no ExecutionsFailed,
    # no Lambda error.
    assert answer["next"] == "done"
    emitted = emf_metrics(capsys.readouterr().out)
    alarmed = _cleanup_alarmed_metrics()
    assert any(emitted.get(name, 0) > 0 for name in alarmed), (
        f"the step published {emitted}; the cleanup's alarms watch {sorted(alarmed)}: a rule "
        "that stops on every scheduled run is never reported"
    )
