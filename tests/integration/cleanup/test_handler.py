"""The scheduled cleanup function: moto (ledger table, key secret), the emulator, and the
function's environment as template.yaml sets it."""

from __future__ import annotations

import datetime as dt
import json

import boto3
import pytest
from cliniko_automations.cleanup import handler
from cliniko_automations.cliniko.errors import ConfigurationError
from cliniko_automations.common.secrets import SecretOutsidePrefix
from cliniko_automations.common.settings import SettingsError
from cliniko_automations.intake.ledger import DynamoLedger
from cliniko_automations.intake.worker import LedgerEntry

from tests.fixtures.apigw import LambdaContext
from tests.integration.intake_worker.resources import (
    USER_AGENT,
    captured_logs,
    create_worker_stack,
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
SCHEDULED_EVENT = {
    "version": "0",
    "id": "5d1c5e0e-7a41-4d1b-9c4c-0a9d3f1e2b3c",
    "detail-type": "Scheduled Event",
    "source": "aws.events",
    "account": "123456789012",
    "time": "2026-11-30T03:00:00Z",
    "region": "eu-west-1",
    "resources": ["arn:aws:events:eu-west-1:123456789012:rule/cleanup"],
    "detail": {},
}


def context() -> LambdaContext:
    return LambdaContext(function_name="CleanupFunction", timeout_ms=900_000)


@pytest.fixture
def deployed(aws, cliniko, tmp_path, monkeypatch):
    """The function's environment and what it reads: returns the seeded contacts' ids."""
    stack = create_worker_stack("cleanup")
    put_secrets({"tests/cliniko/test-clinic": cliniko.api_key})
    rules = tmp_path / "cleanup_rules.yaml"
    rules.write_text(RULES, encoding="utf-8")
    for name, value in {
        "LEDGER_TABLE": stack.ledger_table,
        "CLINIKO_USER_AGENT": USER_AGENT,
        "CLINIKO_BASE_URL": cliniko.base_url_template,
        "FORM_SOURCES_FILE": str(write_worker_config(tmp_path)),
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
    ledger = DynamoLedger(boto3.client("dynamodb"), stack.ledger_table)
    now = dt.datetime.now(dt.UTC).isoformat()
    for contact_id in (test_id, real_id):
        ledger.record(LedgerEntry(contact_id, "test-clinic", "test-json", "sub-1", now))
    return {"test": test_id, "real": real_id}


def archived(cliniko) -> set[str]:
    return {c["id"] for c in cliniko.control.contacts() if c["archived_at"]}


def test_a_scheduled_run_is_a_dry_run_unless_configured(deployed, cliniko, capsys):
    answer = handler.lambda_handler(SCHEDULED_EVENT, context())

    assert answer["dry_run"] is True
    (rule,) = answer["rules"]
    assert (rule["rule"], rule["matched"], rule["archived"]) == ("form-tests", 1, 0)
    assert rule["contact_ids"] == [deployed["test"]]
    assert archived(cliniko) == set()
    output = capsys.readouterr().out
    assert emf_metrics(output)["CleanupMatched"] == 1
    # Ids and counts only: nothing of the person reaches the logs.
    for value in ("Tess", "Tester", "tess.tester@example.com", "example.com"):
        assert value not in output


def test_configured_live_runs_archive(deployed, cliniko, monkeypatch, capsys):
    monkeypatch.setenv("CLEANUP_DRY_RUN", "false")
    answer = handler.lambda_handler(SCHEDULED_EVENT, context())
    assert answer["dry_run"] is False
    assert answer["rules"][0]["archived"] == 1
    assert archived(cliniko) == {deployed["test"]}
    metrics = emf_metrics(capsys.readouterr().out)
    assert (metrics["CleanupArchived"], metrics["CleanupIncomplete"]) == (1, 0)


def test_an_operator_may_preview_or_run_named_rules(deployed, cliniko, monkeypatch):
    monkeypatch.setenv("CLEANUP_DRY_RUN", "false")
    preview = handler.lambda_handler({"dry_run": True, "rules": ["form-tests"]}, context())
    assert preview["dry_run"] is True
    assert archived(cliniko) == set()
    monkeypatch.setenv("CLEANUP_DRY_RUN", "true")
    live = handler.lambda_handler({"dry_run": False}, context())
    assert live["rules"][0]["archived"] == 1


@pytest.mark.parametrize(
    ("event", "message"),
    [
        ({"dry_run": "no"}, "dry_run must be true or false"),
        ({"rules": "form-tests"}, "rules must be a non-empty list of rule names"),
        ({"rules": ["nope"]}, "no cleanup rule named nope"),
        (["dry_run"], "the event must be a JSON object"),
    ],
)
def test_a_bad_invocation_gets_a_clear_answer_and_changes_nothing(
    deployed, cliniko, event, message
):
    cliniko.control.clear_requests()
    answer = handler.lambda_handler(event, context())
    assert answer == {"error": message}
    assert cliniko.control.requests() == []


def test_misconfiguration_fails_the_run_naming_the_setting(deployed, monkeypatch):
    # A scheduled run that cannot work must fail (the Errors alarm), not quietly do nothing.
    monkeypatch.delenv("LEDGER_TABLE")
    with pytest.raises(SettingsError, match="LEDGER_TABLE"):
        handler.lambda_handler(SCHEDULED_EVENT, context())


def test_a_missing_user_agent_fails_the_run_naming_it(deployed, cliniko, monkeypatch):
    monkeypatch.delenv("CLINIKO_USER_AGENT")
    cliniko.control.clear_requests()
    with pytest.raises(ConfigurationError, match="CLINIKO_USER_AGENT"):
        handler.lambda_handler(SCHEDULED_EVENT, context())
    assert cliniko.control.requests() == []


def test_the_answer_is_json(deployed):
    assert json.loads(json.dumps(handler.lambda_handler(SCHEDULED_EVENT, context())))


def _errors(logs) -> list[dict]:
    lines = [json.loads(line) for line in logs.lines if line.startswith("{")]
    return [line for line in lines if line.get("level") == "ERROR"]


def test_a_key_on_the_wrong_shard_is_told_with_its_fix(deployed, cliniko, capsys):
    wrong_shard = cliniko.api_key.rsplit("-", 1)[0] + "-uk2"
    boto3.client("secretsmanager").put_secret_value(
        SecretId="tests/cliniko/test-clinic", SecretString=wrong_shard
    )
    with captured_logs("cleanup") as logs:
        answer = handler.lambda_handler(SCHEDULED_EVENT, context())
    assert answer["rules"][0]["error"] == "cliniko_Unauthorized"
    (line,) = _errors(logs)
    assert line["message"].startswith(
        "misconfigured secret 'tests/cliniko/test-clinic' (form_sources.yaml "
        "accounts.test-clinic.api_key_secret): Cliniko refused the API key on shard uk2 (401)."
    )
    assert line["reason"] == "cliniko_unauthorized"
    assert emf_metrics(capsys.readouterr().out)["Misconfigured"] == 1
    assert wrong_shard not in "".join(logs.lines)


def test_a_secret_outside_the_prefix_fails_the_run_with_its_fix(deployed, monkeypatch, capsys):
    monkeypatch.setenv("SECRETS_PREFIX", "cliniko-automations/")
    with captured_logs("cleanup") as logs, pytest.raises(SecretOutsidePrefix):
        handler.lambda_handler(SCHEDULED_EVENT, context())
    (line,) = _errors(logs)
    assert line["reason"] == "secret_outside_prefix"
    assert "SecretsPrefix 'cliniko-automations/'" in line["message"]
    assert emf_metrics(capsys.readouterr().out)["Misconfigured"] == 1
