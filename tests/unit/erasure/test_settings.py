from __future__ import annotations

import pytest
from cliniko_automations.erasure.settings import AuditSettings, ErasureSettings, SettingsError

GOOD = {
    "AUDIT_TABLE": "audit",
    "IDEMPOTENCY_TABLE": "idempotency",
    "SUBMISSION_TABLE": "submissions",
    "PEPPER_SECRET_NAME": "pepper",
    "CLINIKO_API_KEY_SECRET_NAME": "cliniko-key",
    "CLINIKO_USER_AGENT": "Acme Erasure (it@acme.example)",
}


def test_settings_come_from_the_environment_with_the_cliniko_ones_nested():
    settings = ErasureSettings.from_env(
        {
            **GOOD,
            "CLINIKO_BASE_URL": "http://127.0.0.1:1/{shard}/v1",
            "CLINIKO_MAX_WAIT_SECONDS": "5",
            "CLINIKO_RATE_LIMIT_TABLE": "budgets",
        }
    )
    assert settings.audit_table == "audit"
    assert settings.idempotency_table == "idempotency"
    assert settings.cliniko.user_agent == "Acme Erasure (it@acme.example)"
    assert settings.cliniko.base_url == "http://127.0.0.1:1/{shard}/v1"
    assert settings.cliniko.max_wait_seconds == 5
    assert settings.cliniko.rate_limit_table == "budgets"
    defaults = ErasureSettings.from_env(GOOD).cliniko
    assert (defaults.base_url, defaults.max_wait_seconds, defaults.rate_limit_table) == (
        None,
        None,
        None,
    )


def test_the_environment_is_read_once(monkeypatch: pytest.MonkeyPatch):
    # The model is what the function uses: changing the environment afterwards changes nothing.
    for name, value in GOOD.items():
        monkeypatch.setenv(name, value)
    settings = ErasureSettings.from_env()
    monkeypatch.setenv("CLINIKO_USER_AGENT", "Other (other@example.com)")
    assert settings.cliniko.user_agent == GOOD["CLINIKO_USER_AGENT"]


def test_missing_and_bad_values_are_named_without_their_values():
    env = {**GOOD, "CLINIKO_USER_AGENT": "secret-ish-agent-without-email"}
    del env["PEPPER_SECRET_NAME"]
    with pytest.raises(SettingsError) as caught:
        ErasureSettings.from_env(env)
    assert "PEPPER_SECRET_NAME" in str(caught.value)
    assert "CLINIKO_USER_AGENT" in str(caught.value)
    assert "secret-ish" not in str(caught.value)
    env = {**GOOD, "CLINIKO_MAX_WAIT_SECONDS": "-1"}
    del env["CLINIKO_USER_AGENT"], env["IDEMPOTENCY_TABLE"]
    with pytest.raises(SettingsError) as caught:
        ErasureSettings.from_env(env)
    assert str(caught.value).endswith(
        "CLINIKO_MAX_WAIT_SECONDS, CLINIKO_USER_AGENT, IDEMPOTENCY_TABLE"
    )


def test_the_overdue_check_needs_only_the_table():
    assert AuditSettings.from_env({"AUDIT_TABLE": "t"}).audit_table == "t"
    with pytest.raises(SettingsError):
        AuditSettings.from_env({})
