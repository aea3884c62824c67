"""The cleanup's adapters, built from its settings: accounts, rules, runs table, ledger, and
the Cliniko clients of its steps."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from cliniko_automations.cleanup.config import CleanupRules, load_cleanup_rules, rules_path
from cliniko_automations.cleanup.core import AccountMisconfigured, CleanupStep
from cliniko_automations.cleanup.runs import DynamoRuns
from cliniko_automations.cleanup.settings import CleanupSettings
from cliniko_automations.cleanup.telemetry import report_misconfigured
from cliniko_automations.cliniko.errors import ConfigurationError
from cliniko_automations.common import aws
from cliniko_automations.common.accounts import ClinikoAccounts, load_accounts
from cliniko_automations.common.cliniko_accounts import (
    client_for_secret,
    key_replaced,
    time_left_after,
)
from cliniko_automations.common.ledger import DynamoLedger
from cliniko_automations.common.secrets import SecretMisconfigured

if TYPE_CHECKING:
    from cliniko_automations.cliniko import ClinikoClient
    from cliniko_automations.cliniko.transport import TimeLeft


@dataclass(frozen=True)
class Cleanup:
    settings: CleanupSettings
    accounts: ClinikoAccounts
    rules: CleanupRules
    runs: DynamoRuns
    ledger: DynamoLedger
    # The lock's name: one run at a time per rule set.
    rule_set: str


def cleanup_for(settings: CleanupSettings) -> Cleanup:
    accounts = load_accounts(settings.cliniko_accounts_file)
    # FAIL_FAST: a stalled table fails the step in seconds, where one call on botocore's
    # defaults waited up to 240 s, past the RESERVE_SECONDS a step may have left for its
    # checkpoint after Cliniko's last answer.
    dynamodb = aws.client("dynamodb", config=aws.FAIL_FAST)
    return Cleanup(
        settings=settings,
        accounts=accounts,
        rules=load_cleanup_rules(settings.cleanup_rules_file, accounts.accounts),
        runs=DynamoRuns(dynamodb, settings.cleanup_runs_table),
        ledger=DynamoLedger(dynamodb, settings.ledger_table),
        rule_set=rule_set_name(settings),
    )


def rule_set_name(settings: CleanupSettings) -> str:
    """One run at a time per rule set (the rules file), whichever of its rules a run selects:
    two runs never archive the same contact."""
    return Path(rules_path(settings.cleanup_rules_file)).stem


# Kept from Cliniko's requests for what follows their last answer: the step's checkpoint.
RESERVE_SECONDS = 10.0


def bulk_client(
    secret_name: str, settings: CleanupSettings, time_left: TimeLeft | None = None
) -> ClinikoClient:
    """The Cliniko client of a bulk job: the one place the cleanup's clients are made. Bulk:
    the cleanup takes only what intake and erasure leave of the key's budget."""
    return client_for_secret(
        secret_name,
        secrets_prefix=settings.secrets_prefix,
        priority="bulk",
        settings=settings.cliniko,
        time_left=time_left,
    )


def cleanup_step(
    cleanup: Cleanup,
    out_of_time: Callable[[], bool],
    remaining_seconds: Callable[[], float | None] = lambda: None,
) -> CleanupStep:
    accounts = cleanup.accounts.accounts
    time_left = time_left_after(remaining_seconds, RESERVE_SECONDS)
    key_ids: dict[str, str] = {}  # the key each account's client was last made with

    def client_for_account(account: str) -> ClinikoClient:
        secret = accounts[account].api_key_secret
        try:
            client = bulk_client(secret, cleanup.settings, time_left)
        except (ConfigurationError, SecretMisconfigured) as error:
            report_misconfigured(error, account, secret)
            if isinstance(error, ConfigurationError) and error.setting != "api_key":
                # A setting of every account's client: the step fails (the run's alarm).
                raise
            # This account's key (its secret missing, empty, denied or outside the prefix,
            # or the key malformed): its rules stop, the other accounts' go on. The line
            # (and its Misconfigured metric) says what to fix.
            raise AccountMisconfigured(f"misconfigured_{type(error).__name__}") from error
        key_ids[account] = client.key_id
        return client

    return CleanupStep(
        rules={rule.name: rule for rule in cleanup.rules.rules},
        client_for_account=client_for_account,
        ledger=cleanup.ledger,
        checkpoints=cleanup.runs,
        out_of_time=out_of_time,
        on_access_refused=lambda account, error: report_misconfigured(
            error, account, accounts[account].api_key_secret
        ),
        key_replaced=lambda account: key_replaced(
            accounts[account].api_key_secret,
            key_ids.get(account),
            secrets_prefix=cleanup.settings.secrets_prefix,
        ),
    )
