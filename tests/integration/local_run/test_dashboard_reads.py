"""What the operator sees is what the functions emit. Every metric the dashboard's widgets read
is emitted by some function of the local run (the template's environment, its namespace and
service names) under exactly the namespace, name and dimension set the widget names: to
CloudWatch a metric published with one dimension more or less, or under another service, is
another metric, and the widget shows an empty graph. And each widget or alarm reads a metric
by a statistic that means something for it: the Sum of a count, the Maximum of a level (the
Sum of a level adds up the same backlog once per datapoint).

So for the alarms: each incident README names, met in the local run, emits the metric its
alarm selects (the incident drills, tests/e2e/test_incident_drills.py, also check when each
fires). The local run is the closest to AWS here: every function with its own environment from
the template, so a metric whose `service` is read from POWERTOOLS_SERVICE_NAME (the pacing
fallback's) carries the deployed one.
"""

from __future__ import annotations

import contextlib
import json
import os
import re
import time
from collections.abc import Iterator
from typing import Any

import boto3
import httpx
from cliniko_automations.cliniko import shared_pacing
from cliniko_automations.common import cliniko_accounts
from cliniko_automations.intake.submission import QueuedSubmission
from cliniko_emulator import EmulatorControl
from local_run import defaults, demo
from local_run.__main__ import run_demo
from local_run.template import ROOT, Resolver, load

from tests.integration.local_run.test_local_run import signed

TEMPLATE = load(ROOT / "template.yaml")
RESOURCES = TEMPLATE["Resources"]
# The stack's own namespace (one per stack), as the local run's stack is named.
NAMED_BY_STACK = Resolver(TEMPLATE, {}, {}, {"AWS::StackName": defaults.STACK_NAME})
DEPLOYED_NAMESPACE = NAMED_BY_STACK.resolve(
    TEMPLATE["Globals"]["Function"]["Environment"]["Variables"]["POWERTOOLS_METRICS_NAMESPACE"]
)

# What one datapoint of each metric a widget or an alarm reads is, which decides the
# statistics that mean something for it. A count (one per event, or the events of one step)
# is read by its Sum. A level (a queue's depth, the requests overdue, the minutes behind, the
# rules still in progress, sampled at each run or step) by its Maximum: its Sum adds the same
# backlog once per datapoint. A distribution (a duration, a lag per change) by a percentile,
# its Maximum or its Average. An indicator (1 for a delivery refused, 0 for one matched) by its
# Minimum, 1 only when every datapoint was 1 (FormSignatureRefusedAlarm).
STATISTICS = {
    "count": {"Sum"},
    "level": {"Maximum"},
    "distribution": {"p50", "p90", "p95", "p99", "Average", "Maximum"},
    "indicator": {"Minimum", "Maximum", "Average"},
}
KINDS = {
    # intake API (intake_api/telemetry.py) and worker (intake_worker/telemetry.py, retries.py)
    "SubmissionAccepted": "count",
    "SubmissionRejected": "count",
    "AnswersLeftOut": "count",
    "SubmissionHeld": "count",
    "SignatureRefused": "indicator",
    "ContactCreated": "count",
    "ContactUpdated": "count",
    "ContactUnchanged": "count",
    "SubmissionParked": "count",
    "SubmissionDropped": "count",
    "ClinikoThrottled": "count",
    # every Cliniko caller (common/misconfiguration.py, common/cliniko_accounts.py)
    "Misconfigured": "count",
    "ClinikoPacingFallback": "count",
    # erasure (erasure/api_handler.py, erasure/overdue_handler.py: the requests overdue today)
    "ErasureCompleted": "count",
    "ErasureFailed": "count",
    "ErasureRequestRefused": "count",
    "ContactsErased": "count",  # contacts scrubbed by each request handled (0: none now)
    "OverdueErasureRequests": "level",
    # cleanup (cleanup/telemetry.py: per step, the contacts it matched, archived and failed,
    # the rules it stopped, and the rules not yet done after it)
    "CleanupMatched": "count",
    "CleanupArchived": "count",
    "CleanupFailed": "count",
    "CleanupStopped": "count",
    "CleanupIncomplete": "level",
    # change feed (changefeed/handler.py: per account and run; the lag one value per change)
    "ChangesSeen": "count",
    "EventsPublished": "count",
    "DuplicatesDropped": "count",
    "FeedRequests": "count",
    "ChangeLagSeconds": "distribution",
    "FeedBehindMinutes": "level",
    # AWS's own
    "ApproximateNumberOfMessagesVisible": "level",
    "ApproximateAgeOfOldestMessage": "level",
    "Errors": "count",
    "Throttles": "count",
    "Duration": "distribution",
    "Count": "count",
    "4xx": "count",
    "5xx": "count",
    "ExecutionsFailed": "count",
}

