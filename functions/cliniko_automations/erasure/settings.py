"""Erasure settings: one validated model per function, read from the environment at each event.

The Cliniko client's settings (`CLINIKO_*`, common/cliniko_settings.ClinikoSettings) are
nested in the erasure's, checked at load with the others (a bad value fails every request
alike, named in one SettingsError), and handed to the client factory, which reads nothing.
"""

from __future__ import annotations

import dataclasses

from cliniko_automations.common.cliniko_settings import ClinikoSettings
from cliniko_automations.common.settings import EnvironmentSettings, SettingsError, bounded

__all__ = ["AuditSettings", "ErasureSettings", "SettingsError"]


@dataclasses.dataclass(frozen=True, kw_only=True)
class AuditSettings(EnvironmentSettings):
    """What the overdue check needs."""

    describes = "erasure settings"

    audit_table: str


@dataclasses.dataclass(frozen=True, kw_only=True)
class ErasureSettings(AuditSettings):
    """What the erasure API and the local CLI need."""

    # Powertools' idempotency records of the requests (shared with the intake worker's, each
    # under its own key prefix).
    idempotency_table: str
    pepper_secret_name: str
    # The intake's claim-check store: an erasure deletes the person's submission bodies there
    # and leaves a tombstone against older submissions of theirs.
    submission_table: str
    # Empty (the stack parameter ClinikoApiKeySecretName left empty): the accounts file's
    # `main-clinic`, or its first account by name (service._key_secrets).
    cliniko_api_key_secret_name: str = ""
    cliniko: ClinikoSettings
    # The webhook stack's dead-letter queue (its ARN), when webhooks are deployed: an erasure
    # deletes the undelivered webhooks there that carry the fields of a contact it erases.
    webhook_dead_letter_queue_arn: str | None = None
    # Contacts the stack erases per rolling hour at most (ceiling.py; the stack parameter
    # ErasureHourlyLimit); 0: no ceiling.
    erasure_hourly_limit: int = bounded(10, ge=0)
