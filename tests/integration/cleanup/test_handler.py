"""The cleanup step function as the state machine (and the local run's loop) invokes it: moto
(ledger, runs table, key secret), the emulator, and the function's environment as
template.yaml sets it. Begin takes the rule set's lock, steps loop until done, a second start
while a run holds the lock is refused, continue-as-new carries the run on."""

from __future__ import annotations

import datetime as dt
import json
import os
import signal
import subprocess
import sys
import time
from collections import Counter

import boto3
import pytest
from botocore.exceptions import ClientError
from cliniko_automations.cleanup import handler
from cliniko_automations.cleanup.runs import DynamoRuns
from cliniko_automations.cliniko.errors import ConfigurationError
from cliniko_automations.common import aws
from cliniko_automations.common.ledger import DynamoLedger, LedgerEntry
from cliniko_automations.common.operator_cli import Ended
from cliniko_automations.common.settings import SettingsError
from local_run.state_machine import run_loop
from local_run.template import ROOT

from tests.fixtures.apigw import LambdaContext
from tests.fixtures.emulator import before_each_answer
from tests.integration.cleanup.tables import create_cleanup_tables, create_table
from tests.integration.intake_worker.resources import (
    USER_AGENT,
    captured_logs,
    emf_metrics,
    put_secrets,
    write_worker_config,
)

RULES = """\
rules:
  - name: form-tests
    account: test-clinic
    where:
      - {field: email, op: like, value: "%@example.com"}
"""
EXECUTION = "arn:aws:states:eu-west-1:123456789012:execution:stack-cleanup:first"


def context() -> LambdaContext:
    return LambdaContext(function_name="CleanupFunction", timeout_ms=900_000)


def invoke(event):
    return handler.lambda_handler(event, context())


def begin(execution: str = EXECUTION, **fields):
    return invoke({"action": "begin", "execution": execution, **fields})


@pytest.fixture
def deployed(aws, cliniko, tmp_path, monkeypatch):
    """The function's environment and what it reads: returns the seeded contacts' ids."""
    ledger_table, runs_table = create_cleanup_tables()
    put_secrets({"tests/cliniko/test-clinic": cliniko.api_key})
    rules = tmp_path / "cleanup_rules.yaml"
    rules.write_text(RULES, encoding="utf-8")
    for name, value in {
        "LEDGER_TABLE": ledger_table,
        "CLEANUP_RUNS_TABLE": runs_table,
        "CLINIKO_USER_AGENT": USER_AGENT,
        "CLINIKO_BASE_URL": cliniko.base_url_template,
        "CLINIKO_ACCOUNTS_FILE": str(write_worker_config(tmp_path)),
        "CLEANUP_RULES_FILE": str(rules),
    }.items():
        monkeypatch.setenv(name, value)
    monkeypatch.delenv("CLEANUP_DRY_RUN", raising=False)
    test_id, real_id = cliniko.control.seed(
        contacts=[
            {"first_name": "Tess", "last_name": "Tester", "email": "tess.tester@example.com"},
            {"first_name": "Rhea", "last_name": "Real", "email": "rhea.real@clinic.example"},
        ]
    )
    ledger = DynamoLedger(boto3.client("dynamodb"), ledger_table)
    now = dt.datetime.now(dt.UTC).isoformat()
    for contact_id in (test_id, real_id):
        ledger.record(LedgerEntry(contact_id, "test-clinic", "test-json", "sub-1", now))
    return {
        "test": test_id,
        "real": real_id,
        "runs": DynamoRuns(boto3.client("dynamodb"), runs_table),
    }


def archived(cliniko) -> set[str]:
    return {c["id"] for c in cliniko.control.contacts() if c["archived_at"]}


def test_a_scheduled_run_is_a_dry_run_unless_configured(deployed, cliniko, capsys):
    # The schedule's input: nothing chosen.
    started = begin(dry_run=None, rules=None, run_id=None)
    assert started["next"] == "step" and started["dry_run"] is True

    answer = invoke({"action": "step", "run_id": started["run_id"], "iterations": 0})

    assert answer["next"] == "done" and answer["iterations"] == 1
    assert (answer["matched"], answer["archived"]) == (1, 0)
    assert archived(cliniko) == set()
    runs = deployed["runs"]
    assert runs.contact_ids(started["run_id"], "matched") == {"form-tests": [deployed["test"]]}
    assert runs.load(started["run_id"]).status == "finished"
    output = capsys.readouterr().out
    assert emf_metrics(output)["CleanupMatched"] == 1
    # Ids and counts only: nothing of the person reaches the logs.
    for value in ("Tess", "Tester", "tess.tester@example.com", "example.com"):
        assert value not in output