SEARCH = re.compile(r"""SEARCH\('\{([^}]*)\}\s+MetricName="([^"]+)"',\s*'([^']+)'""")


def widget_rows(rows: list[list[Any]]) -> Iterator[tuple[list[Any], dict[str, Any]]]:
    """Each row of a widget's `metrics` as CloudWatch reads it: "." is the row above's item in
    that place; a leading "..." is the row above's items, the last ones replaced by those
    given. The options (a trailing object) stay the row's own."""
    above: list[Any] = []
    for row in rows:
        options = row[-1] if row and isinstance(row[-1], dict) else {}
        items = [item for item in row if not isinstance(item, dict)]
        if items and items[0] == "...":
            given = items[1:]
            items = above[: len(above) - len(given)] + given
        else:
            items = [above[i] if item == "." else item for i, item in enumerate(items)]
        if items:
            above = items
        yield items, options


def dashboard_reads(body: dict[str, Any]) -> list[dict[str, Any]]:
    """Every metric a widget plots: namespace, name, dimensions (name -> value; value None for
    a SEARCH's schema, which takes any value) and statistic."""
    reads = []
    for widget in body["widgets"]:
        props = widget["properties"]
        for items, options in widget_rows(props["metrics"]):
            read: dict[str, Any] = {"widget": props["title"]}
            if "expression" in options:
                # A SEARCH's schema names the namespace and the exact set of dimension names.
                (schema, name, stat) = SEARCH.match(options["expression"]).groups()  # type: ignore[union-attr]
                # (The namespace in double quotes: it holds a "/" and the stack's "-".)
                namespace, *dimension_names = [
                    part.strip().strip('"') for part in schema.split(",")
                ]
                read |= {
                    "namespace": namespace,
                    "name": name,
                    "dimensions": dict.fromkeys(dimension_names),
                    "stat": stat,
                }
            else:
                namespace, name, *pairs = items
                read |= {
                    "namespace": namespace,
                    "name": name,
                    "dimensions": dict(zip(pairs[::2], pairs[1::2], strict=True)),
                    "stat": options.get("stat", props.get("stat")),
                }
            reads.append(read)
    return reads


def alarm_reads() -> list[dict[str, Any]]:
    reads = []
    for alarm, resource in RESOURCES.items():
        if resource["Type"] != "AWS::CloudWatch::Alarm":
            continue
        props = resource["Properties"]
        queries = [q["MetricStat"] for q in props.get("Metrics", []) if "MetricStat" in q]
        for query in queries or [{"Metric": props, "Stat": props["Statistic"]}]:
            metric = query["Metric"]
            reads.append(
                {
                    "alarm": alarm,
                    "namespace": NAMED_BY_STACK.resolve(metric["Namespace"]),
                    "name": metric["MetricName"],
                    "dimensions": {d["Name"]: d["Value"] for d in metric.get("Dimensions", [])},
                    "stat": query["Stat"],
                }
            )
    return reads


def emitted(log: str, session_namespace: str) -> dict[tuple[str, str, frozenset], set[str]]:
    """(namespace, name, dimensions) -> units, of every metric the EMF lines in `log` carry, as
    CloudWatch files them: by each whole dimension set a directive names."""
    found: dict[tuple[str, str, frozenset], set[str]] = {}
    for line in log.splitlines():
        if not line.startswith("{") or '"_aws"' not in line:
            continue
        blob = json.loads(line)
        for directive in blob["_aws"]["CloudWatchMetrics"]:
            namespace = directive["Namespace"]
            # A handler module imported by an earlier test of this session kept the session's
            # namespace (tests/conftest.py); the local run's functions run with the template's.
            if namespace == session_namespace:
                namespace = DEPLOYED_NAMESPACE
            for dimension_set in directive["Dimensions"]:
                dimensions = frozenset((name, blob[name]) for name in dimension_set)
                for metric in directive["Metrics"]:
                    key = (namespace, metric["Name"], dimensions)
                    found.setdefault(key, set()).add(metric.get("Unit", "None"))
    return found


