"""Incident drills, as the on-call operator meets them (README "Operating", Incidents): each
incident reproduced through the real handlers (the intake API, the worker on moto's SQS with
its redrive after five receives, the change feed, the cleanup step, the webhook replay, the
erasure API and its daily overdue check; the Cliniko emulator over HTTP), then three checks.
The alarm README names is fed: its metric is emitted under the namespace, name and exact
dimension set the alarm in template.yaml selects (a metric published with one more dimension,
or under another service, is another metric to CloudWatch and never fires it); where an
alarm's periods, statistic or missing-data rule decide whether it fires, `alarm_fires`
evaluates them on the drill's clock. The operator's step README gives is the one taken here, with
the operating CLI it names. And taking it recovers everything: one contact each, none lost,
none made twice; every change published once; each contact archived once.

Time is counted in attempts, not slept: the worker's backoff is 0 s here (deployed 30 s,
doubling), and the 30-minute outage is the five receives it costs every submission caught in
it (deployed 7.75 to 15.5 minutes of backoff between the first and the redrive); the budget's
and the secrets' clocks are moved where a drill waits on them.
"""

from __future__ import annotations

import io
import json
import os
import time
from datetime import timedelta
from pathlib import Path
from typing import Any

import boto3
import pytest
from aws_lambda_powertools.utilities import parameters
from cliniko_automations.common.accounts import DEFAULT_PATH as ACCOUNTS_PATH
from cliniko_automations.common.accounts import load_accounts
from cliniko_automations.intake_worker import handler as worker_handler
from local_run import defaults
from local_run.template import Resolver, load

from tests.fixtures.apigw import LambdaContext
from tests.fixtures.emulator import before_each_answer
from tests.integration.cleanup.test_handler import deployed  # noqa: F401 (a fixture)
from tests.integration.erasure.stack import erasure_stack  # noqa: F401 (a fixture)
from tests.integration.intake_worker.e2e_world import IntakePath, build_intake_path, delivery
from tests.integration.intake_worker.resources import (
    MAX_RECEIVE_COUNT,
    WORKER_TIMEOUT_MS,
    WorldClock,
    captured_logs,
    load_dead_letters_script,
    poll_once,
)

pytestmark = [pytest.mark.slow, pytest.mark.timeout(300)]

ROOT = Path(__file__).resolve().parents[2]
TEMPLATE = load(ROOT / "template.yaml")
RESOURCES = TEMPLATE["Resources"]
# The namespace every function publishes under (template.yaml Globals); the tests' own
# processes publish under the one tests/conftest.py sets, read as it.
DEPLOYED_NAMESPACE = TEMPLATE["Globals"]["Function"]["Environment"]["Variables"][
    "POWERTOOLS_METRICS_NAMESPACE"
]
# The same, one per stack, for the local run's stack.
LOCAL_RUN_NAMESPACE = Resolver(TEMPLATE, {}, {}, {"AWS::StackName": defaults.STACK_NAME}).resolve(
    DEPLOYED_NAMESPACE
)


# --- what CloudWatch would see --------------------------------------------------------------


def alarm_metrics(alarm: str) -> list[dict]:
    """The metrics alarm `alarm` watches: its own, or those its metric-math expression sums."""
    props = RESOURCES[alarm]["Properties"]
    if "Metrics" in props:
        return [q["MetricStat"]["Metric"] for q in props["Metrics"] if "MetricStat" in q]
    return [props]


def watched_metrics(alarm: str) -> set[tuple[str, frozenset[tuple[str, str]]]]:
    """(metric name, dimension set) of each custom metric alarm `alarm` watches."""
    watched = set()
    for metric in alarm_metrics(alarm):
        assert metric["Namespace"] == DEPLOYED_NAMESPACE, (alarm, metric["Namespace"])
        dimensions = frozenset((d["Name"], d["Value"]) for d in metric.get("Dimensions", []))
        watched.add((metric["MetricName"], dimensions))
    return watched


def emitted_metrics(stdout: str) -> list[tuple[str, frozenset[tuple[str, str]], float]]:
    """(name, dimension set, value) of every metric value the EMF lines in `stdout` carry, as
    CloudWatch files them: by the whole dimension set each directive names."""
    # The tests' namespace, or the template's: a handler module a local run of this process
    # imported first (tests/integration/local_run) keeps the namespace the template gave it.
    namespaces = {os.environ["POWERTOOLS_METRICS_NAMESPACE"], LOCAL_RUN_NAMESPACE}
    found = []
    for line in stdout.splitlines():
        if not line.startswith("{") or '"_aws"' not in line:
            continue
        blob = json.loads(line)
        for directive in blob["_aws"]["CloudWatchMetrics"]:
            assert directive["Namespace"] in namespaces
            for dimension_set in directive["Dimensions"]:
                dimensions = frozenset((name, blob[name]) for name in dimension_set)
                for metric in directive["Metrics"]:
                    value = blob[metric["Name"]]
                    for one in value if isinstance(value, list) else [value]:
                        found.append((metric["Name"], dimensions, float(one)))
    return found


def alarm_sum(alarm: str, stdout: str) -> float:
    """What alarm `alarm` would sum of the metrics printed in `stdout`."""
    watched = watched_metrics(alarm)
    return sum(v for name, dims, v in emitted_metrics(stdout) if (name, dims) in watched)


STATISTICS = {"Sum": sum, "Maximum": max, "Minimum": min}
COMPARISONS = {
    "GreaterThanThreshold": lambda value, threshold: value > threshold,
    "GreaterThanOrEqualToThreshold": lambda value, threshold: value >= threshold,
}


