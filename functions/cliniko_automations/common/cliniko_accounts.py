"""A `ClinikoClient` per Cliniko account, built from the API key held in a secret.

Settings come from the environment: `CLINIKO_USER_AGENT` (required, `Name (email)`),
`CLINIKO_BASE_URL` (optional: the emulator or a local run) and `CLINIKO_MAX_WAIT_SECONDS`
(optional: the most one Cliniko request may sleep on rate limits and backoff, so a function
with a short timeout gets a typed error instead of being killed mid-wait; default 75).

Clients are cached per secret name for the life of the container, so the connection pool and
the key's rate budget are reused across invocations; the secret itself is re-read through its
five-minute cache on every call, and a rotated key (or changed settings) gets a fresh client.
"""

from __future__ import annotations

import hashlib
import os
import threading

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

from cliniko_automations.cliniko import ClinikoClient, RetryPolicy
from cliniko_automations.cliniko.config import check_user_agent
from cliniko_automations.cliniko.errors import ConfigurationError

from .secrets import read_secret

# The environment variables ClinikoSettings reads, by field.
ENV_NAMES = {
    "user_agent": "CLINIKO_USER_AGENT",
    "base_url": "CLINIKO_BASE_URL",
    "max_wait_seconds": "CLINIKO_MAX_WAIT_SECONDS",
}


class ClinikoSettings(BaseModel):
    model_config = ConfigDict(frozen=True)

    user_agent: str
    base_url: str | None = None
    max_wait_seconds: float | None = Field(default=None, gt=0, le=900)

    @field_validator("user_agent")
    @classmethod
    def _user_agent_reads_name_and_email(cls, value: str) -> str:
        try:
            return check_user_agent(value)
        except ConfigurationError as exc:
            raise ValueError(exc.message) from exc

    @field_validator("base_url")
    @classmethod
    def _blank_base_url_is_none(cls, value: str | None) -> str | None:
        return value.strip() or None if value is not None else None

    @classmethod
    def from_env(cls) -> ClinikoSettings:
        user_agent = os.environ.get("CLINIKO_USER_AGENT", "").strip()
        if not user_agent:
            raise ConfigurationError(
                "CLINIKO_USER_AGENT is not set; it must read 'Name (email)', "
                "e.g. 'Acme Clinic Intake (it@acme.example)'"
            )
        try:
            return cls(
                user_agent=user_agent,
                base_url=os.environ.get("CLINIKO_BASE_URL"),
                max_wait_seconds=os.environ.get("CLINIKO_MAX_WAIT_SECONDS", "").strip() or None,
            )
        except ValidationError as exc:
            problems = "; ".join(
                f"{ENV_NAMES.get(str(error['loc'][0]), error['loc'][0])}: {error['msg']}"
                if error["loc"]
                else str(error["msg"])
                for error in exc.errors()
            )
            raise ConfigurationError(f"Cliniko settings are invalid: {problems}") from exc


_clients: dict[str, tuple[str, ClinikoClient]] = {}
_lock = threading.Lock()


def client_for_secret(secret_name: str, *, requests_per_minute: int = 200) -> ClinikoClient:
    """The client for the Cliniko account whose API key is the SecretString `secret_name`.

    `requests_per_minute` below Cliniko's 200 caps this caller's own share of the user's
    budget (the change feed's bulk polling)."""
    settings = ClinikoSettings.from_env()
    # Pasted keys often carry a trailing newline; the key itself never has whitespace.
    api_key = read_secret(secret_name).strip()
    fingerprint = hashlib.sha256(
        "\0".join(
            (api_key, settings.user_agent, settings.base_url or "", str(settings.max_wait_seconds))
        ).encode()
    ).hexdigest()
    slot = f"{secret_name}\0{requests_per_minute}"
    with _lock:
        cached = _clients.get(slot)
        if cached is not None and cached[0] == fingerprint:
            return cached[1]
        policy = (
            None
            if settings.max_wait_seconds is None
            else RetryPolicy.within(settings.max_wait_seconds)
        )
        client = ClinikoClient(
            api_key,
            settings.user_agent,
            base_url=settings.base_url,
            retry_policy=policy,
            requests_per_minute=requests_per_minute,
        )
        _clients[slot] = (fingerprint, client)
        return client
