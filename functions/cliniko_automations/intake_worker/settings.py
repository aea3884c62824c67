"""The worker's settings: one validated model, read from the environment at each invocation
(cheap; the runtime built from them is cached per container).

The Cliniko client's settings (CLINIKO_USER_AGENT, ...) are read with these, as given, and
checked when a submission's client is built, so a value the runtime refuses dead-letters the
submission with the fix (see retries.py) rather than failing every message of the batch.
"""

from __future__ import annotations

import dataclasses

from cliniko_automations.common.cliniko_settings import ClinikoVariables
from cliniko_automations.common.identity_claims import (
    CREATED_SEARCH_SETTLES_SECONDS,
    LOST_CREATE_SETTLES_SECONDS,
)
from cliniko_automations.common.settings import EnvironmentSettings, SettingsError, bounded

__all__ = ["SettingsError", "WorkerSettings"]


@dataclasses.dataclass(frozen=True, kw_only=True)
class WorkerSettings(EnvironmentSettings):
    describes = "worker settings"

    idempotency_table: str
    ledger_table: str
    # Where the bodies of queued submissions live (queues carry ids) and erasure tombstones.
    submission_table: str
    parked_queue_url: str
    # Where permanent failures go directly. Optional: without it the worker asks SQS for the
    # submission queue's redrive target, the same queue redrive uses.
    dead_letter_queue_url: str | None = None
    cliniko_accounts_file: str | None = None
    # The template's SecretsPrefix: the worker's role may read only secrets under it, so an
    # account key named outside it is refused up front, naming the fix.
    secrets_prefix: str | None = None
    # A completed submission is answered from its record for a day: longer than any provider
    # keeps redelivering a webhook. After that the email lookup still prevents a duplicate.
    idempotency_ttl_seconds: int = bounded(86_400, gt=0)
    # A claim lasts until its holder's invocation would time out (a dead holder's claim frees
    # itself then); this caps it, and is the lifetime outside Lambda.
    claim_ttl_seconds: int = bounded(120, gt=0)
    claim_wait_seconds: float = bounded(5.0, ge=0)
    # How long a person stays claimed after a create whose answer was lost (Cliniko settles
    # any request within 30 s).
    lost_create_settles_seconds: float = bounded(LOST_CREATE_SETTLES_SECONDS, ge=0)
    # How long a person stays claimed after a create that answered (Cliniko's lists may show
    # the new contact a moment later): below claim_wait_seconds, the person's next
    # submission waits for it rather than retrying through the queue.
    created_search_settles_seconds: float = bounded(CREATED_SEARCH_SETTLES_SECONDS, ge=0)
    # A record is not started with less time than this left in the invocation: the Cliniko
    # client may sleep up to CLINIKO_MAX_WAIT_SECONDS per request, so keep this above it.
    min_remaining_seconds: float = bounded(30.0, ge=0)
    # Kept from Cliniko's requests for what follows their last answer (the ledger, the intent,
    # the idempotency record, the message's visibility): each ends this long before the
    # invocation would.
    reserve_seconds: float = bounded(10.0, ge=0)
    # Visibility backoff for retried messages: base * 2^(receives-1), capped.
    retry_base_seconds: int = bounded(30, ge=0)
    retry_max_seconds: int = bounded(900, ge=0)
    cliniko: ClinikoVariables = dataclasses.field(default_factory=ClinikoVariables)
