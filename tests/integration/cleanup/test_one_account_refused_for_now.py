"""One clinic's Cliniko refusing for now (503) must not hold up another clinic's rule: the
cleanup handler looped by the local state machine, two accounts on two shards of the emulator."""

from __future__ import annotations

import contextlib
import datetime as dt

import boto3
from cliniko_automations.common.ledger import DynamoLedger, LedgerEntry
from cliniko_emulator.app import injected_error
from local_run.state_machine import run_loop

from tests.integration.cleanup.tables import create_cleanup_tables
from tests.integration.cleanup.test_handler import invoke
from tests.integration.intake_worker.resources import USER_AGENT, put_secrets

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


class Enough(Exception):
    """The state machine has waited long enough for the test to judge."""


def test_a_rule_whose_cliniko_refuses_for_now_rests_while_the_others_go_on(
    aws, cliniko, tmp_path, monkeypatch
):
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
    north_key = cliniko.api_key.rsplit("-", 1)[0] + "north-au2"
    cliniko.control.add_key(north_key)
    put_secrets({"tests/cliniko/main": cliniko.api_key, "tests/cliniko/north": north_key})
    main_ids = cliniko.control.seed(150, fields={"email": "t@example.com"})
    ledger = DynamoLedger(boto3.client("dynamodb"), ledger_table)
    now = dt.datetime.now(dt.UTC).isoformat()
    for contact_id in main_ids:
        ledger.record(LedgerEntry(contact_id, "main-clinic", "test-json", "sub-1", now))
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
            on_step=lambda answer: (
                archived_before_a_wait.append(archived()) if not waited else None
            ),
        )
    # Before, north-clinic's 503 ended every step with a wait of 30 s, and main-clinic's rule,
    # taking turns with it, archived one batch of 100 per wait.
    assert archived_before_a_wait[-1] == len(main_ids)
    assert waited and waited[0] >= 1  # north-clinic's rule still waits as Cliniko asked