def alarm_fires(alarm: str, emitted: list[tuple[float, str]], now: float) -> bool:
    """Whether single-metric alarm `alarm` is in ALARM at `now` (seconds on the drill's clock),
    given `emitted`: (when, stdout) of each invocation. As CloudWatch evaluates it: the
    datapoints of the metric it selects, in its periods, by its statistic; its last
    EvaluationPeriods whole periods, DatapointsToAlarm of them breaching; a period without
    data as TreatMissingData says (notBreaching, breaching, or, for ignore, left out, the
    state kept when all are: then the latest evaluation with data decides)."""
    props = RESOURCES[alarm]["Properties"]
    (watched,) = watched_metrics(alarm)
    period, periods = props["Period"], props["EvaluationPeriods"]
    needed = props.get("DatapointsToAlarm", periods)
    statistic, breaches = STATISTICS[props["Statistic"]], COMPARISONS[props["ComparisonOperator"]]
    missing = props["TreatMissingData"]
    assert missing in ("notBreaching", "breaching", "ignore"), missing
    values: dict[int, list[float]] = {}
    for when, out in emitted:
        for name, dims, value in emitted_metrics(out):
            if (name, dims) == watched:
                values.setdefault(int(when // period), []).append(value)

    def verdict(last: int) -> bool | None:
        window = range(last - periods + 1, last + 1)
        datapoints = [
            breaches(statistic(values[p]), props["Threshold"])
            if p in values
            else {"notBreaching": False, "breaching": True}.get(missing)
            for p in window
        ]
        present = [d for d in datapoints if d is not None]
        return sum(present) >= needed if present else None

    state = False
    for last in range(int(min(w for w, _ in emitted) // period), int(now // period)):
        decided = verdict(last)
        state = state if decided is None else decided
    return state


# --- the world ------------------------------------------------------------------------------


@pytest.fixture
def path(aws, cliniko, monkeypatch, tmp_path) -> IntakePath:
    return build_intake_path(cliniko, monkeypatch, tmp_path)


def context() -> LambdaContext:
    return LambdaContext(function_name="IntakeWorkerFunction", timeout_ms=WORKER_TIMEOUT_MS)


def submit(path: IntakePath, email: str) -> None:
    answer = path.post(delivery("json", email=email))
    # The sender is told its submission is in, whatever Cliniko is doing: the API never
    # calls Cliniko, so an outage there is no reason for a provider to give up or resend.
    assert answer["statusCode"] == 202, answer


def work_until_quiet(path: IntakePath, rounds: int = 40) -> int:
    """Poll as Lambda's event source would until the submission queue is empty (failed
    records come back at once: the backoff is 0 here); the records handled."""
    handled = 0
    for _ in range(rounds):
        messages, _failed = poll_once(path.stack, worker_handler.lambda_handler, context())
        handled += len(messages)
        if not messages and path.stack.counts(path.stack.queue_url) == (0, 0):
            return handled
    raise AssertionError("the submission queue never emptied")


def dead_letters_cli(path: IntakePath, monkeypatch, *argv: str) -> tuple[int, str]:
    """scripts/dead_letters.py as README "Operating" runs it, with the stack's outputs."""
    for name, value in {
        "DEAD_LETTER_QUEUE_URL": path.stack.dead_letter_queue_url,
        "SUBMISSION_QUEUE_URL": path.stack.queue_url,
        "IDEMPOTENCY_TABLE": path.stack.idempotency_table,
        "SUBMISSION_TABLE": path.stack.submission_table,
    }.items():
        monkeypatch.setenv(name, value)
    out = io.StringIO()
    code = load_dead_letters_script().main(list(argv), out=out)
    return code, out.getvalue()


def contacts_by_email(cliniko: Any) -> dict[str, int]:
    counts: dict[str, int] = {}
    for contact in cliniko.control.contacts():
        counts[contact["email"]] = counts.get(contact["email"], 0) + 1
    return counts


# --- drills ---------------------------------------------------------------------------------


def budget_clock_moved(monkeypatch, by: float = 0.0) -> list[float]:
    """The key's budget's clock (`pacing.SYSTEM_CLOCK`) moved as a drill says, so nothing
    sleeps: ahead of the real one by the list's one value, which the drill raises."""
    from cliniko_automations.cliniko import pacing

    ahead = [by]
    real_time, real_monotonic = pacing.SYSTEM_CLOCK.time, pacing.SYSTEM_CLOCK.monotonic
    monkeypatch.setattr(pacing.SYSTEM_CLOCK, "time", lambda: real_time() + ahead[0], raising=False)
    monkeypatch.setattr(
        pacing.SYSTEM_CLOCK, "monotonic", lambda: real_monotonic() + ahead[0], raising=False
    )
    return ahead


def test_cliniko_down_for_half_an_hour_dead_letters_and_one_replay_recovers_each_once(
    path, cliniko, monkeypatch, capsys
) -> None:
    clock = WorldClock(monkeypatch, path.stack, cliniko.control)
    submit(path, "before@example.com")
    work_until_quiet(path)
    assert contacts_by_email(cliniko) == {"before@example.com": 1}
    capsys.readouterr()

    # The outage begins with the worst answer there is: Cliniko made the contact, then its
    # gateway answered 502 (the create's answer lost); from then on nothing answers but 5xx,
    # the worker's look-up for what its create made included, while the forms keep coming.
    begun: list[bool] = []

    def outage_from_here(method: str, _body: bytes) -> None:
        if method == "POST" and not begun:
            begun.append(True)
            cliniko.server.app.faults.configure(
                {"error_rate": 1.0, "statuses": [500, 502, 503, 504]}
            )

    before_each_answer(cliniko.server, monkeypatch, outage_from_here)
    cliniko.control.set_faults(methods=["POST"], fail_next=[502], after_effect=True)
    submit(path, "lost-answer@example.com")
    poll_once(path.stack, worker_handler.lambda_handler, context())
    assert contacts_by_email(cliniko)["lost-answer@example.com"] == 1
    during = [f"during-{n}@example.com" for n in range(4)]
    for email in during:
        submit(path, email)
    work_until_quiet(path)
    out = capsys.readouterr().out

    # Each submission spent its five receives and is a dead letter (DeadLettersAlarm, on the
    # dead-letter queue's visible messages), with its reason.
    code, listing = dead_letters_cli(path, monkeypatch, "list")
    assert code == 0
    assert listing.count("cliniko_server_error") + listing.count("account_unavailable") == 5, (
        listing
    )
    assert path.stack.counts(path.stack.dead_letter_queue_url)[0] == 1 + len(during)
    # ClinikoThrottledAlarm's metric, as it selects it (namespace, name, {service: intake}):
    # every attempt Cliniko turned away.
    assert alarm_sum("ClinikoThrottledAlarm", out) >= MAX_RECEIVE_COUNT
    assert alarm_sum("MisconfigurationAlarm", out) == 0

    # Half an hour on, Cliniko is back: README "Operating", replay once the cause is fixed.
    clock.advance(timedelta(minutes=30))
    cliniko.control.clear_faults()
    code, said = dead_letters_cli(path, monkeypatch, "replay", "--all")
    assert code == 0, said
    work_until_quiet(path)
    assert path.stack.counts(path.stack.dead_letter_queue_url) == (0, 0)
    assert path.stack.counts(path.stack.parked_queue_url) == (0, 0)
    # Nobody lost, nobody twice: not even the one whose create Cliniko made and never told.
    assert contacts_by_email(cliniko) == {
        "before@example.com": 1,
        "lost-answer@example.com": 1,
        **dict.fromkeys(during, 1),
    }


def test_cliniko_down_in_quiet_hours_alarms_on_one_submission_and_a_blip_does_not(
    path, cliniko, monkeypatch, capsys
) -> None:
    import dataclasses

    from cliniko_automations.intake_worker.settings import WorkerSettings

    # The deployed backoff (30 s, doubling; here 0 s): each attempt's metrics are filed at
    # the time it would be made, on the drill's clock, in seconds.
    (base,) = [
        f.default for f in dataclasses.fields(WorkerSettings) if f.name == "retry_base_seconds"
    ]
    outage = {"error_rate": 1.0, "statuses": [500, 502, 503, 504]}

    def attempt() -> str:
        capsys.readouterr()
        poll_once(path.stack, worker_handler.lambda_handler, context())
        return capsys.readouterr().out

    # A blip: one attempt handed back, the next (30 s on) answered. Nobody is paged.
    cliniko.server.app.faults.configure(outage)
    submit(path, "blip@example.com")
    handed_back = attempt()
    cliniko.control.clear_faults()
    answered = attempt()
    assert contacts_by_email(cliniko) == {"blip@example.com": 1}
    assert not alarm_fires("ClinikoThrottledAlarm", [(0, handed_back), (base, answered)], 3600)

    # 3 a.m., Cliniko down, and one form comes in all night: its five attempts, then the
    # dead-letter queue (DeadLettersAlarm). ClinikoThrottledAlarm says why, wherever its
    # period starts and however the backoff's jitter (each less up to half) falls.
    cliniko.server.app.faults.configure(outage)
    submit(path, "night@example.com")
    attempts = [attempt() for _ in range(MAX_RECEIVE_COUNT)]
    work_until_quiet(path)
    assert path.stack.counts(path.stack.dead_letter_queue_url)[0] == 1
    period = RESOURCES["ClinikoThrottledAlarm"]["Properties"]["Period"]
    for jitter in (0.5, 1.0):
        waits = [jitter * base * 2**n for n in range(MAX_RECEIVE_COUNT - 1)]
        for start in range(0, period, 30):
            times = [start + sum(waits[:n]) for n in range(MAX_RECEIVE_COUNT)]
            emitted = list(zip(times, attempts, strict=True))
            ends = range(int(times[0] // period) + 1, int(times[-1] // period) + 2)
            assert any(alarm_fires("ClinikoThrottledAlarm", emitted, e * period) for e in ends), (
                jitter,
                start,
            )

    # Cliniko back: the replay README gives, and the alarm's metric is quiet.
    cliniko.control.clear_faults()
    code, said = dead_letters_cli(path, monkeypatch, "replay", "--all")
    assert code == 0, said
    replayed = attempt()
    assert alarm_sum("ClinikoThrottledAlarm", replayed) == 0
    assert contacts_by_email(cliniko) == {"blip@example.com": 1, "night@example.com": 1}


def test_a_revoked_key_rotated_in_secrets_manager_is_used_by_a_warm_worker_on_replay(
    path, cliniko, monkeypatch, capsys
) -> None:
    # A warm worker: it has read (and cached) the key with a first submission.
    submit(path, "warm@example.com")
    work_until_quiet(path)
    # 3 a.m.: someone archived the key's user's API key in Cliniko.
    cliniko.control.revoke_key(cliniko.api_key)
    capsys.readouterr()
    submit(path, "refused@example.com")
    work_until_quiet(path)
    out = capsys.readouterr().out
    # Dead-lettered at once (no retries that can only fail alike), MisconfigurationAlarm's
    # metric as it selects it, and the letter says what to fix.
    assert alarm_sum("MisconfigurationAlarm", out) == 1
    code, shown = dead_letters_cli(path, monkeypatch, "list")
    assert code == 0 and "cliniko_unauthorized" in shown, shown

    # README "Secrets": a new key in Cliniko, put in the secret; then the replay, at once,
    # with the warm worker still holding the old key in its five-minute cache.
    new_key = cliniko.api_key.rsplit("-", 1)[0] + "rotated-au1"
    cliniko.control.add_key(new_key)
    # (This world's accounts all hold the one key, so each of their secrets is rotated.)
    for _where, secret in load_accounts(ACCOUNTS_PATH).secret_references():
        boto3.client("secretsmanager").put_secret_value(SecretId=secret, SecretString=new_key)
    code, said = dead_letters_cli(path, monkeypatch, "replay", "--all")
    assert code == 0, said
    with captured_logs("intake") as logs:
        work_until_quiet(path)
    out = capsys.readouterr().out
    assert path.stack.counts(path.stack.dead_letter_queue_url) == (0, 0)
    assert contacts_by_email(cliniko) == {"warm@example.com": 1, "refused@example.com": 1}
    # The old key refused once more, read past the cache, then the new one: no second alarm
    # for a fixed key, and no five-minute wait for the cache.
    [retried] = logs.json("submission attempt failed")
    assert retried["reason"] == "cliniko_key_rotated"
    assert alarm_sum("MisconfigurationAlarm", out) == 0
    assert cliniko.control.requests()[-1]["status"] < 300


def test_a_deleted_key_secret_restored_as_the_dead_letter_says_and_replayed(
    path, cliniko, monkeypatch, capsys
) -> None:
    secrets = boto3.client("secretsmanager")
    [secret] = {
        s
        for where, s in load_accounts(ACCOUNTS_PATH).secret_references()
        if "north-clinic" in where  # the partner-json source's account
    }
    secrets.delete_secret(SecretId=secret, RecoveryWindowInDays=7)
    parameters.clear_caches()  # five minutes on: the cached key is gone with the cache
    submit(path, "while-deleted@example.com")
    work_until_quiet(path)
    out = capsys.readouterr().out
    assert alarm_sum("MisconfigurationAlarm", out) == 1
    code, shown = dead_letters_cli(path, monkeypatch, "list")
    assert code == 0 and "secret_deleted" in shown, shown
    # The fix the letter carries is the command the operator runs.
    [letter] = path.stack.drain(path.stack.dead_letter_queue_url)
    fix = letter["MessageAttributes"]["fix"]["StringValue"]
    assert f"aws secretsmanager restore-secret --secret-id {secret}" in fix
    path.stack.sqs.change_message_visibility(
        QueueUrl=path.stack.dead_letter_queue_url,
        ReceiptHandle=letter["ReceiptHandle"],
        VisibilityTimeout=0,
    )

    secrets.restore_secret(SecretId=secret)
    code, said = dead_letters_cli(path, monkeypatch, "replay", "--all")
    assert code == 0, said
    work_until_quiet(path)
    assert path.stack.counts(path.stack.dead_letter_queue_url) == (0, 0)
    assert contacts_by_email(cliniko) == {"while-deleted@example.com": 1}


def test_the_rate_limit_table_missing_alarms_as_deployed_and_its_return_is_used(
    path, cliniko, monkeypatch, capsys
) -> None:
    from cliniko_automations.cliniko.shared_pacing import clear_shared_store_budgets
    from cliniko_automations.common import cliniko_accounts
    from local_run.template import SamApp

    worker = SamApp(TEMPLATE).functions()["IntakeWorkerFunction"].environment
    # The worker's service name as deployed: the alarm selects each function's by it.
    monkeypatch.setenv("POWERTOOLS_SERVICE_NAME", worker["POWERTOOLS_SERVICE_NAME"])
    monkeypatch.setenv("CLINIKO_RATE_LIMIT_TABLE", "drill-rate-limit")
    clear_shared_store_budgets()
    monkeypatch.setattr(cliniko_accounts, "_stores", {})
    monkeypatch.setattr(cliniko_accounts, "_clients", {})
    capsys.readouterr()

    # The table deleted (or the policy lost): the submission still goes in, paced alone.
    submit(path, "unpaced@example.com")
    work_until_quiet(path)
    out = capsys.readouterr().out
    assert contacts_by_email(cliniko) == {"unpaced@example.com": 1}
    assert alarm_sum("PacingFallbackAlarm", out) >= 1

    # The operator recreates it (README: the table and the function's policy); the warm
    # worker tries it again 30 s after it fell back and books on it from then on.
    dynamodb = boto3.client("dynamodb")
    dynamodb.create_table(
        TableName="drill-rate-limit",
        AttributeDefinitions=[{"AttributeName": "key_id", "AttributeType": "S"}],
        KeySchema=[{"AttributeName": "key_id", "KeyType": "HASH"}],
        BillingMode="PAY_PER_REQUEST",
    )
    budget_clock_moved(monkeypatch, by=31.0)
    submit(path, "paced@example.com")
    work_until_quiet(path)
    out = capsys.readouterr().out
    assert contacts_by_email(cliniko) == {"unpaced@example.com": 1, "paced@example.com": 1}
    assert alarm_sum("PacingFallbackAlarm", out) == 0
    assert dynamodb.scan(TableName="drill-rate-limit")["Count"] == 1


def test_429s_for_half_an_hour_with_the_reset_far_off_delay_and_a_replay_recovers(
    path, cliniko, monkeypatch, capsys
) -> None:

    # Time for the key's budget moves as the test says (the queue's is played by making the
    # handed-back messages visible at once): nothing sleeps.
    ahead = budget_clock_moved(monkeypatch)
    # An invocation with too little time left to wait a 429 out in it (deployed: up to 90 s
    # of such waits, the record then tried once more).
    short = LambdaContext(function_name="IntakeWorkerFunction", timeout_ms=40_000)

    def attempt_all() -> list[dict]:
        messages, failed = poll_once(path.stack, worker_handler.lambda_handler, short)
        for message in messages:
            if message["MessageId"] in failed:  # the hold it was hidden for has passed
                path.stack.sqs.change_message_visibility(
                    QueueUrl=path.stack.queue_url,
                    ReceiptHandle=message["ReceiptHandle"],
                    VisibilityTimeout=0,
                )
        ahead[0] += 66.0  # the budget's hold is over too
        return messages

    # Something else spends the user's window, and Cliniko's 429s name a reset 30 minutes off.
    cliniko.control.set_faults(throttle_window_s=1800)
    people = [f"throttled-{n}@example.com" for n in range(3)]
    for email in people:
        submit(path, email)
    capsys.readouterr()
    with captured_logs("intake") as logs:
        for _ in range(3 * MAX_RECEIVE_COUNT):
            if not attempt_all() and path.stack.counts(path.stack.queue_url) == (0, 0):
                break
    out = capsys.readouterr().out
    # Every receive of every record met the 429s (its own, or its account's in the batch).
    # The first ones were hidden the 65 s the budget holds, not until the reset 30 minutes
    # off they named: Cliniko's window is a minute (the later ones' backoff is longer).
    failed = logs.json("submission attempt failed")
    assert {line["reason"] for line in failed} <= {"cliniko_rate_limited", "account_unavailable"}
    assert [60 <= line["retry_in_seconds"] <= 66 for line in failed[: len(people)]] == [True] * len(
        people
    )
    assert path.stack.counts(path.stack.dead_letter_queue_url)[0] == len(people)
    assert alarm_sum("ClinikoThrottledAlarm", out) >= MAX_RECEIVE_COUNT
    # Each of Cliniko's 429s held the budget at most 65 s: one request a receive reached it.
    throttled = [r for r in cliniko.control.requests() if r["status"] == 429]
    assert len(throttled) == MAX_RECEIVE_COUNT

    # The other integration stopped (README "Operating", Incidents), then the replay.
    cliniko.control.clear_faults()
    code, said = dead_letters_cli(path, monkeypatch, "replay", "--all")
    assert code == 0, said
    work_until_quiet(path)
    assert path.stack.counts(path.stack.dead_letter_queue_url) == (0, 0)
    assert contacts_by_email(cliniko) == dict.fromkeys(people, 1)


def alarm_max(alarm: str, stdout: str) -> float | None:
    """The Maximum alarm `alarm` would read of the metrics printed in `stdout` (None: no data,
    which ChangeFeedBehindAlarm treats as breaching)."""
    watched = watched_metrics(alarm)
    values = [v for name, dims, v in emitted_metrics(stdout) if (name, dims) in watched]
    return max(values) if values else None


def test_the_change_feed_behind_on_a_revoked_key_alarms_and_catches_up_once_rotated(
    aws, cliniko, tmp_path, monkeypatch, capsys
) -> None:

    from cliniko_automations.changefeed import handler as feed_handler

    from tests.integration.changefeed.stack import (
        KEY_SECRET,
        SCHEDULED_EVENT,
        caught_up_hours_ago,
        create_feed_stack,
        feed_environment,
    )
    from tests.integration.changefeed.stack import context as feed_context

    stack = create_feed_stack()
    feed_environment(monkeypatch, stack, cliniko, tmp_path)
    threshold = float(TEMPLATE["Parameters"]["ChangeFeedLagAlarmMinutes"]["Default"])

    def run() -> tuple[dict, str]:
        (account,) = feed_handler.lambda_handler(SCHEDULED_EVENT, feed_context())["accounts"]
        return account, capsys.readouterr().out

    run()  # caught up
    # Two hours ago the key's user's API key was archived in Cliniko; changes kept coming.
    cliniko.control.revoke_key(cliniko.api_key)
    caught_up_hours_ago(stack, 2)
    new_key = cliniko.api_key.rsplit("-", 1)[0] + "rotated-au1"
    cliniko.control.add_key(new_key)
    cliniko.control.churn(4, kinds=["create"])
    stack.drain()

    account, out = run()
    assert (account["complete"], account["error"]) == (False, "cliniko_Unauthorized")
    # Both alarms README names are fed, as template.yaml selects them.
    assert alarm_sum("ChangeFeedMisconfigurationAlarm", out) == 1
    behind = alarm_max("ChangeFeedBehindAlarm", out)
    assert behind is not None and behind > threshold

    # The new key in the secret (README "Secrets"): the feed needs no replay, its cursor held.
    boto3.client("secretsmanager").put_secret_value(SecretId=KEY_SECRET, SecretString=new_key)
    # The next run still holds the old key (read again at the refusal, within its cache's
    # five minutes): refused, it reads the secret past the cache and stops there, no alarm;
    # the run after, a minute on, uses the new key.
    account, out = run()
    assert (account["complete"], account["error"]) == (False, "cliniko_key_rotated")
    assert alarm_sum("ChangeFeedMisconfigurationAlarm", out) == 0
    account, out = run()
    assert account["complete"] and account["changes"] == 4
    assert alarm_max("ChangeFeedBehindAlarm", out) < 1
    published = [event["detail"]["contact_id"] for event in stack.drain()]
    assert len(published) == len(set(published)) == 4


def test_a_cleanup_rule_stopped_on_a_revoked_key_alarms_and_a_new_run_archives_once(
    deployed,  # noqa: F811 (the fixture imported above)
    cliniko,
    capsys,
) -> None:
    from cliniko_automations.cleanup import handler as cleanup_handler

    from tests.integration.cleanup.test_handler import archived, begin, run_cli

    def step(run_id: str) -> dict:
        return cleanup_handler.lambda_handler(
            {"action": "step", "run_id": run_id, "iterations": 0},
            LambdaContext(function_name="CleanupFunction", timeout_ms=900_000),
        )

    # The nightly live run meets a key archived in Cliniko.
    cliniko.control.revoke_key(cliniko.api_key)
    capsys.readouterr()
    started = begin(dry_run=False)
    assert step(started["run_id"])["next"] == "done"  # the run finishes: no run alarm
    out = capsys.readouterr().out
    assert alarm_sum("CleanupStoppedAlarm", out) == 1
    assert alarm_sum("CleanupMisconfigurationAlarm", out) == 1
    # README "Operating": `cleanup.py status` shows the rule stopped and exits 1.
    status = run_cli("status")
    assert status.returncode == 1, status.stderr
    assert "cleanup.py: rule form-tests stopped: cliniko_Unauthorized" in status.stderr

    # The new key in the secret, then a new run (the next scheduled one does the same).
    new_key = cliniko.api_key.rsplit("-", 1)[0] + "rotated-au1"
    cliniko.control.add_key(new_key)
    boto3.client("secretsmanager").put_secret_value(
        SecretId="tests/cliniko/test-clinic", SecretString=new_key
    )
    ran = run_cli("run", "--local", "--archive")
    assert ran.returncode == 0, ran.stderr
    assert archived(cliniko) == {deployed["test"]}
    archives = [
        r
        for r in cliniko.control.requests()
        if r["method"] == "POST" and r["path"].endswith("/archive")
    ]
    assert [r["status"] for r in archives] == [204]
    assert run_cli("status").returncode == 0


def test_a_form_signing_secret_changed_in_the_provider_first_alarms_and_is_refused_until_put(
    path, monkeypatch, capsys
) -> None:
    from cliniko_automations.common import secrets as secrets_module

    from tests.fixtures.apigw import form_post_event
    from tests.unit.intake_api import samples

    secret = "cliniko-automations/forms/referral-typeform/signing-secret"
    new = "whsec_provider_changed_first_0123"
    ahead = [0.0]
    real_monotonic, real_time = secrets_module.time.monotonic, secrets_module.time.time

    class Clock:  # the secrets module's clocks, moved as the test says: nothing sleeps
        @staticmethod
        def monotonic() -> float:
            return real_monotonic() + ahead[0]

        @staticmethod
        def time() -> float:
            return real_time() + ahead[0]

    monkeypatch.setattr(secrets_module, "time", Clock)
    # The drill's own clock, in seconds, for FormSignatureRefusedAlarm's hours: each delivery's
    # metrics are filed at the time it is sent.
    hour = 3600.0
    emitted: list[tuple[float, str]] = []

    def typeform(signed_with: str, response: str, at: float) -> dict:
        body = samples.typeform_body(email=f"{response}@example.com", response_token=response)
        headers = {
            "Content-Type": "application/json",
            "Typeform-Signature": samples.typeform_signature(body, secret=signed_with),
        }
        capsys.readouterr()
        answer = path.post(form_post_event("referral-typeform", body, headers))
        emitted.append((at, capsys.readouterr().out))
        return answer

    assert typeform(samples.SECRET, "before", 0.2 * hour)["statusCode"] == 202  # warm
    # The provider's settings changed first (README "Secrets" says the other way round).
    refused = typeform(new, "refused", 1.5 * hour)
    out = emitted[-1][1]
    # What the sender sees: a 401 naming the problem; Typeform does not deliver it again.
    assert refused["statusCode"] == 401
    assert json.loads(refused["body"])["message"] == "Missing or invalid signature"
    rejected = [
        (name, dict(dims)) for name, dims, _ in emitted_metrics(out) if name == "SubmissionRejected"
    ]
    assert rejected == [("SubmissionRejected", {"service": "intake", "reason": "unauthenticated"})]
    # One refused delivery is what a forged post to the public route looks like: no alarm,
    # FormSignatureRefusedAlarm's included, for as long as nothing else is refused.
    assert all(
        alarm_sum(name, out) == 0
        for name, resource in RESOURCES.items()
        if resource["Type"] == "AWS::CloudWatch::Alarm"
        and name != "FormSignatureRefusedAlarm"
        and all(m["Namespace"] == DEPLOYED_NAMESPACE for m in alarm_metrics(name))
    )
    assert not alarm_fires("FormSignatureRefusedAlarm", emitted, 2 * hour)
    # A quiet clinic: the next real delivery comes two hours later, refused alike. Its hour is
    # the second in six in which every delivery was refused: the on-call is paged.
    assert typeform(new, "refused-again", 3.4 * hour)["statusCode"] == 401
    assert alarm_fires("FormSignatureRefusedAlarm", emitted, 4 * hour)

    # The fix (README "Operating", Incidents): the provider's value put in the secret. A
    # container that read the secret past its cache for the refused delivery keeps that read
    # 30 s (forged deliveries cannot make more reads than that): within them it still
    # refuses; after them, it takes the new value.
    boto3.client("secretsmanager").put_secret_value(SecretId=secret, SecretString=new)
    assert typeform(new, "within-30-s", 4.1 * hour)["statusCode"] == 401
    ahead[0] += 31
    assert typeform(new, "after", 4.2 * hour)["statusCode"] == 202
    # A forged post in the same hour as a delivery that matched never counts: five hours on,
    # the fix's hour (two refused, one matched) is no second refused hour beside the one
    # before it within the alarm's six, and the alarm is quiet.
    assert typeform("whsec_forged", "forged", 4.3 * hour)["statusCode"] == 401
    assert not alarm_fires("FormSignatureRefusedAlarm", emitted, 9 * hour)
    queued = path.stack.drain(path.stack.queue_url)
    assert len(queued) == 2  # "before" and "after": the refused ones never reached the intake


WEBHOOK_SUBSCRIBER = """\
subscribers:
  - name: crm-sync
    url: https://hooks.example.com/cliniko
    events: [contact.created, contact.updated]
    secret: tests/webhooks/crm-sync
    include_fields: true
"""


def test_a_webhook_subscriber_down_for_a_day_gets_its_replay_after_newer_deliveries(
    aws, cliniko, tmp_path, monkeypatch
) -> None:
    from cliniko_automations.changefeed import handler as feed_handler
    from cliniko_automations.changefeed.subscribers import load_subscribers
    from cliniko_automations.changefeed.webhook_dead_letters import main as letters_cli
    from cliniko_automations.changefeed.webhook_stack import render
    from local_run.webhooks import ApiDestinationStandIn, SignedWebhookReceiver

    from tests.integration.changefeed.stack import (
        SCHEDULED_EVENT,
        create_feed_stack,
        feed_environment,
        new_webhook_secret,
    )
    from tests.integration.changefeed.stack import context as feed_context
    from tests.integration.changefeed.test_webhook_dead_letters import dead_letter
    from tests.integration.erasure.stack import make_audit_table

    stack = create_feed_stack()
    webhooks = tmp_path / "webhooks.yaml"
    webhooks.write_text(WEBHOOK_SUBSCRIBER, encoding="utf-8")
    feed_environment(monkeypatch, stack, cliniko, tmp_path)
    signing = new_webhook_secret()
    boto3.client("secretsmanager").create_secret(
        Name="tests/webhooks/crm-sync", SecretString=signing
    )
    receiver = SignedWebhookReceiver(signing).start()
    try:
        sqs = boto3.client("sqs")
        stand_in = ApiDestinationStandIn(
            render(load_subscribers(webhooks)),
            boto3.client("events"),
            sqs,
            stack.bus,
            {"crm-sync": receiver.url},
        )
        dlq = sqs.create_queue(QueueName="webhook-dead-letters")["QueueUrl"]
        make_audit_table("drill-audit")

        def feed() -> None:
            feed_handler.lambda_handler(SCHEDULED_EVENT, feed_context())

        feed()
        # The receiver is down: yesterday's change ends, after EventBridge's 5 minutes of
        # retries, in the webhook dead-letter queue (WebhookDeadLetterAlarm).
        contact = cliniko.client().create_contact(
            {"first_name": "Drill", "last_name": "Person", "email": "drill@example.com"}
        )
        feed()
        for route in stand_in.routes:
            sqs.purge_queue(QueueUrl=route.queue_url)
        (yesterday,) = stack.drain(stack.webhook_queue_url)
        yesterday["detail"]["webhook"]["timestamp"] = str(int(time.time()) - 86_400)
        dead_letter(sqs, dlq, json.dumps(yesterday))
        # It is back this morning, before anyone replays: today's change is delivered.
        cliniko.control.set_clock(2)  # (a later second than yesterday's, without a sleep)
        cliniko.client().update_contact(contact.id, {"city": "Newtown"})
        feed()
        assert stand_in.deliver_pending() == 1

        # README: fix the receiver, then replay.
        out = io.StringIO()
        argv = ["--dlq-url", dlq, "--bus", stack.bus, "--webhooks-file", str(webhooks)]
        assert letters_cli([*argv, "--audit-table", "drill-audit", "replay", "--all"], out) == 0
        assert stand_in.deliver_pending() == 1
        assert letters_cli([*argv, "list"], io.StringIO()) == 0
        assert (
            sqs.get_queue_attributes(QueueUrl=dlq, AttributeNames=["ApproximateNumberOfMessages"])[
                "Attributes"
            ]["ApproximateNumberOfMessages"]
            == "0"
        )

        today, replayed = receiver.received
        assert today.verified and replayed.verified  # signed afresh: within the tolerance
        # The day-old change arrives last: a receiver keeps each contact's newest by the
        # `updated_at` every body carries, not by arrival.
        assert replayed.payload["data"]["updated_at"] < today.payload["data"]["updated_at"]
        assert replayed.headers["webhook-id"] == yesterday["detail"]["webhook"]["id"]
    finally:
        receiver.stop()


# --- the erasure API's incidents ------------------------------------------------------------

ERASURE_REQUEST = "r-drill-1"
CLINIKO_OUTAGE = {"error_rate": 1.0, "statuses": [500, 502, 503, 504]}


def erase(email: str) -> tuple[int, dict]:
    """The request as the privacy officer sends it (scripts/erasure.py's POST), by its id."""
    from tests.e2e.test_erasure_api import erasure, post

    return post(erasure(request_id=ERASURE_REQUEST, email=email))


def erasure_cli(*argv: str, capsys) -> tuple[int, str]:
    """scripts/erasure.py in local mode, as README "Erasure on request" runs it."""
    from tests.e2e.test_erasure_cli import load_cli

    capsys.readouterr()
    code = load_cli().main(list(argv))
    return code, capsys.readouterr().out


def overdue_check(monkeypatch, capsys, at) -> tuple[dict, str]:
    """The daily ErasureOverdueFunction, run at `at` (its clock moved: nothing sleeps)."""
    from cliniko_automations.erasure import overdue_handler

    monkeypatch.setattr(overdue_handler, "utcnow", lambda: at)
    capsys.readouterr()
    result = overdue_handler.lambda_handler(
        {}, LambdaContext(function_name="ErasureOverdueFunction")
    )
    return result, capsys.readouterr().out


def archives_of(stack, contact_id: str) -> list[int]:
    return [
        r["status"]
        for r in stack.log()
        if r["method"] in ("POST", "DELETE")
        and r["path"]
        .rstrip("/")
        .endswith((f"/contacts/{contact_id}/archive", f"/contacts/{contact_id}"))
    ]


def assert_erased_once_and_the_trail_verifies(stack, contact_id, answer, capsys) -> None:
    from cliniko_automations.erasure.scrub import PLACEHOLDER_FIRST_NAME

    status, body = answer
    assert status == 200 and body["status"] == "completed", body
    stored = stack.contact(contact_id)
    assert stored["archived_at"] and stored["first_name"] == PLACEHOLDER_FIRST_NAME
    archived = [s for s in archives_of(stack, contact_id) if s < 300]
    assert len(archived) == 1, archived  # archived once, whatever was tried before
    head = body["receipt"]["chain_head"]
    code, said = erasure_cli("verify", ERASURE_REQUEST, "--receipt-head", head, capsys=capsys)
    assert code == 0, said


@pytest.mark.parametrize("trouble", ["down", "429"])
def test_cliniko_failing_an_erasure_is_told_to_its_caller_and_alarms_once_it_is_overdue(
    erasure_stack,  # noqa: F811 (the fixture imported above)
    cliniko,
    monkeypatch,
    capsys,
    trouble,
) -> None:
    from datetime import datetime

    from tests.integration.erasure.stack import PERSONAL

    # The key's budget's clock, moved as the drill says: nothing sleeps.
    ahead = budget_clock_moved(monkeypatch)
    contact_id = erasure_stack.seed()
    if trouble == "down":
        cliniko.server.app.faults.configure(CLINIKO_OUTAGE)
    else:  # something else spends the user's 200 a minute; the resets half an hour off
        cliniko.control.set_faults(throttle_window_s=1800)
    capsys.readouterr()
    status, body = erase(PERSONAL["email"])
    out = capsys.readouterr().out
    # The caller is told, at once: failed, nothing changed in Cliniko, send it again by its id.
    assert status == 502 and body["status"] == "failed", body
    assert "send it again with the same request id" in body["message"]
    assert erasure_stack.contact(contact_id)["first_name"] == PERSONAL["first_name"]
    # An answer, not an outage of the erasure API: no alarm for it.
    assert alarm_sum("ErasureUnavailableAlarm", out) == 0

    # Left so: the daily check after its due date feeds OverdueErasuresAlarm, as it selects
    # it, and names the request; `erasure.py status ID` says where it got to.
    due = datetime.fromisoformat(body["due_at"].replace("Z", "+00:00"))
    result, out = overdue_check(monkeypatch, capsys, due + timedelta(hours=1))
    assert result["request_ids"] == [ERASURE_REQUEST]
    threshold = RESOURCES["OverdueErasuresAlarm"]["Properties"]["Threshold"]
    assert alarm_max("OverdueErasuresAlarm", out) > threshold
    code, said = erasure_cli("status", ERASURE_REQUEST, capsys=capsys)
    assert code == 3 and "failed" in said, said  # 3: needs attention (still open)

    # README: once Cliniko answers, the same request id again; the next check is quiet.
    cliniko.control.clear_faults()
    ahead[0] += 66.0  # a 429 holds the key's budget 65 s at most
    answer = erase(PERSONAL["email"])
    assert_erased_once_and_the_trail_verifies(erasure_stack, contact_id, answer, capsys)
    result, out = overdue_check(monkeypatch, capsys, due + timedelta(days=1, hours=1))
    assert result["overdue"] == 0 and alarm_max("OverdueErasuresAlarm", out) == 0


def test_an_erasure_on_a_revoked_key_names_it_alarms_and_the_new_key_finishes_it(
    erasure_stack,  # noqa: F811 (the fixture imported above)
    cliniko,
    capsys,
) -> None:
    from tests.integration.erasure.stack import PERSONAL

    contact_id = erasure_stack.seed()
    cliniko.control.revoke_key(cliniko.api_key)
    capsys.readouterr()
    with captured_logs("erasure") as logs:
        status, body = erase(PERSONAL["email"])
    out = capsys.readouterr().out
    assert status == 502 and body["status"] == "failed", body
    assert "cliniko_Unauthorized" in body["message"] and "revoked" in body["message"]
    # The key breaks the account's intake too: alarmed the same day, as the intake's, the
    # cleanup's and the change feed's refusals are, not a month later as an overdue request.
    assert alarm_sum("ErasureMisconfigurationAlarm", out) == 1
    assert alarm_sum("ErasureUnavailableAlarm", out) == 0
    # Its line names the secret and the fix, never the key.
    told = [line for line in logs.lines if "misconfigured secret" in line]
    assert told and all(erasure_stack.key_secret in line and "Fix: " in line for line in told)
    assert not [line for line in logs.lines if cliniko.api_key in line]
    # README "Secrets": the user's new key in the secret, then the same request id, at once.
    new_key = cliniko.api_key.rsplit("-", 1)[0] + "rotated-au1"
    cliniko.control.add_key(new_key)
    boto3.client("secretsmanager").put_secret_value(
        SecretId=erasure_stack.key_secret, SecretString=new_key
    )
    # The warm function still holds the old key (its five-minute cache): refused once more,
    # it reads the secret past the cache and finds the new key, nothing left to fix.
    status, body = erase(PERSONAL["email"])
    assert status == 502 and "cliniko_key_rotated" in body["message"], body
    assert "revoked" not in body["message"]
    # Nothing left to fix: no alarm for it.
    assert alarm_sum("ErasureMisconfigurationAlarm", capsys.readouterr().out) == 0
    # Sent again, as that answer says: done, with the new key.
    answer = erase(PERSONAL["email"])
    assert_erased_once_and_the_trail_verifies(erasure_stack, contact_id, answer, capsys)


def test_the_audit_table_refusing_an_erasure_alarms_and_the_same_request_id_finishes_it(
    erasure_stack,  # noqa: F811 (the fixture imported above)
    monkeypatch,
    capsys,
) -> None:
    from tests.integration.erasure.stack import PERSONAL

    contact_id = erasure_stack.seed()
    monkeypatch.setenv("AUDIT_TABLE", "no-such-table")  # as an AccessDenied would
    capsys.readouterr()
    status, body = erase(PERSONAL["email"])
    out = capsys.readouterr().out
    assert status == 503, body
    assert body["message"].endswith("send the same request again later")
    # Answered, not raised: ErasureApiErrorsAlarm (Lambda's Errors) never sees it, so the
    # 503 is counted where ErasureUnavailableAlarm selects it.
    assert alarm_sum("ErasureUnavailableAlarm", out) == 1
    assert erasure_stack.contact(contact_id)["archived_at"] is None

    # The table (or the function's policy) back, then the same request id.
    monkeypatch.setenv("AUDIT_TABLE", erasure_stack.table_name)
    answer = erase(PERSONAL["email"])
    assert_erased_once_and_the_trail_verifies(erasure_stack, contact_id, answer, capsys)


def test_an_erasure_api_missing_a_setting_alarms_as_an_unavailable_one_does(
    erasure_stack,  # noqa: F811 (the fixture imported above)
    monkeypatch,
    capsys,
) -> None:
    from tests.integration.erasure.stack import PERSONAL

    monkeypatch.delenv("PEPPER_SECRET_NAME")  # a deployment that lost a variable
    capsys.readouterr()
    status, body = erase(PERSONAL["email"])
    assert (status, body["message"]) == (503, "erasure is not configured"), body
    assert alarm_sum("ErasureUnavailableAlarm", capsys.readouterr().out) == 1