def test_a_dry_run_asked_for_on_a_stack_configured_to_archive_archives_nothing(
    deployed, cliniko, monkeypatch
):
    # The operator's planning run (`"dry_run": true`) on a stack whose schedule archives: the
    # event's choice wins over the stack's, or the plan would be the archiving it was to plan.
    monkeypatch.setenv("CLEANUP_DRY_RUN", "false")
    started = begin(dry_run=True)
    assert started["dry_run"] is True
    answer = invoke({"action": "step", "run_id": started["run_id"], "iterations": 0})
    assert (answer["matched"], answer["archived"]) == (1, 0)
    assert archived(cliniko) == set()


def test_the_local_loop_runs_a_configured_live_run_to_the_end(deployed, cliniko, monkeypatch):
    monkeypatch.setenv("CLEANUP_DRY_RUN", "false")
    result = run_loop(invoke)
    assert result.status == "finished" and result.steps == 1
    assert archived(cliniko) == {deployed["test"]}
    report = deployed["runs"].contact_ids(result.run_id, "archived")
    assert report == {"form-tests": [deployed["test"]]}


def test_the_local_loop_repeats_a_begin_that_failed(deployed, cliniko, monkeypatch):
    # As the definition's Retry of Begin: one throttle no longer ended a local run.
    monkeypatch.setenv("CLEANUP_DRY_RUN", "false")
    failures, pauses = ["throttled"], []

    def throttled_once(event):
        if event["action"] == "begin" and failures:
            raise RuntimeError(failures.pop())
        return invoke(event)

    result = run_loop(throttled_once, sleep=pauses.append)
    assert result.status == "finished" and pauses == [10]
    assert archived(cliniko) == {deployed["test"]}


def test_the_local_loop_repeats_a_failed_step_after_the_definition_s_pauses(
    deployed, cliniko, monkeypatch
):
    # As the definition's Retry of Step (60 s, twice as long each time): repeated at once, a
    # table throttled for a few seconds spent the three retries and stopped the run.
    monkeypatch.setenv("CLEANUP_DRY_RUN", "false")
    failures, pauses, told = ["throttled", "throttled"], [], []

    def throttled_twice(event):
        if event["action"] == "step" and failures:
            raise RuntimeError(failures.pop())
        return invoke(event)

    result = run_loop(throttled_twice, sleep=pauses.append, on_retry=told.append)
    assert result.status == "finished" and result.failed_steps == 2
    assert pauses == told == [60, 120]
    assert archived(cliniko) == {deployed["test"]}


def test_a_step_failing_past_its_retries_releases_the_run(deployed, cliniko):
    pauses: list[float] = []

    def always_failing(event):
        if event["action"] == "step":
            raise RuntimeError("broken")
        return invoke(event)

    with pytest.raises(RuntimeError):
        run_loop(always_failing, sleep=pauses.append)
    assert pauses == [60, 120, 240]
    run_id = deployed["runs"].latest("cleanup_rules")
    assert deployed["runs"].load(run_id).status == "failed"
    assert begin(dry_run=True)["next"] == "step"


def test_a_continue_as_new_whose_begin_keeps_failing_hands_the_run_back(deployed):
    # The successor's begin failed through its retries: the run stayed running, its lock
    # held by the execution that handed it over, every start refused for an hour.
    def successor_throttled(event):
        if event["action"] == "begin" and event.get("run_id"):
            raise RuntimeError("throttled")
        if event["action"] == "step":
            return {"run_id": event["run_id"], "iterations": 1, "next": "continue"}
        return invoke(event)

    with pytest.raises(RuntimeError):
        run_loop(successor_throttled, sleep=lambda _: None)

    run_id = deployed["runs"].latest("cleanup_rules")
    assert deployed["runs"].load(run_id).status == "failed"
    assert deployed["runs"].holder("cleanup_rules") is None
    assert begin(EXECUTION + "-next")["next"] == "step"


def test_a_hand_back_is_refused_when_another_execution_took_the_run_on(deployed):
    # A start retried after its answer was lost made two successors: the one that failed
    # leaves the run to the one going on.
    started = begin()
    invoke({"action": "begin", "execution": EXECUTION + "-live", "run_id": started["run_id"]})
    hand_back = {"action": "release", "run_id": started["run_id"], "execution": EXECUTION}
    assert invoke(hand_back)["next"] == "refused"
    assert deployed["runs"].load(started["run_id"]).status == "running"


# Ctrl-C, and SIGTERM or SIGHUP as `cleanup.py --local` (run_tool) raises them.
STOPPED_BY_HAND = [KeyboardInterrupt(), Ended(signal.SIGTERM), Ended(signal.SIGHUP)]


@pytest.mark.parametrize("stop", STOPPED_BY_HAND, ids=["ctrl-c", "sigterm", "sighup"])
def test_a_local_loop_stopped_by_hand_releases_its_run(deployed, cliniko, stop):
    # Ctrl-C during a local run: its lock would otherwise refuse every run of the rule set
    # for an hour. A `timeout` or a closed terminal kept it so.
    def interrupted(event):
        if event["action"] == "step":
            raise stop
        return invoke(event)

    with pytest.raises(type(stop)):
        run_loop(interrupted)
    assert begin(dry_run=True)["next"] == "step"