def wait_for_metric(system: Any, name: str, seconds: float = 60) -> None:
    deadline = time.monotonic() + seconds
    while f'"{name}"' not in system.log_text():
        assert time.monotonic() < deadline, f"no {name} within {seconds} s"
        time.sleep(0.2)


def operate(system: Any) -> None:
    """A day of the stack's life, each widget's event at least once."""
    from cliniko_automations.intake.config import load_form_sources

    account = load_form_sources(system.form_sources_file).sources["partner-json"].account
    secret = system.secrets["cliniko-automations/forms/partner-json/signing-secret"]
    # Accepted and created, from every provider; the same person with more to say, an update.
    assert run_demo(system) == 0
    more = json.loads(demo.json_delivery(secret).body) | {"occupation": "Mathematician"}
    answer = demo.send(system.gateway.url, demo.json_delivery(secret, more))
    assert answer.status_code == 202
    assert system.drain(60)
    # The same again, nothing new to say: unchanged.
    assert demo.send(system.gateway.url, demo.json_delivery(secret, more)).status_code == 202
    assert system.drain(60)
    # SQS delivers at least once: a second copy of a submission that went in is dropped.
    copy = QueuedSubmission(answer.json()["submission_id"], "partner-json").to_json()
    system.sqs().send_message(QueueUrl=system.queue_url("SubmissionQueue"), MessageBody=copy)
    # Two contacts in the account carry the address: parked for a person to decide.
    shard = system.account_keys[account].rsplit("-")[-1]  # the key names its shard
    grace = {"first_name": "Grace", "last_name": "Hopper", "email": "grace@example.com"}
    with EmulatorControl(system.emulator_url) as control:
        control.seed(contacts=[grace, grace], shard=shard)
    assert demo.send(system.gateway.url, demo.json_delivery(secret, grace)).status_code == 202
    # A delivery whose signature does not match: rejected, by reason.
    forged = demo.json_delivery("not-the-secret")
    assert demo.send(system.gateway.url, forged).status_code == 401
    assert system.drain(60)
    # An erasure request refused (no person named), then one carried out.
    assert erasure_request(system, "dashboard-invalid", email="") == 422
    assert erasure_request(system, "dashboard-erased") == 200
    # The scheduled functions.
    system.fire("ChangeFeedFunction")
    system.fire("CleanupStateMachine")
    system.fire("ErasureOverdueFunction")
    # Cliniko down: the attempt is handed back and counted.
    with EmulatorControl(system.emulator_url) as control:
        control.set_faults(error_rate=1.0, statuses=[503])
        ada = {"first_name": "Ada", "last_name": "Byron", "email": "ada.byron@example.com"}
        assert demo.send(system.gateway.url, demo.json_delivery(secret, ada)).status_code == 202
        wait_for_metric(system, "ClinikoThrottled")
        # An erasure meeting it fails, to be sent again with its request id.
        assert erasure_request(system, "dashboard-failed", email="ada.byron@example.com") == 502
        control.clear_faults()
    # Every key revoked: each Cliniko caller reports the deployment misconfigured.
    with EmulatorControl(system.emulator_url) as control:
        for key in system.account_keys.values():
            control.revoke_key(key)
    before = system.log_text().count('"Misconfigured"')
    mary = {"first_name": "Mary", "last_name": "Shelley", "email": "mary.shelley@example.com"}
    assert demo.send(system.gateway.url, demo.json_delivery(secret, mary)).status_code == 202
    deadline = time.monotonic() + 60
    while system.log_text().count('"Misconfigured"') == before:
        assert time.monotonic() < deadline, "the worker reported no misconfiguration"
        time.sleep(0.2)
    system.fire("ChangeFeedFunction")
    system.fire("CleanupStateMachine")


