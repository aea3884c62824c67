"""The intake API's settings: one validated model, read from the environment."""

from __future__ import annotations

from pydantic import ConfigDict, Field

from cliniko_automations.common.settings import EnvironmentSettings, SettingsError
from cliniko_automations.intake_api.accept import DEFAULT_MAX_BODY_BYTES

__all__ = ["ApiSettings", "SettingsError"]


class ApiSettings(EnvironmentSettings):
    model_config = ConfigDict(frozen=True, extra="forbid")
    describes = "intake API settings"

    submission_queue_url: str = Field(min_length=1)
    # The claim-check store of submission bodies, indexed by the email's keyed hash (HMAC
    # with the erasure pepper), so an erasure reaches what the queues hold.
    submission_table: str = Field(min_length=1)
    pepper_secret_name: str = Field(min_length=1)
    form_sources_file: str | None = None
    # The accounts the sources name (each source's account is checked against it at load).
    cliniko_accounts_file: str | None = None
    # The template's SecretsPrefix: a secret named outside it is refused naming the fix.
    secrets_prefix: str | None = None
    max_body_bytes: int = Field(default=DEFAULT_MAX_BODY_BYTES, gt=0, le=6 * 1024 * 1024)