@pytest.mark.parametrize("stop", STOPPED_BY_HAND, ids=["ctrl-c", "sigterm", "sighup"])
def test_a_local_loop_stopped_as_its_begin_answers_releases_its_run(deployed, cliniko, stop):
    # Stopped once the begin had taken the run and its lock but before its answer came back
    # (the handler flushing its metrics): nothing released them, every start refused for an
    # hour, and the run read "running".
    def interrupted(event):
        answer = invoke(event)
        if event["action"] == "begin":
            raise stop
        return answer

    with pytest.raises(type(stop)):
        run_loop(interrupted)
    assert deployed["runs"].load(deployed["runs"].latest("cleanup_rules")).status == "failed"
    assert begin(dry_run=True)["next"] == "step"


def test_a_second_start_while_a_run_holds_the_lock_is_refused(deployed, cliniko):
    first = begin(dry_run=False)
    second = begin(EXECUTION + "-2", dry_run=False)
    assert second == {"next": "refused", "running": first["run_id"]}
    # The first run goes on and, once done, frees the rule set.
    assert invoke({"action": "step", "run_id": first["run_id"], "iterations": 0})["next"] == "done"
    assert begin(EXECUTION + "-3", dry_run=True)["next"] == "step"
    archives = Counter(r["path"] for r in cliniko.control.requests() if r["method"] == "POST")
    assert list(archives.values()) == [1]


def test_a_retried_last_step_of_a_finished_run_is_done_again(deployed, cliniko):
    started = begin(dry_run=False)
    step = {"action": "step", "run_id": started["run_id"], "iterations": 0}
    assert invoke(step)["next"] == "done"
    cliniko.control.clear_requests()
    # Step Functions retries a step whose answer it lost: the run is over, nothing is redone.
    assert invoke(step) == {"run_id": started["run_id"], "iterations": 0, "next": "done"}
    assert cliniko.control.requests() == []
    # Nor is a finished run carried into another execution: it would only hold the lock.
    again = invoke({"action": "begin", "execution": EXECUTION + "-2", "run_id": started["run_id"]})
    assert again["next"] == "refused"
    assert deployed["runs"].holder("cleanup_rules") is None


def test_a_retried_last_step_frees_only_its_own_run_s_lock(deployed):
    runs = deployed["runs"]
    first = begin()
    step = {"action": "step", "run_id": first["run_id"], "iterations": 0}
    assert invoke(step)["next"] == "done"
    # Its answer lost after the run was saved finished but before the lock was freed.
    assert runs.acquire("cleanup_rules", first["run_id"], EXECUTION)
    assert invoke(step)["next"] == "done"
    assert runs.holder("cleanup_rules") is None
    # Retried again once another run holds the lock: that run's lock stays its own, and a
    # third start is still refused rather than run beside it.
    second = begin(EXECUTION + "-2")
    assert invoke(step)["next"] == "done"
    assert runs.holder("cleanup_rules")["run_id"] == second["run_id"]
    assert begin(EXECUTION + "-3")["next"] == "refused"


def test_a_hand_back_goes_through_once_the_successor_s_lease_is_dead(deployed, monkeypatch):
    started = begin()
    invoke({"action": "begin", "execution": EXECUTION + "-live", "run_id": started["run_id"]})
    # The successor died without renewing its lease, which ran out.
    monkeypatch.setattr("cliniko_automations.cleanup.runs.LEASE_SECONDS", -1)
    assert deployed["runs"].renew("cleanup_rules", started["run_id"])
    hand_back = {"action": "release", "run_id": started["run_id"], "execution": EXECUTION}
    assert invoke(hand_back)["next"] == "done"
    assert deployed["runs"].load(started["run_id"]).status == "failed"


def test_a_lock_left_by_a_dead_run_expires(deployed, monkeypatch):
    started_at = time.time()
    first = begin()
    # README "Scheduled cleanup": a one-hour lease (longer than a step, at most 15 minutes,
    # and a wait after a 429), and the run's report kept for 90 days.
    lease_until = deployed["runs"].holder("cleanup_rules")["lease_until"]
    assert started_at + 3600 - 1 <= lease_until <= time.time() + 3600
    item = boto3.client("dynamodb").get_item(
        TableName=os.environ["CLEANUP_RUNS_TABLE"],
        Key={"pk": {"S": f"run#{first['run_id']}"}, "sk": {"S": "state"}},
    )["Item"]
    assert int(item["expiration"]["N"]) - int(started_at) in range(90 * 86400 - 1, 90 * 86400 + 5)
    assert begin(EXECUTION + "-2")["next"] == "refused"
    runs = deployed["runs"]
    holder = runs.holder("cleanup_rules")
    assert holder["run_id"] == first["run_id"]
    # Past the lease (the dead run renewed it no more): the next start takes over.
    monkeypatch.setattr("cliniko_automations.cleanup.runs.LEASE_SECONDS", -1)
    assert runs.renew("cleanup_rules", first["run_id"])
    taken = begin(EXECUTION + "-3")
    assert taken["next"] == "step" and taken["run_id"] != first["run_id"]
    # The old run finds its lock gone and stops rather than running beside the new one.
    assert invoke({"action": "step", "run_id": first["run_id"], "iterations": 0}) == {
        "run_id": first["run_id"],
        "next": "refused",
    }