def erasure_request(
    system: Any, request_id: str, email: str = "ada.lovelace@example.com", **more: Any
) -> int:
    url = f"{system.gateway.url}/erasure-requests"
    fields = {"request_id": request_id, "email": email, "reason": "drill", **more}
    body = json.dumps(fields).encode()
    return httpx.post(url, content=body, headers=signed("POST", url, body), timeout=60).status_code


@contextlib.contextmanager
def setting(system: Any, function: str, variable: str, value: str) -> Iterator[None]:
    """`function` run with one of its settings changed, as a deployment with another value."""
    environment = system.functions[function].environment
    previous = environment[variable]
    environment[variable] = value
    try:
        yield
    finally:
        environment[variable] = previous


@contextlib.contextmanager
def without(system: Any, function: str, variable: str) -> Iterator[None]:
    """`function` run without one of its settings, as a deployment that lost it."""
    environment = system.functions[function].environment
    value = environment.pop(variable)
    try:
        yield
    finally:
        environment[variable] = value


def incidents(system: Any) -> None:
    """Each alarm's incident at least once (README "Operating", Incidents)."""
    secret = system.secrets["cliniko-automations/forms/partner-json/signing-secret"]
    api = system.gateway.url
    assert run_demo(system) == 0  # contacts in both accounts, for the cleanup's rules
    from cliniko_automations.intake.config import load_form_sources

    # Two contacts share an address and the stack erases one an hour: erasing both is refused
    # before either changes (ErasureHourlyLimitAlarm).
    account = load_form_sources(system.form_sources_file).sources["partner-json"].account
    shard = system.account_keys[account].rsplit("-")[-1]  # the key names its shard
    hedy = {"first_name": "Hedy", "last_name": "Lamarr", "email": "hedy@example.com"}
    with EmulatorControl(system.emulator_url) as control:
        control.seed(contacts=[hedy, hedy], shard=shard)
    with setting(system, "ErasureApiFunction", "ERASURE_HOURLY_LIMIT", "1"):
        refused = erasure_request(system, "drill-wide", hedy["email"], erase_all_matches=True)
        assert refused == 429
    # A delivery checked and matched, one refused (FormSignatureRefusedAlarm's 0 and 1); an
    # answer that is none of Cliniko's choices (IntakeAnswersLeftOutAlarm).
    atlantis = json.loads(demo.json_delivery(secret).body) | {"country": "Atlantis"}
    assert demo.send(api, demo.json_delivery(secret, atlantis)).status_code == 202
    assert demo.send(api, demo.json_delivery("not-the-secret")).status_code == 401
    # A source past its hourly ceiling: the second is held (IntakeHourlyCeilingAlarm).
    with setting(system, "IntakeApiFunction", "SOURCE_HOURLY_CEILING", "1"):
        for n in range(2):
            person = {"first_name": "Flood", "last_name": f"Bot{n}", "email": f"bot{n}@example.com"}
            assert demo.send(api, demo.json_delivery(secret, person)).status_code == 202
    assert system.drain(60)
    # Cliniko down: the attempt is handed back (ClinikoThrottledAlarm).
    with EmulatorControl(system.emulator_url) as control:
        control.set_faults(error_rate=1.0, statuses=[503])
        ada = {"first_name": "Ada", "last_name": "Byron", "email": "ada.byron@example.com"}
        assert demo.send(api, demo.json_delivery(secret, ada)).status_code == 202
        wait_for_metric(system, "ClinikoThrottled")
        control.clear_faults()
    # The shared budget's table gone (PacingFallbackAlarm) and every key revoked (the four
    # misconfiguration alarms): each Cliniko caller meets both.
    dynamodb = boto3.client("dynamodb", region_name="eu-west-1")
    dynamodb.delete_table(TableName=system.physical["RateLimitTable"].ref)
    # The worker may still hold a slot it booked for Ada's attempt (a lease books two, her
    # 503 spent one): Mary's lookup, sent on it within its lateness, asked no store, and no
    # fallback was counted (one run in four here). Past it, the worker books with the table
    # gone.
    policy = shared_pacing.SharingPolicy()
    time.sleep((policy.lease + policy.late) * policy.interval)
    with EmulatorControl(system.emulator_url) as control:
        for key in system.account_keys.values():
            control.revoke_key(key)
    mary = {"first_name": "Mary", "last_name": "Shelley", "email": "mary.shelley@example.com"}
    assert demo.send(api, demo.json_delivery(secret, mary)).status_code == 202
    wait_for_metric(system, "Misconfigured")
    system.fire("ChangeFeedFunction")
    system.fire("CleanupStateMachine")
    assert erasure_request(system, "drill-revoked") == 502
    system.fire("ErasureOverdueFunction")
    # A setting lost, then a table: answered 503 (IntakeUnavailableAlarm,
    # ErasureUnavailableAlarm).
    with without(system, "IntakeApiFunction", "SUBMISSION_QUEUE_URL"):
        assert demo.send(api, demo.json_delivery(secret, mary)).status_code == 503
    with without(system, "ErasureApiFunction", "AUDIT_TABLE"):
        assert erasure_request(system, "drill-unset") == 503
    dynamodb.delete_table(TableName=system.physical["SubmissionStoreTable"].ref)
    assert demo.send(api, demo.json_delivery(secret, mary)).status_code == 503
    dynamodb.delete_table(TableName=system.physical["ErasureAuditTable"].ref)
    assert erasure_request(system, "drill-gone") == 503


