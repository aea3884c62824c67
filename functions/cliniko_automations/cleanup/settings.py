"""The cleanup function's settings: one validated model, read from the environment."""

from __future__ import annotations

import dataclasses

from cliniko_automations.common.cliniko_settings import ClinikoVariables
from cliniko_automations.common.settings import EnvironmentSettings, bounded


@dataclasses.dataclass(frozen=True, kw_only=True)
class CleanupSettings(EnvironmentSettings):
    describes = "cleanup settings"

    ledger_table: str
    # The runs' locks, checkpoints and reports (cleanup.runs).
    cleanup_runs_table: str
    cliniko_accounts_file: str | None = None
    cleanup_rules_file: str | None = None
    # The template's SecretsPrefix: an account key named outside it is refused naming the fix.
    secrets_prefix: str | None = None
    # Safe by default: only an explicit "false" (stack parameter CleanupDryRun) archives.
    cleanup_dry_run: bool = True
    # No new Cliniko work starts with less time than this left in the invocation; keep it
    # above CLINIKO_MAX_WAIT_SECONDS, the longest one request may wait.
    stop_margin_seconds: float = bounded(90.0, ge=0)
    # Steps one state machine execution takes before it starts a fresh one with the run's id
    # (continue-as-new): about 10 history events a step, far below the limit of 25,000.
    steps_per_execution: int = bounded(500, ge=1, le=2000)
    # The Cliniko client's settings (CLINIKO_USER_AGENT, ...), as given: checked when a rule
    # first needs its account's client, so a bad one fails that step naming the variable.
    cliniko: ClinikoVariables = dataclasses.field(default_factory=ClinikoVariables)