def test_continue_as_new_carries_the_run_into_a_fresh_execution(deployed, monkeypatch):
    monkeypatch.setenv("STEPS_PER_EXECUTION", "1")
    monkeypatch.setenv("STOP_MARGIN_SECONDS", "900")  # every step is out of time at once
    started = begin()
    answer = invoke({"action": "step", "run_id": started["run_id"], "iterations": 0})
    assert answer["next"] == "continue"
    # The new execution's begin carries the run id: same run, same lock.
    again = invoke({"action": "begin", "execution": EXECUTION + "-2", "run_id": started["run_id"]})
    assert again == {"run_id": started["run_id"], "iterations": 0, "next": "step"}
    assert deployed["runs"].holder("cleanup_rules")["execution"] == EXECUTION + "-2"


def test_two_executions_of_one_run_never_both_go_on(deployed, cliniko):
    # A second execution naming a running run (a start retried after its answer was lost, a
    # hand-made begin) takes the lock over; the first stops at its next step rather than
    # archive everything a second time beside it.
    started = begin(dry_run=False)
    second = EXECUTION + "-again"
    again = invoke({"action": "begin", "execution": second, "run_id": started["run_id"]})
    assert again["next"] == "step"
    first_step = {"action": "step", "run_id": started["run_id"], "iterations": 0}
    assert invoke({**first_step, "execution": EXECUTION}) == {
        "run_id": started["run_id"],
        "next": "refused",
    }
    assert invoke({**first_step, "execution": second})["next"] == "done"
    archives = Counter(r["path"] for r in cliniko.control.requests() if r["method"] == "POST")
    assert archives and set(archives.values()) == {1}


def test_a_begin_retried_after_its_answer_was_lost_goes_on_with_its_run(deployed, cliniko):
    # Step Functions repeats a begin whose answer it lost: the repeat was refused by the
    # lock its first attempt took, and that run stayed `running` with no execution stepping
    # it, every start refused for an hour.
    first = begin(dry_run=False)
    again = begin(dry_run=False)
    assert again == first
    assert deployed["runs"].holder("cleanup_rules")["execution"] == EXECUTION
    step = {"action": "step", "run_id": first["run_id"], "iterations": 0, "execution": EXECUTION}
    assert invoke(step)["next"] == "done"
    assert archived(cliniko) == {deployed["test"]}
    # The run is over: a begin of the same execution now starts nothing.
    assert begin(dry_run=False)["next"] == "refused"
    assert deployed["runs"].holder("cleanup_rules") is None


def test_a_begin_that_cannot_write_its_run_frees_the_lock(deployed):
    # The run's state is written after the lock is taken; a throttled write failed the
    # execution with the lock held by a run that did not exist: no start for an hour.
    emitter, event = (
        aws.client("dynamodb", config=aws.FAIL_FAST).meta.events,
        "before-parameter-build.dynamodb.PutItem",
    )

    def throttle_the_run_state(params, **_: object) -> None:
        if params.get("Item", {}).get("sk", {}).get("S") == "state":
            raise ClientError(
                {"Error": {"Code": "ProvisionedThroughputExceededException", "Message": "slow"}},
                "PutItem",
            )

    emitter.register(event, throttle_the_run_state, unique_id="slow")
    try:
        with pytest.raises(ClientError):
            begin()
    finally:
        emitter.unregister(event, unique_id="slow")
    assert deployed["runs"].holder("cleanup_rules") is None
    # The state machine's retry of the begin (or any later start) begins the run.
    assert begin()["next"] == "step"


def test_a_failed_run_is_released_and_marked(deployed):
    started = begin()
    assert invoke({"action": "release", "run_id": started["run_id"]})["next"] == "done"
    assert deployed["runs"].holder("cleanup_rules") is None
    # It reads as failed (`cleanup.py status` and `--follow` stop on it), and stays over.
    assert deployed["runs"].load(started["run_id"]).status == "failed"
    again = invoke({"action": "begin", "execution": EXECUTION + "-2", "run_id": started["run_id"]})
    assert again["next"] == "refused"
    assert begin(EXECUTION + "-3")["next"] == "step"


def test_a_release_from_the_failing_execution_marks_its_run_failed(deployed):
    started = begin()
    release = {"action": "release", "run_id": started["run_id"], "execution": EXECUTION}
    assert invoke(release)["next"] == "done"
    assert deployed["runs"].holder("cleanup_rules") is None
    assert deployed["runs"].load(started["run_id"]).status == "failed"