def unread(reads: list[dict[str, Any]], published: dict) -> list[dict[str, Any]]:
    """The reads of our namespace that no metric published matches: the same name, exactly
    the same dimension names, and the values the read names (a SEARCH's schema takes any)."""
    return [
        read
        for read in reads
        if read["namespace"] == DEPLOYED_NAMESPACE
        and not any(
            namespace == read["namespace"]
            and name == read["name"]
            and {k for k, _ in dimensions} == set(read["dimensions"])
            and all(v is None or (k, v) in dimensions for k, v in read["dimensions"].items())
            for namespace, name, dimensions in published
        )
    ]


def test_every_widget_reads_a_metric_a_function_emits_by_a_statistic_that_fits(local_system):
    body = json.loads(
        local_system.resolver.resolve(RESOURCES["Dashboard"]["Properties"]["DashboardBody"])
    )
    reads = dashboard_reads(body)
    operate(local_system)
    published = emitted(local_system.log_text(), os.environ["POWERTOOLS_METRICS_NAMESPACE"])

    assert [r for r in reads if r["namespace"] == DEPLOYED_NAMESPACE]
    missing = unread(reads, published)
    emitted_names = sorted((name, sorted(dimensions)) for namespace, name, dimensions in published)
    assert not missing, (
        f"widgets read metrics no function emits: {missing}; emitted {emitted_names}"
    )

    units: dict[str, set[str]] = {}
    for (_, name, _), found in published.items():
        units.setdefault(name, set()).update(found)
    assert {name: u for name, u in units.items() if len(u) > 1} == {}

    misread = [r for r in reads if r["stat"] not in STATISTICS[KINDS[r["name"]]]]
    assert not misread, misread


# An unexpected error of ours (a bug) is not provoked here: it is counted by the same call as
# the others, under reason `internal` (tests/integration/intake_api/test_api_handler.py).
NOT_PROVOKED = [
    ("SubmissionRejected", {"service": "intake", "reason": "internal"}),
    ("ErasureRequestRefused", {"service": "erasure", "reason": "internal"}),
]


def test_every_alarm_watches_a_metric_a_function_emits_by_a_statistic_that_fits(
    local_system, monkeypatch
):
    # The rate budget's table is deleted below: the process-wide budgets that fall back are
    # this test's, not the next test's (whose local run names its table alike).
    monkeypatch.setattr(cliniko_accounts, "_stores", {})
    monkeypatch.setattr(cliniko_accounts, "_clients", {})
    monkeypatch.setattr(shared_pacing, "_shared", {})
    reads = alarm_reads()
    incidents(local_system)
    published = emitted(local_system.log_text(), os.environ["POWERTOOLS_METRICS_NAMESPACE"])

    assert [r for r in reads if r["namespace"] == DEPLOYED_NAMESPACE]
    missing = [(r["name"], r["dimensions"]) for r in unread(reads, published)]
    emitted_names = sorted((name, sorted(dimensions)) for namespace, name, dimensions in published)
    assert missing == NOT_PROVOKED, f"{missing}; emitted {emitted_names}"

    misread = [r for r in reads if r["stat"] not in STATISTICS[KINDS[r["name"]]]]
    assert not misread, misread
