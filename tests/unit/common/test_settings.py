"""Each function's settings: one model read from the environment once, the Cliniko client's
settings nested in it (checked at load for the erasure, where a client is built elsewhere)."""

from __future__ import annotations

import pytest
from cliniko_automations.changefeed.settings import FeedSettings
from cliniko_automations.cleanup.settings import CleanupSettings
from cliniko_automations.cliniko.errors import ConfigurationError
from cliniko_automations.common.cliniko_settings import ClinikoVariables
from cliniko_automations.common.settings import SettingsError
from cliniko_automations.intake_worker.settings import WorkerSettings

UA = "Acme Clinic (it@acme.example)"
OWN = {
    WorkerSettings: {
        "IDEMPOTENCY_TABLE": "i",
        "LEDGER_TABLE": "l",
        "SUBMISSION_TABLE": "s",
        "PARKED_QUEUE_URL": "https://sqs.example/parked",
    },
    CleanupSettings: {"LEDGER_TABLE": "l", "CLEANUP_RUNS_TABLE": "r"},
    FeedSettings: {"FEED_TABLE": "f", "EVENT_BUS_NAME": "b", "HASH_KEY_SECRET_NAME": "h"},
}
MODELS = pytest.mark.parametrize("model", list(OWN), ids=lambda model: model.__name__)


@MODELS
def test_the_cliniko_variables_are_read_with_the_functions_own(model, monkeypatch) -> None:
    env = {
        **OWN[model],
        "CLINIKO_USER_AGENT": UA,
        "CLINIKO_BASE_URL": "http://127.0.0.1:1/{shard}/v1",
        "CLINIKO_MAX_WAIT_SECONDS": "5",
        "CLINIKO_RATE_LIMIT_TABLE": " ",  # blank is unset
    }
    for name, value in env.items():
        monkeypatch.setenv(name, value)
    settings = model.from_env()
    monkeypatch.setenv("CLINIKO_USER_AGENT", "Other (other@example.com)")  # read once

    assert settings.cliniko == ClinikoVariables(
        user_agent=UA, base_url="http://127.0.0.1:1/{shard}/v1", max_wait_seconds="5"
    )
    checked = settings.cliniko.checked()
    assert (checked.user_agent, checked.max_wait_seconds, checked.rate_limit_table) == (
        UA,
        5.0,
        None,
    )


@MODELS
def test_a_bad_cliniko_value_is_told_where_the_client_is_built(model) -> None:
    # Loading succeeds, so the worker can dead-letter one submission with the fix and the
    # cleanup fail one step naming the variable; the check names it, never its value.
    env = {**OWN[model], "CLINIKO_USER_AGENT": "Clinique Élan (it@clinique.fr)"}
    settings = model.from_env(env | {"CLINIKO_BULK_SHARE": "2"})
    with pytest.raises(ConfigurationError) as caught:
        settings.cliniko.checked()
    assert caught.value.setting == "CLINIKO_USER_AGENT, CLINIKO_BULK_SHARE"
    assert "Élan" not in str(caught.value)
    with pytest.raises(ConfigurationError, match="CLINIKO_USER_AGENT is not set"):
        model.from_env(OWN[model]).cliniko.checked()


@MODELS
def test_a_missing_own_setting_is_named(model) -> None:
    missing = sorted(OWN[model])[0]
    env = {name: value for name, value in OWN[model].items() if name != missing}
    with pytest.raises(SettingsError, match=missing):
        model.from_env(env)