def test_a_late_release_leaves_a_finished_run_finished(deployed):
    started = begin(dry_run=False)
    step = {"action": "step", "run_id": started["run_id"], "iterations": 0}
    assert invoke({**step, "execution": EXECUTION})["next"] == "done"

    release = {"action": "release", "run_id": started["run_id"], "execution": EXECUTION}
    assert invoke(release)["next"] == "done"

    assert deployed["runs"].load(started["run_id"]).status == "finished"


def test_a_release_from_an_execution_that_no_longer_holds_the_run_changes_nothing(deployed):
    # Another execution took the run on (continue-as-new): the old one's release is stale.
    started = begin(dry_run=False)
    second = EXECUTION + "-again"
    invoke({"action": "begin", "execution": second, "run_id": started["run_id"]})

    stale = {"action": "release", "run_id": started["run_id"], "execution": EXECUTION}
    assert invoke(stale)["next"] == "refused"

    assert deployed["runs"].load(started["run_id"]).status == "running"
    assert deployed["runs"].holder("cleanup_rules")["execution"] == second
    step = {"action": "step", "run_id": started["run_id"], "iterations": 0, "execution": second}
    assert invoke(step)["next"] == "done"
    assert deployed["runs"].load(started["run_id"]).status == "finished"


@pytest.mark.parametrize("stop", STOPPED_BY_HAND, ids=["ctrl-c", "sigterm", "sighup"])
def test_ctrl_c_during_a_continue_as_new_begin_releases_the_run(deployed, stop):
    # The local loop's stop by hand names the run alone: the execution being begun may not
    # hold the lock yet, and a release naming it was refused, the lock held for an hour.
    begins = []

    def invoke_until_ctrl_c(event):
        if event["action"] == "begin":
            begins.append(event)
            if len(begins) == 2:
                raise stop
        if event["action"] == "step":  # as a step answers once its execution's share is done
            return {"run_id": event["run_id"], "iterations": 1, "next": "continue"}
        return invoke(event)

    with pytest.raises(type(stop)):
        run_loop(invoke_until_ctrl_c)

    run_id = deployed["runs"].latest("cleanup_rules")
    assert deployed["runs"].load(run_id).status == "failed"
    assert deployed["runs"].holder("cleanup_rules") is None


def test_a_release_of_an_unknown_run_is_a_clear_answer(deployed):
    answer = invoke({"action": "release", "run_id": "no-such-run", "execution": EXECUTION})
    assert answer == {"error": "no such run", "run_id": "no-such-run", "next": "invalid"}


@pytest.mark.parametrize(
    ("event", "message"),
    [
        (
            {"action": "begin", "execution": EXECUTION, "dry_run": "no"},
            "dry_run must be true or false",
        ),
        (
            {"action": "begin", "execution": EXECUTION, "rules": "form-tests"},
            "rules must be a non-empty list of rule names",
        ),
        (
            {"action": "begin", "execution": EXECUTION, "rules": ["nope"]},
            "no cleanup rule named nope",
        ),
        ({"action": "step", "iterations": 0}, "run_id must be a non-empty string"),
        ({"action": "step", "run_id": "x", "iterations": -1}, "iterations must be a whole number"),
        ({"dry_run": True}, "action must be begin, step or release"),
        (["dry_run"], "the event must be a JSON object"),
    ],
)
def test_a_bad_invocation_gets_a_clear_answer_and_changes_nothing(
    deployed, cliniko, event, message
):
    cliniko.control.clear_requests()
    answer = invoke(event)
    assert answer == {"error": message, "next": "invalid"}
    assert cliniko.control.requests() == []
    assert deployed["runs"].holder("cleanup_rules") is None


def test_misconfiguration_fails_the_step_naming_the_setting(deployed, monkeypatch):
    # A run that cannot work must fail (the state machine's Catch, the alarms), not idle.
    monkeypatch.delenv("CLEANUP_RUNS_TABLE")
    with pytest.raises(SettingsError, match="CLEANUP_RUNS_TABLE"):
        begin()


def test_a_missing_user_agent_fails_the_step_naming_it(deployed, cliniko, monkeypatch):
    started = begin()
    monkeypatch.delenv("CLINIKO_USER_AGENT")
    cliniko.control.clear_requests()
    with pytest.raises(ConfigurationError, match="CLINIKO_USER_AGENT"):
        invoke({"action": "step", "run_id": started["run_id"], "iterations": 0})
    assert cliniko.control.requests() == []


def _errors(logs) -> list[dict]:
    lines = [json.loads(line) for line in logs.lines if line.startswith("{")]
    return [line for line in lines if line.get("level") == "ERROR"]


