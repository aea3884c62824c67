"""A `ClinikoClient` per Cliniko account, built from the API key held in a secret.

Settings come from the environment: `CLINIKO_USER_AGENT` (required, `Name (email)`),
`CLINIKO_BASE_URL` (optional: the emulator or a local run), `CLINIKO_MAX_WAIT_SECONDS`
(optional: the most one Cliniko request may sleep on rate limits and backoff, so a function
with a short timeout gets a typed error instead of being killed mid-wait; default 75),
`CLINIKO_RATE_LIMIT_TABLE` (the DynamoDB table of the key's budget shared by every function;
unset, each process paces only itself) and `CLINIKO_BULK_SHARE` (the most of that budget a
bulk caller may take; default 0.8).

Clients are cached per secret name for the life of the container, so the connection pool and
the key's rate budget are reused across invocations; the secret itself is re-read through its
five-minute cache on every call, and a rotated key (or changed settings) gets a fresh client.
"""

from __future__ import annotations

import hashlib
import os
import threading

from aws_lambda_powertools.metrics import MetricUnit, single_metric
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

from cliniko_automations.cliniko import ClinikoClient, RetryPolicy
from cliniko_automations.cliniko.config import USER_AGENT_RULE_TEXT, check_user_agent
from cliniko_automations.cliniko.errors import ConfigurationError
from cliniko_automations.cliniko.shared_pacing import Priority, SharingPolicy
from cliniko_automations.common import aws

from .rate_limit_table import CLIENT_CONFIG, DynamoBudgetStore
from .secrets import read_secret

# The environment variables ClinikoSettings reads, by field.
ENV_NAMES = {
    "user_agent": "CLINIKO_USER_AGENT",
    "base_url": "CLINIKO_BASE_URL",
    "max_wait_seconds": "CLINIKO_MAX_WAIT_SECONDS",
    "rate_limit_table": "CLINIKO_RATE_LIMIT_TABLE",
    "bulk_share": "CLINIKO_BULK_SHARE",
}


class ClinikoSettings(BaseModel):
    model_config = ConfigDict(frozen=True)

    user_agent: str
    base_url: str | None = None
    max_wait_seconds: float | None = Field(default=None, gt=0, le=900)
    # The DynamoDB table holding each key's budget shared by all functions; unset: each
    # process paces only itself (tests, the CLI).
    rate_limit_table: str | None = None
    # The most of the budget bulk callers (the cleanup) may take, when intake leaves it.
    bulk_share: float | None = Field(default=None, gt=0, le=1)

    @field_validator("user_agent")
    @classmethod
    def _user_agent_reads_name_and_email(cls, value: str) -> str:
        try:
            return check_user_agent(value)
        except ConfigurationError as exc:
            raise ValueError(exc.message) from exc

    @field_validator("base_url", "rate_limit_table")
    @classmethod
    def _blank_is_none(cls, value: str | None) -> str | None:
        return value.strip() or None if value is not None else None

    @classmethod
    def from_env(cls) -> ClinikoSettings:
        user_agent = os.environ.get("CLINIKO_USER_AGENT", "").strip()
        if not user_agent:
            raise ConfigurationError(
                f"CLINIKO_USER_AGENT is not set; it {USER_AGENT_RULE_TEXT}",
                setting="CLINIKO_USER_AGENT",
            )
        try:
            return cls(
                user_agent=user_agent,
                base_url=os.environ.get("CLINIKO_BASE_URL"),
                max_wait_seconds=os.environ.get("CLINIKO_MAX_WAIT_SECONDS", "").strip() or None,
                rate_limit_table=os.environ.get("CLINIKO_RATE_LIMIT_TABLE"),
                bulk_share=os.environ.get("CLINIKO_BULK_SHARE", "").strip() or None,
            )
        except ValidationError as exc:
            names = [
                ENV_NAMES.get(str(e["loc"][0]), str(e["loc"][0])) for e in exc.errors() if e["loc"]
            ]
            problems = "; ".join(
                f"{ENV_NAMES.get(str(error['loc'][0]), error['loc'][0])}: "
                + str(error["msg"]).removeprefix("Value error, ")
                if error["loc"]
                else str(error["msg"])
                for error in exc.errors()
            )
            raise ConfigurationError(
                f"Cliniko settings are invalid: {problems}", setting=", ".join(names) or None
            ) from exc


_clients: dict[tuple[str, Priority, int], tuple[str, ClinikoClient]] = {}
_stores: dict[str, DynamoBudgetStore] = {}
_lock = threading.Lock()


def client_for_secret(
    secret_name: str,
    *,
    secrets_prefix: str | None = None,
    priority: Priority | str = Priority.INTERACTIVE,
    requests_per_minute: int = 200,
    settings: ClinikoSettings | None = None,
) -> ClinikoClient:
    """The client for the Cliniko account whose API key is the SecretString `secret_name`
    (which must start with `secrets_prefix` when one is given).

    `priority`: `"interactive"` (intake, erasure) or `"bulk"` (the cleanup, the change feed):
    bulk callers take only what interactive ones leave of the key's shared budget.
    `requests_per_minute` below Cliniko's 200 caps this caller's own pace where no shared
    budget is configured (the local pacer). `settings`: the caller's own, read once with its
    other settings; without them, read from the environment.
    """
    priority = Priority(priority)
    settings = settings or ClinikoSettings.from_env()
    # Pasted keys often carry a trailing newline; the key itself never has whitespace.
    api_key = read_secret(secret_name, prefix=secrets_prefix).strip()
    fingerprint = hashlib.sha256(
        "\0".join((api_key, settings.model_dump_json())).encode()
    ).hexdigest()
    slot = (secret_name, priority, requests_per_minute)
    with _lock:
        cached = _clients.get(slot)
        if cached is not None and cached[0] == fingerprint:
            return cached[1]
        policy = (
            None
            if settings.max_wait_seconds is None
            else RetryPolicy.within(settings.max_wait_seconds)
        )
        sharing = (
            SharingPolicy()
            if settings.bulk_share is None
            else SharingPolicy(bulk_share=settings.bulk_share)
        )
        client = ClinikoClient(
            api_key,
            settings.user_agent,
            base_url=settings.base_url,
            retry_policy=policy,
            requests_per_minute=requests_per_minute,
            budget_store=_store(settings.rate_limit_table),
            priority=priority,
            sharing=sharing,
            on_pacing_fallback=_count_fallback,
        )
        _clients[slot] = (fingerprint, client)
        return client


def _store(table: str | None) -> DynamoBudgetStore | None:
    # One store per table for the container: the budgets it holds are shared process-wide.
    if table is None:
        return None
    store = _stores.get(table)
    if store is None:
        store = _stores[table] = DynamoBudgetStore(
            aws.client("dynamodb", config=CLIENT_CONFIG), table
        )
    return store


def _count_fallback(reason: str) -> None:
    """A metric for the alarm-worthy moment the shared budget could not be reached."""
    with single_metric(name="ClinikoPacingFallback", unit=MetricUnit.Count, value=1) as metric:
        metric.add_dimension(name="reason", value="rate_budget_store_unavailable")
