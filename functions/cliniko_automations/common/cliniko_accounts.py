"""A `ClinikoClient` per Cliniko account, built from the API key held in a secret and the
caller's Cliniko settings (common/cliniko_settings.py; read with the function's own settings).

Clients are cached per secret name for the life of the container, so the connection pool and
the key's rate budget are reused across invocations; the secret itself is re-read through its
five-minute cache on every call, and a rotated key (or changed settings) gets a fresh client.
`key_replaced` tells a key Cliniko refused because it was rotated within that cache.
"""

from __future__ import annotations

import hashlib
import threading
from collections.abc import Callable
from typing import TYPE_CHECKING

from aws_lambda_powertools.metrics import MetricUnit, single_metric

from cliniko_automations import cliniko
from cliniko_automations.cliniko.pacing import CLINIKO_REQUESTS_PER_MINUTE, key_fingerprint
from cliniko_automations.cliniko.shared_pacing import FALLBACK_REASON, Priority, SharingPolicy
from cliniko_automations.common import aws

from .accounts import load_accounts
from .cliniko_settings import ClinikoSettings, ClinikoVariables
from .config_file import ConfigError
from .rate_limit_table import DynamoBudgetStore
from .secret_text import trimmed
from .secrets import read_secret, reread_secret

if TYPE_CHECKING:
    from cliniko_automations.cliniko import ClinikoClient
    from cliniko_automations.cliniko.transport import TimeLeft

_clients: dict[tuple[str, Priority, int, str | None], tuple[str, ClinikoClient]] = {}
_stores: dict[str, DynamoBudgetStore] = {}
_lock = threading.Lock()


def _cliniko_user(secret_name: str) -> str | None:
    """The accounts file's `cliniko_user` of the account whose key is `secret_name`. A file
    that cannot be read is not this call's to report: the functions that work per account
    read it first and fail there; the erasure, which needs only its key, then books on the
    key's own budget."""
    try:
        return load_accounts().user_of_secret(secret_name)
    except ConfigError:
        return None


def client_for_secret(
    secret_name: str,
    *,
    secrets_prefix: str | None = None,
    priority: Priority | str = Priority.INTERACTIVE,
    requests_per_minute: int = CLINIKO_REQUESTS_PER_MINUTE,
    caller: str | None = None,
    settings: ClinikoSettings | ClinikoVariables,
    time_left: TimeLeft | None = None,
) -> ClinikoClient:
    """The client for the Cliniko account whose API key is the SecretString `secret_name`
    (which must start with `secrets_prefix` when one is given).

    `priority`: `"interactive"` (intake, erasure) or `"bulk"` (the cleanup, the change feed):
    bulk callers take only what interactive ones leave of the key's shared budget.
    `requests_per_minute` below Cliniko's 200 caps this caller (named `caller`, default its
    priority): on the key's shared budget when a rate-limit table is configured, every
    process of the caller together; otherwise this process's own pace. `settings`: the
    caller's, read once with its other settings; `ClinikoVariables` are checked here
    (ConfigurationError naming the variable). `time_left`: the seconds this invocation still
    gives Cliniko's requests (ClinikoClient.finish_within), set on the client each call.
    The key books on its user's budget when the accounts file names the account's
    `cliniko_user` (common/accounts.py).
    """
    priority = Priority(priority)
    if isinstance(settings, ClinikoVariables):
        settings = settings.checked()
    # Pasted keys often carry a trailing newline (or a file's byte-order mark); the key itself
    # never has whitespace or an invisible character.
    api_key = trimmed(read_secret(secret_name, prefix=secrets_prefix))
    fingerprint = hashlib.sha256("\0".join((api_key, settings.fingerprint())).encode()).hexdigest()
    slot = (secret_name, priority, requests_per_minute, caller)
    with _lock:
        cached = _clients.get(slot)
        if cached is not None and cached[0] == fingerprint:
            cached[1].finish_within(time_left)
            return cached[1]
        policy = (
            None
            if settings.max_wait_seconds is None
            else cliniko.RetryPolicy.within(settings.max_wait_seconds)
        )
        # The floor is part of the bulk share: a share set below the default floor lowers it.
        default = SharingPolicy()
        share = default.bulk_share if settings.bulk_share is None else settings.bulk_share
        floor = (
            min(default.bulk_floor, share) if settings.bulk_floor is None else settings.bulk_floor
        )
        sharing = SharingPolicy(bulk_share=share, bulk_floor=floor)
        # Through the package, which loads the client (and httpx) on first use: a function's
        # step that makes no client (the cleanup's begin) does not load them.
        client = cliniko.ClinikoClient(
            api_key,
            settings.user_agent,
            base_url=settings.base_url,
            retry_policy=policy,
            requests_per_minute=requests_per_minute,
            budget_store=_store(settings.rate_limit_table),
            priority=priority,
            sharing=sharing,
            on_pacing_fallback=_count_fallback,
            caller=caller,
            time_left=time_left,
            cliniko_user=_cliniko_user(secret_name),
        )
        _clients[slot] = (fingerprint, client)
        return client


def key_replaced(
    secret_name: str, key_id: str | None, *, secrets_prefix: str | None = None
) -> bool:
    """Whether secret `secret_name` now holds another key than the one fingerprinted `key_id`
    (a client's `key_id`), read past the cache, which it refreshes: Cliniko refused a key whose
    successor was put in the secret within the cache's five minutes and the old one archived
    (README "Secrets"), and the next `client_for_secret` uses the new one. False when the
    secret cannot be read now: the refusal stands, told as it is."""
    if key_id is None:
        return False
    try:
        current = trimmed(reread_secret(secret_name, prefix=secrets_prefix))
    except Exception:
        return False
    return key_fingerprint(current) != key_id


def time_left_after(
    remaining_seconds: Callable[[], float | None], reserve_seconds: float
) -> TimeLeft:
    """What an invocation leaves Cliniko's requests (`client_for_secret`'s `time_left`): its
    remaining time (None outside Lambda: no bound) less `reserve_seconds`, kept for the work
    after Cliniko's last answer (recording the outcome, answering)."""

    def left() -> float | None:
        remaining = remaining_seconds()
        return None if remaining is None else remaining - reserve_seconds

    return left


def _store(table: str | None) -> DynamoBudgetStore | None:
    # One store per table for the container: the budgets it holds are shared process-wide.
    if table is None:
        return None
    store = _stores.get(table)
    if store is None:
        # A budget check must not stall a Cliniko request: fail fast and fall back to local
        # pacing.
        store = _stores[table] = DynamoBudgetStore(
            aws.client("dynamodb", config=aws.FAIL_FAST), table
        )
    return store


def _count_fallback(reason: str) -> None:
    """A metric for the alarm-worthy moment the shared budget could not be reached."""
    with single_metric(name="ClinikoPacingFallback", unit=MetricUnit.Count, value=1) as metric:
        metric.add_dimension(name="reason", value=FALLBACK_REASON)