def test_a_key_on_the_wrong_shard_is_told_with_its_fix(deployed, cliniko, capsys):
    wrong_shard = cliniko.api_key.rsplit("-", 1)[0] + "-uk2"
    boto3.client("secretsmanager").put_secret_value(
        SecretId="tests/cliniko/test-clinic", SecretString=wrong_shard
    )
    started = begin()
    with captured_logs("cleanup") as logs:
        answer = invoke({"action": "step", "run_id": started["run_id"]})
    assert answer["next"] == "done"  # refused for good: the rule stops, it is not retried
    (progress,) = deployed["runs"].load(started["run_id"]).rules
    assert progress.error == "cliniko_Unauthorized"
    (line,) = _errors(logs)
    assert line["message"].startswith(
        "misconfigured secret 'tests/cliniko/test-clinic' (cliniko_accounts.yaml "
        "accounts.test-clinic.api_key_secret): Cliniko refused the API key on shard uk2 (401)."
    )
    assert line["reason"] == "cliniko_unauthorized"
    assert emf_metrics(capsys.readouterr().out)["Misconfigured"] == 1
    assert wrong_shard not in "".join(logs.lines)


@pytest.mark.parametrize("refused", ["find", "archive"])
def test_a_key_rotated_within_the_cache_is_used_by_the_next_step_without_an_alarm(
    deployed, cliniko, monkeypatch, capsys, refused
):
    # README "Secrets": the new key put in the secret, then the old one archived in Cliniko,
    # within the five minutes a warm cleanup keeps the old one: refused at the batch's find
    # (the key cached by a dry run) or at its first archive.
    new_key = cliniko.api_key.rsplit("-", 1)[0] + "new-au1"

    def rotate() -> None:
        cliniko.server.app.add_key(new_key)
        boto3.client("secretsmanager").put_secret_value(
            SecretId="tests/cliniko/test-clinic", SecretString=new_key
        )
        cliniko.server.app.revoke_key(cliniko.api_key)

    if refused == "find":
        planned = begin(dry_run=True)
        invoke({"action": "step", "run_id": planned["run_id"]})
        rotate()
    else:
        rotated: list[str] = []

        def rotate_at_the_first_archive(method: str, _body: bytes) -> None:
            if method == "POST" and not rotated:
                rotated.append(method)
                rotate()

        before_each_answer(cliniko.server, monkeypatch, rotate_at_the_first_archive)
    monkeypatch.setenv("CLEANUP_DRY_RUN", "false")
    started = begin(execution=EXECUTION + "-live", dry_run=False)
    capsys.readouterr()

    with captured_logs("cleanup") as logs:
        answer = invoke({"action": "step", "run_id": started["run_id"]})
    assert (answer["next"], answer["wait_seconds"]) == ("wait", 1)
    assert _errors(logs) == []
    assert "Misconfigured" not in emf_metrics(capsys.readouterr().out)
    answer = invoke({"action": "step", "run_id": started["run_id"]})
    assert answer["next"] == "done"
    (progress,) = deployed["runs"].load(started["run_id"]).rules
    assert (progress.archived, progress.failed, progress.error) == (1, 0, None)
    assert archived(cliniko) == {deployed["test"]}


def test_a_secret_outside_the_prefix_stops_the_rule_with_its_fix(deployed, monkeypatch, capsys):
    monkeypatch.setenv("SECRETS_PREFIX", "cliniko-automations/")
    started = begin()
    with captured_logs("cleanup") as logs:
        answer = invoke({"action": "step", "run_id": started["run_id"]})
    assert answer["next"] == "done"  # for good: its rules stop, the other accounts' go on
    (progress,) = deployed["runs"].load(started["run_id"]).rules
    assert progress.stopped and progress.error == "misconfigured_SecretOutsidePrefix"
    (line,) = _errors(logs)
    assert line["reason"] == "secret_outside_prefix"
    assert "SecretsPrefix 'cliniko-automations/'" in line["message"]
    assert emf_metrics(capsys.readouterr().out)["Misconfigured"] == 1


def test_the_answers_are_json(deployed):
    started = begin()
    assert json.loads(json.dumps(started))
    assert json.loads(json.dumps(invoke({"action": "step", "run_id": started["run_id"]})))


def run_cli(*args: str, timeout: float = 120) -> subprocess.CompletedProcess[str]:
    return subprocess.run(  # noqa: S603 - our own CLI
        [sys.executable, str(ROOT / "scripts" / "cleanup.py"), *args],
        env=dict(os.environ),
        capture_output=True,
        text=True,
        timeout=timeout,
    )


