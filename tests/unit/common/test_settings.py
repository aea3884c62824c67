"""Each function's settings: one model read from the environment once, the Cliniko client's
settings nested in it (checked at load for the erasure, where a client is built elsewhere)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

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


@pytest.mark.parametrize(
    ("name", "value", "read"),
    [
        ("CLEANUP_DRY_RUN", "false", False),
        ("CLEANUP_DRY_RUN", " Off ", False),
        ("CLEANUP_DRY_RUN", "YES", True),
        ("STEPS_PER_EXECUTION", "2000", 2000),
        ("STEPS_PER_EXECUTION", "+7", 7),
        ("STOP_MARGIN_SECONDS", "0", 0.0),
        ("STOP_MARGIN_SECONDS", "12.5", 12.5),
    ],
)
def test_values_are_read_as_their_types(name, value, read) -> None:
    settings = CleanupSettings.from_env(OWN[CleanupSettings] | {name: value})
    assert getattr(settings, name.lower()) == read


@pytest.mark.parametrize(
    ("name", "value"),
    [
        ("CLEANUP_DRY_RUN", "maybe"),
        ("STEPS_PER_EXECUTION", "0"),  # below its bound
        ("STEPS_PER_EXECUTION", "2001"),  # above it
        ("STEPS_PER_EXECUTION", "1.5"),
        ("STEPS_PER_EXECUTION", "1_000"),
        ("STOP_MARGIN_SECONDS", "-1"),
        ("STOP_MARGIN_SECONDS", "nan"),
        ("STOP_MARGIN_SECONDS", "inf"),
    ],
)
def test_a_bad_value_is_named_never_shown(name, value) -> None:
    with pytest.raises(SettingsError) as caught:
        CleanupSettings.from_env(OWN[CleanupSettings] | {name: value})
    assert str(caught.value) == f"cleanup settings missing or invalid: {name}"


def test_a_time_needs_its_offset() -> None:
    own = OWN[FeedSettings]
    settings = FeedSettings.from_env(own | {"BACKFILL_FROM": "2026-01-02T03:04:05Z"})
    assert settings.backfill_from == datetime(2026, 1, 2, 3, 4, 5, tzinfo=UTC)
    with pytest.raises(SettingsError, match="BACKFILL_FROM"):
        FeedSettings.from_env(own | {"BACKFILL_FROM": "2026-01-02T03:04:05"})


def test_a_backfill_from_the_future_is_refused() -> None:
    # 2062 for 2026: the feed would start there and never publish what changes before then.
    own = OWN[FeedSettings]
    soon = datetime.now(UTC) + timedelta(minutes=1)
    later = datetime.now(UTC) + timedelta(hours=1)
    settings = FeedSettings.from_env(own | {"BACKFILL_FROM": soon.isoformat()})
    assert settings.backfill_from == soon  # within another clock's skew
    with pytest.raises(SettingsError, match="BACKFILL_FROM is in the future"):
        FeedSettings.from_env(own | {"BACKFILL_FROM": later.isoformat()})


def test_values_are_read_without_surrounding_space_and_blank_is_unset() -> None:
    settings = CleanupSettings.from_env(OWN[CleanupSettings] | {"LEDGER_TABLE": " l2 "})
    assert settings.ledger_table == "l2"
    with pytest.raises(SettingsError, match="LEDGER_TABLE"):
        CleanupSettings.from_env(OWN[CleanupSettings] | {"LEDGER_TABLE": "  "})


def test_the_defaults_the_template_leaves_unset() -> None:
    # template.yaml sets none of these: the defaults are what is deployed.
    worker = WorkerSettings.from_env(OWN[WorkerSettings])
    # A completed submission is answered from its record for a day; a claim lasts 2 minutes
    # at most; a retried message waits at most 15 minutes.
    assert (worker.idempotency_ttl_seconds, worker.claim_ttl_seconds) == (86_400, 120)
    assert worker.retry_max_seconds == 900
    # README: the 5-second overlap re-reads the cursor's own second.
    assert FeedSettings.from_env(OWN[FeedSettings]).overlap_seconds == 5


@pytest.mark.parametrize(
    ("model", "name", "value"),
    [
        (WorkerSettings, "IDEMPOTENCY_TTL_SECONDS", "0"),  # every record expired at once
        (WorkerSettings, "CLAIM_TTL_SECONDS", "0"),  # no claim would hold
        (FeedSettings, "OVERLAP_SECONDS", "0"),  # a change committed late in its second lost
        (FeedSettings, "REQUESTS_PER_MINUTE", "201"),  # more than the user's whole budget
    ],
)
def test_a_value_outside_its_bound_is_refused(model, name, value) -> None:
    with pytest.raises(SettingsError, match=name):
        model.from_env(OWN[model] | {name: value})


@pytest.mark.parametrize(
    ("name", "value"),
    [
        ("CLINIKO_BULK_SHARE", "0"),  # the cleanup would never be given a request
        ("CLINIKO_BULK_SHARE", "1.01"),
        ("CLINIKO_BULK_FLOOR", "-0.1"),
        ("CLINIKO_BULK_FLOOR", "0.9"),  # above the bulk share (default 0.8) it is part of
        ("CLINIKO_MAX_WAIT_SECONDS", "0"),
        ("CLINIKO_MAX_WAIT_SECONDS", "901"),  # longer than any function may run
    ],
)
def test_a_cliniko_number_outside_its_bound_is_refused(name, value) -> None:
    settings = CleanupSettings.from_env(
        OWN[CleanupSettings] | {"CLINIKO_USER_AGENT": UA, name: value}
    )
    with pytest.raises(ConfigurationError) as caught:
        settings.cliniko.checked()
    assert caught.value.setting == name


def test_the_bulk_floor_is_checked_against_the_bulk_share_given() -> None:
    env = OWN[CleanupSettings] | {"CLINIKO_USER_AGENT": UA, "CLINIKO_BULK_FLOOR": "0.3"}
    settings = CleanupSettings.from_env(env | {"CLINIKO_BULK_SHARE": "0.2"})
    with pytest.raises(ConfigurationError) as caught:
        settings.cliniko.checked()
    assert caught.value.setting == "CLINIKO_BULK_FLOOR"

    checked = CleanupSettings.from_env(env | {"CLINIKO_BULK_SHARE": "0.5"}).cliniko.checked()
    assert (checked.bulk_share, checked.bulk_floor) == (0.5, 0.3)
