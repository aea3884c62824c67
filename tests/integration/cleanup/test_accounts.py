"""A cleanup of two Cliniko accounts, one of them misconfigured or refusing for now: the
other's rules go on."""

from __future__ import annotations

import contextlib
import datetime as dt
import os

import boto3
import pytest
from cliniko_automations.cleanup.runs import DynamoRuns
from cliniko_automations.common.ledger import DynamoLedger, LedgerEntry
from cliniko_emulator.app import injected_error
from local_run.state_machine import run_loop

from tests.integration.cleanup.tables import create_cleanup_tables
from tests.integration.cleanup.test_handler import invoke
from tests.integration.intake_worker.resources import USER_AGENT, captured_logs, put_secrets

ACCOUNTS = """accounts:
  main-clinic: {api_key_secret: tests/cliniko/main}
  north-clinic: {api_key_secret: tests/cliniko/north}
"""
RULES = """rules:
  - name: main-tests
    account: main-clinic
    where: [{field: email, op: like, value: "%@example.com"}]
  - name: north-tests
    account: north-clinic
    where: [{field: email, op: like, value: "%@example.com"}]
"""


@pytest.fixture
def two_accounts(aws, cliniko, tmp_path, monkeypatch):
    """main-clinic's rule has 150 ledger contacts (two batches); north-clinic's key secret is
    not created here."""
    ledger_table, runs_table = create_cleanup_tables()
    (tmp_path / "accounts.yaml").write_text(ACCOUNTS)
    (tmp_path / "rules.yaml").write_text(RULES)
    for name, value in {
        "LEDGER_TABLE": ledger_table,
        "CLEANUP_RUNS_TABLE": runs_table,
        "CLINIKO_USER_AGENT": USER_AGENT,
        "CLINIKO_BASE_URL": cliniko.base_url_template,
        "CLINIKO_ACCOUNTS_FILE": str(tmp_path / "accounts.yaml"),
        "CLEANUP_RULES_FILE": str(tmp_path / "rules.yaml"),
        "CLEANUP_DRY_RUN": "false",
    }.items():
        monkeypatch.setenv(name, value)
    put_secrets({"tests/cliniko/main": cliniko.api_key})
    ids = cliniko.control.seed(150, fields={"email": "t@example.com"})
    ledger = DynamoLedger(boto3.client("dynamodb"), ledger_table)
    now = dt.datetime.now(dt.UTC).isoformat()
    for contact_id in ids:
        ledger.record(LedgerEntry(contact_id, "main-clinic", "test-json", "sub-1", now))
    return ids


@pytest.mark.parametrize(
    ("north_key", "kind"),
    [
        (None, "misconfigured_SecretMissing"),
        ("MS0xpasted with a space-au1", "misconfigured_ConfigurationError"),
        ('{"api_key": "MS0xpastedasjson-au1"}', "misconfigured_SecretNotPlainText"),
    ],
    ids=["missing", "malformed", "console-key-value"],
)
def test_an_account_whose_key_is_unusable_stops_only_its_own_rules(
    two_accounts, cliniko, north_key, kind
):
    if north_key is not None:
        put_secrets({"tests/cliniko/north": north_key})
    with captured_logs("cleanup") as logs:
        result = run_loop(invoke, {"dry_run": False}, sleep=lambda _: None)
    # The run was not failed by the missing secret after main-clinic's first batch.
    assert result.status == "finished"
    assert sum(1 for c in cliniko.control.contacts() if c["archived_at"]) == len(two_accounts)
    state = DynamoRuns(boto3.client("dynamodb"), os.environ["CLEANUP_RUNS_TABLE"]).load(
        result.run_id
    )
    assert [(p.rule, p.stopped, p.error) for p in state.rules] == [
        ("main-tests", False, None),
        ("north-tests", True, kind),
    ]
    errors = [line for line in logs.lines if '"level":"ERROR"' in line]
    assert len(errors) == 1 and "misconfigured secret 'tests/cliniko/north'" in errors[0]


class Enough(Exception):
    """The state machine has waited long enough for the test to judge."""


def test_a_rule_whose_cliniko_refuses_for_now_rests_while_the_others_go_on(
    two_accounts, cliniko, monkeypatch
):
    north_key = cliniko.api_key.rsplit("-", 1)[0] + "north-au2"
    cliniko.control.add_key(north_key)
    put_secrets({"tests/cliniko/north": north_key})
    ledger = DynamoLedger(boto3.client("dynamodb"), os.environ["LEDGER_TABLE"])
    now = dt.datetime.now(dt.UTC).isoformat()
    for contact_id in range(900001, 900011):
        ledger.record(LedgerEntry(str(contact_id), "north-clinic", "test-json", "sub-2", now))
    real = cliniko.server.app._answer

    def answer(method, match, shard, *rest):
        # north-clinic's Cliniko: 503 for as long as the test runs.
        return injected_error(503) if shard == "au2" else real(method, match, shard, *rest)

    monkeypatch.setattr(cliniko.server.app, "_answer", answer)
    cliniko.allow_invalid_requests()
    waited: list[float] = []

    def sleep(seconds: float) -> None:
        waited.append(seconds)
        if len(waited) > 3:
            raise Enough

    archived_before_a_wait: list[int] = []

    def archived() -> int:
        return sum(1 for c in cliniko.control.contacts() if c["archived_at"])

    with contextlib.suppress(Enough):
        run_loop(
            invoke,
            {"dry_run": False},
            sleep=sleep,
            on_step=lambda _: None if waited else archived_before_a_wait.append(archived()),
        )
    # Before, north-clinic's 503 ended every step with a wait of 30 s, and main-clinic's rule,
    # taking turns with it, archived one batch of 100 per wait.
    assert archived_before_a_wait[-1] == len(two_accounts)
    assert waited and waited[0] >= 1  # north-clinic's rule still waits as Cliniko asked