def test_the_cleanup_cli_plans_runs_and_shows_status_locally(deployed, cliniko):
    planned = run_cli("--json", "plan", "--local")
    assert planned.returncode == 0, planned.stderr
    plan = json.loads(planned.stdout)
    assert plan["dry_run"] is True and plan["status"] == "finished"
    (rule,) = plan["rules"]
    assert (rule["rule"], rule["matched"], rule["archived"]) == ("form-tests", 1, 0)
    assert plan["matched_ids"] == {"form-tests": [deployed["test"]]}
    assert archived(cliniko) == set()
    # `run` is a dry run too unless told --archive (README "Scheduled cleanup").
    unarmed = run_cli("--json", "run", "--local")
    assert unarmed.returncode == 0, unarmed.stderr
    assert json.loads(unarmed.stdout)["dry_run"] is True
    assert archived(cliniko) == set()

    ran = run_cli("run", "--local", "--archive")
    assert ran.returncode == 0, ran.stderr
    assert archived(cliniko) == {deployed["test"]}
    shown = run_cli("status")
    assert shown.returncode == 0, shown.stderr
    assert "form-tests" in shown.stdout and "[" + "#" * 30 + "] 100.0%" in shown.stdout
    # Ids and counts only.
    assert "Tess" not in shown.stdout + shown.stderr + planned.stdout
    # The step's JSON log lines, not Python's warning (with its source line) that a begin,
    # which counts nothing, published no metrics.
    assert "Warning" not in planned.stderr + ran.stderr, planned.stderr


def test_a_table_that_is_not_there_is_one_line_naming_it(deployed, monkeypatch):
    # Two tables, and AWS's answer names neither ("Requested resource not found").
    monkeypatch.setenv("LEDGER_TABLE", "ledger-typo")
    backfill = run_cli("backfill-ledger")
    assert backfill.returncode == 1
    (line,) = backfill.stderr.splitlines()
    assert line.startswith(
        "cleanup.py: ResourceNotFoundException: An error occurred (ResourceNotFoundException) "
        "when calling the DescribeTable operation: Requested resource not found"
    )
    assert line.endswith(" (table ledger-typo)")


def test_a_rules_file_that_is_not_there_is_one_line_naming_it(deployed, monkeypatch, tmp_path):
    # Runs are found by the rules file's name: a path mistyped read "no cleanup run yet".
    assert run_cli("plan", "--local").returncode == 0
    missing = tmp_path / "cleanup_rulez.yaml"
    monkeypatch.setenv("CLEANUP_RULES_FILE", str(missing))
    shown = run_cli("status")
    assert shown.returncode == 1
    assert shown.stderr.splitlines() == [
        f"cleanup.py: ConfigError: {missing}: no such rules file (CLEANUP_RULES_FILE)"
    ]


def table_items(*names: str) -> list[list[dict]]:
    dynamodb = boto3.client("dynamodb")
    return [dynamodb.scan(TableName=name)["Items"] for name in names]


# Another of the stack's tables for each table setting. Before: the change feed's table
# (keyed `pk`) for CLEANUP_RUNS_TABLE took a local run's lock and checkpoints; for
# LEDGER_TABLE, a local run began (its lock taken in the runs table) and then failed, and a
# backfill read "0 ledger entries made active", exit 0; the runs table for LEDGER_TABLE was a
# status as if all were well; the idempotency table (keyed `id`) for CLEANUP_RUNS_TABLE left
# `run --local --archive` going past 5 minutes.
@pytest.mark.parametrize(
    ("setting", "given", "kind"),
    [
        ("LEDGER_TABLE", "runs", "the intake's ledger (keyed pk, sk)"),
        ("LEDGER_TABLE", "feed", "the intake's ledger (keyed pk)"),
        ("LEDGER_TABLE", "idempotency", "the intake's ledger (keyed id)"),
        ("CLEANUP_RUNS_TABLE", "feed", "the cleanup runs table (keyed pk)"),
        ("CLEANUP_RUNS_TABLE", "idempotency", "the cleanup runs table (keyed id)"),
        ("CLEANUP_RUNS_TABLE", "ledger", "the cleanup runs table (keyed contact_id, indexes"),
    ],
)
def test_a_table_of_another_kind_is_one_line_and_nothing_is_written(
    deployed, cliniko, monkeypatch, setting, given, kind
):
    assert run_cli("plan", "--local").returncode == 0
    tables = {
        "ledger": os.environ["LEDGER_TABLE"],
        "runs": os.environ["CLEANUP_RUNS_TABLE"],
        "feed": create_table("ChangeFeedTable", "cleanup-change-feed"),
        "idempotency": create_table("IdempotencyTable", "cleanup-idempotency"),
    }
    monkeypatch.setenv(setting, tables[given])
    before = table_items(*tables.values())

    output = {"LEDGER_TABLE": "LedgerTableName", "CLEANUP_RUNS_TABLE": "CleanupRunsTableName"}
    for command in (["status"], ["run", "--local", "--archive"], ["backfill-ledger"]):
        ran = run_cli(*command)
        assert ran.returncode == 1, command
        (line,) = ran.stderr.splitlines()
        assert line.startswith(f"cleanup.py: {setting}: table {tables[given]} is not {kind}")
        assert line.endswith(f"take it from the stack's {output[setting]} output")
    assert table_items(*tables.values()) == before
    assert archived(cliniko) == set()


