"""The Cliniko accounts file: the shipped one is valid, and its mistakes are named."""

from __future__ import annotations

import pytest
from cliniko_automations.common.accounts import (
    DEFAULT_PATH,
    key_secret_setting,
    load_accounts,
    main,
)
from cliniko_automations.common.config_file import ConfigError


def test_the_shipped_file_is_valid():
    accounts = load_accounts(DEFAULT_PATH)
    assert accounts.names() == ["main-clinic", "north-clinic"]
    assert accounts.key_secret("main-clinic") == "cliniko-automations/accounts/main-clinic/api-key"
    assert accounts.key_secret("elsewhere") is None


def test_the_env_var_points_the_functions_at_another_file(tmp_path, monkeypatch):
    path = tmp_path / "accounts.yaml"
    path.write_text("accounts:\n  other: {api_key_secret: cliniko-automations/other}\n")
    monkeypatch.setenv("CLINIKO_ACCOUNTS_FILE", str(path))
    assert load_accounts().names() == ["other"]


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("accounts: {}\n", "accounts: Dictionary should have at least 1 item"),
        ("accounts:\n  a: {api_key_secret: 'no spaces'}\n", "accounts.a.api_key_secret: not a"),
        ("accounts:\n  a: {api_key: x}\n", "accounts.a.api_key: Extra inputs"),
        ("sources: {}\n", "accounts: Field required"),
        # A label, never a person's name: its hash is logged as a key's is.
        (
            "accounts:\n  a: {api_key_secret: k, cliniko_user: Jane Smith}\n",
            "accounts.a.cliniko_user: String should match pattern",
        ),
        # A name goes into DynamoDB keys (at most 1,024 bytes), log lines and answers.
        (
            f"accounts:\n  {'n' * 65}: {{api_key_secret: k}}\n"
            "  main clinic: {api_key_secret: j}\n",
            f"account names ['{'n' * 65}', 'main clinic']: a name is 1-64 letters",
        ),
        # One key is one account: under two names, the change feed publishes each change twice.
        (
            "accounts:\n  a: {api_key_secret: k}\n  b: {api_key_secret: k}\n",
            "accounts a and b name one api_key_secret: list an account once",
        ),
    ],
)
def test_each_mistake_is_named_with_its_place(tmp_path, text, expected):
    path = tmp_path / "accounts.yaml"
    path.write_text(text)
    with pytest.raises(ConfigError) as caught:
        load_accounts(path)
    assert any(problem.startswith(expected) for problem in caught.value.problems), caught.value


def test_the_check_command_holds_key_secrets_to_the_prefix(capsys):
    assert main(["--check", str(DEFAULT_PATH), "--secrets-prefix", "other/"]) == 1
    assert (
        "accounts.main-clinic.api_key_secret: secret "
        "'cliniko-automations/accounts/main-clinic/api-key' is outside SecretsPrefix 'other/'"
    ) in capsys.readouterr().err


def test_a_misconfiguration_names_the_file_and_the_account():
    assert key_secret_setting("north-clinic") == (
        "cliniko_accounts.yaml accounts.north-clinic.api_key_secret"
    )
