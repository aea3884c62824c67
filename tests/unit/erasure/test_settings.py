from __future__ import annotations

import pytest
from cliniko_automations.erasure.settings import AuditSettings, ErasureSettings, SettingsError

GOOD = {
    "AUDIT_TABLE": "audit",
    "SUBMISSION_TABLE": "submissions",
    "PEPPER_SECRET_NAME": "pepper",
    "CLINIKO_API_KEY_SECRET_NAME": "cliniko-key",
    "CLINIKO_USER_AGENT": "Acme Erasure (it@acme.example)",
}


def test_settings_come_from_the_environment():
    settings = ErasureSettings.from_env(
        {**GOOD, "CLINIKO_BASE_URL": "http://127.0.0.1:1/{shard}/v1"}
    )
    assert settings.audit_table == "audit"
    assert settings.cliniko_base_url == "http://127.0.0.1:1/{shard}/v1"
    assert ErasureSettings.from_env(GOOD).cliniko_base_url is None


def test_missing_and_bad_values_are_named_without_their_values():
    env = {**GOOD, "CLINIKO_USER_AGENT": "secret-ish-agent-without-email"}
    del env["PEPPER_SECRET_NAME"]
    with pytest.raises(SettingsError) as caught:
        ErasureSettings.from_env(env)
    assert "PEPPER_SECRET_NAME" in str(caught.value)
    assert "CLINIKO_USER_AGENT" in str(caught.value)
    assert "secret-ish" not in str(caught.value)


def test_the_overdue_check_needs_only_the_table():
    assert AuditSettings.from_env({"AUDIT_TABLE": "t"}).audit_table == "t"
    with pytest.raises(SettingsError):
        AuditSettings.from_env({})