def test_a_plan_whose_rule_stopped_on_a_refused_key_fails(deployed, cliniko, monkeypatch):
    boto3.client("secretsmanager").put_secret_value(
        SecretId="tests/cliniko/test-clinic", SecretString="MS0xnosuchkey0123456789-au1"
    )
    # An environment set by hand, without the namespace Powertools' metrics need: the
    # deployed one, not a traceback after the run.
    monkeypatch.delenv("POWERTOOLS_METRICS_NAMESPACE")
    planned = run_cli("plan", "--local")
    assert planned.returncode == 1, planned.stderr
    assert "Traceback" not in planned.stderr
    # The rule asked nothing: no 100 % bar for it.
    (line,) = [line for line in planned.stdout.splitlines() if "form-tests" in line]
    assert "stopped" in line and "100.0%" not in line and "(cliniko_Unauthorized)" in line
    assert "cleanup.py: rule form-tests stopped: cliniko_Unauthorized" in planned.stderr


def test_the_cli_refuses_unknown_or_no_rule_names_before_starting(deployed, cliniko):
    assert run_cli("run", "--local", "--archive").returncode == 0  # an earlier run to mistake
    archived_before = archived(cliniko)
    runs_before = deployed["runs"].latest("cleanup_rules")

    typo = run_cli("run", "--local", "--archive", "--rules", "form-test")
    assert typo.returncode == 2, typo.stderr
    assert "no cleanup rule named form-test" in typo.stderr and "form-tests" in typo.stderr
    assert typo.stdout == ""  # not the earlier run's report
    empty = run_cli("run", "--local", "--rules", " , ")
    assert empty.returncode == 2 and "names no rule" in empty.stderr
    assert deployed["runs"].latest("cleanup_rules") == runs_before
    assert archived(cliniko) == archived_before


def test_a_local_run_while_another_run_holds_the_lock_exits_3(deployed, cliniko):
    # README "Scheduled cleanup": a start refused while another run goes exits 3.
    first = begin(dry_run=False)
    refused = run_cli("run", "--local", "--archive")
    assert refused.returncode == 3, refused.stderr
    assert "another run of the rule set is going" in refused.stderr
    assert deployed["runs"].holder("cleanup_rules")["run_id"] == first["run_id"]
    assert archived(cliniko) == set()


def test_the_cli_starts_no_execution_for_an_unknown_rule(deployed, monkeypatch):
    sfn = boto3.client("stepfunctions")
    machine = sfn.create_state_machine(
        name="cleanup",
        definition=json.dumps({"StartAt": "Done", "States": {"Done": {"Type": "Succeed"}}}),
        roleArn="arn:aws:iam::123456789012:role/cleanup",
    )["stateMachineArn"]
    monkeypatch.setenv("CLEANUP_STATE_MACHINE_ARN", machine)

    planned = run_cli("plan", "--rules", "no-such-rule")

    assert planned.returncode == 2, planned.stderr
    assert "no cleanup rule named no-such-rule" in planned.stderr
    assert sfn.list_executions(stateMachineArn=machine)["executions"] == []


def test_the_cli_names_environment_mistakes_in_one_line(deployed, tmp_path, monkeypatch):
    broken = tmp_path / "rules.yaml"
    broken.write_text("rules: [{name: x}]\n", encoding="utf-8")
    monkeypatch.setenv("CLEANUP_RULES_FILE", str(broken))
    bad_rules = run_cli("plan", "--local", "--rules", "x")
    assert bad_rules.returncode == 1
    assert bad_rules.stderr.startswith(f"cleanup.py: ConfigError: {broken}")
    assert "Traceback" not in bad_rules.stderr

    # Told at once, not after the loop's begin was repeated for over a minute (the bound is
    # against that wait, not a speed measurement).
    all_rules = run_cli("plan", "--local", timeout=45)
    assert all_rules.returncode == 1
    assert all_rules.stderr.startswith(f"cleanup.py: ConfigError: {broken}")

    monkeypatch.delenv("CLEANUP_RUNS_TABLE")
    no_table = run_cli("status")
    assert no_table.returncode == 1
    (line,) = no_table.stderr.splitlines()
    assert line.startswith("cleanup.py: SettingsError") and "CLEANUP_RUNS_TABLE" in line
    monkeypatch.delenv("CLEANUP_RULES_FILE")
    not_local = run_cli("plan", "--local", timeout=45)
    assert not_local.returncode == 1
    (line,) = not_local.stderr.splitlines()
    assert line.startswith("cleanup.py: SettingsError") and "CLEANUP_RUNS_TABLE" in line

    monkeypatch.delenv("CLEANUP_STATE_MACHINE_ARN", raising=False)
    no_machine = run_cli("plan")
    assert no_machine.returncode == 1  # a setting missing, not bad arguments
    assert no_machine.stderr.startswith("cleanup.py: set CLEANUP_STATE_MACHINE_ARN")
