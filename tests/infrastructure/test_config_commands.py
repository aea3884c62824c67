"""The configuration check commands run as a developer and the build run them: a fresh
interpreter, `python -m` (tests/unit calls the same `main` in-process)."""

from __future__ import annotations

import subprocess
import sys

import pytest
from cliniko_automations.intake.config import DEFAULT_PATH


def _check(module: str, *arguments: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(  # noqa: S603 (our own module, fixed arguments)
        [sys.executable, "-m", module, "--check", *arguments],
        capture_output=True,
        text=True,
        check=False,
    )


def test_shipped_file_passes_the_check_command():
    done = _check("cliniko_automations.intake.config", str(DEFAULT_PATH))
    assert done.returncode == 0, done.stderr
    assert "OK" in done.stdout


def test_shipped_accounts_file_passes_the_check_command():
    done = _check("cliniko_automations.common.accounts")
    assert done.returncode == 0, done.stderr
    assert "2 accounts: OK" in done.stdout


def test_one_account_is_counted_as_one(tmp_path):
    accounts = tmp_path / "cliniko_accounts.yaml"
    accounts.write_text(
        "accounts:\n  main-clinic: {api_key_secret: cliniko-automations/accounts/main-clinic}\n",
        encoding="utf-8",
    )
    done = _check("cliniko_automations.common.accounts", str(accounts))
    assert done.returncode == 0, done.stderr
    assert done.stdout.endswith(": 1 account: OK\n"), done.stdout


@pytest.mark.parametrize("under", ["accounts", "webhooks"])
def test_a_form_secret_named_where_the_intake_api_is_denied_fails_the_check(tmp_path, under):
    # template.yaml denies the public intake API every secret under SecretsPrefix + accounts/
    # and webhooks/ (the Cliniko keys, the webhook signing secrets): a source's secret named
    # there passed the check, and then every delivery to it failed once deployed.
    named = f"cliniko-automations/{under}/main-clinic/tally-signing-secret"
    sources = tmp_path / "form_sources.yaml"
    sources.write_text(
        DEFAULT_PATH.read_text(encoding="utf-8").replace(
            "cliniko-automations/forms/gp-referral-tally/signing-secret", named
        ),
        encoding="utf-8",
    )
    done = _check("cliniko_automations.intake.config", str(sources))
    assert done.returncode == 1, done.stdout
    assert "sources.gp-referral-tally.signing_secret" in done.stderr
    assert f"cliniko-automations/{under}/" in done.stderr


def test_a_cliniko_key_named_where_the_intake_api_may_read_it_fails_the_checks(tmp_path):
    # The public intake API is denied SecretsPrefix + accounts/ alone: a key named elsewhere
    # under the prefix passed the checks, and that function could read it.
    accounts = tmp_path / "cliniko_accounts.yaml"
    accounts.write_text(
        "accounts:\n  main-clinic: {api_key_secret: cliniko-automations/keys/main-clinic}\n",
        encoding="utf-8",
    )
    for done in (
        _check("cliniko_automations.common.accounts", str(accounts)),
        _check("cliniko_automations.intake.config", "--accounts", str(accounts)),
    ):
        assert done.returncode == 1, done.stdout
        assert "accounts.main-clinic.api_key_secret" in done.stderr
        assert "'cliniko-automations/accounts/'" in done.stderr


def test_a_webhook_secret_named_where_the_intake_api_may_read_it_fails_the_check(tmp_path):
    webhooks = tmp_path / "webhooks.yaml"
    webhooks.write_text(
        "subscribers:\n  - name: crm-sync\n    url: https://hooks.example.com/cliniko\n"
        "    events: [contact.created]\n    secret: cliniko-automations/crm-sync/secret\n",
        encoding="utf-8",
    )
    done = _check("cliniko_automations.changefeed.subscribers", str(webhooks))
    assert done.returncode == 1, done.stdout
    assert "subscribers.0 (crm-sync).secret" in done.stderr
    assert "'cliniko-automations/webhooks/'" in done.stderr
