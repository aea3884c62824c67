"""MAX_BODY_BYTES' ceiling is a size the function can parse within its 256 MB and 10 s: a
signed JSON body of 6 MB (the ceiling was 6 MB) of `{},` took the intake 5.5 s of CPU and
300 MB more RSS here (a 202 in-process, an out-of-memory 5xx on Lambda)."""

from __future__ import annotations

import pytest
from cliniko_automations.intake_api.settings import ApiSettings, SettingsError


def settings_with(monkeypatch: pytest.MonkeyPatch, max_body_bytes: int) -> ApiSettings:
    monkeypatch.setenv("SUBMISSION_QUEUE_URL", "https://sqs.eu-west-1.amazonaws.com/1/q")
    monkeypatch.setenv("SUBMISSION_TABLE", "t")
    monkeypatch.setenv("PEPPER_SECRET_NAME", "p")
    monkeypatch.setenv("MAX_BODY_BYTES", str(max_body_bytes))
    return ApiSettings.from_env()


def test_a_max_body_bytes_the_function_cannot_parse_is_refused(monkeypatch):
    with pytest.raises(SettingsError):
        settings_with(monkeypatch, 6 * 1024 * 1024)


def test_the_ceiling_itself_is_taken(monkeypatch):
    assert settings_with(monkeypatch, 512 * 1024).max_body_bytes == 512 * 1024
