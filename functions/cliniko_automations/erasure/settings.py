"""Erasure settings: one validated model read from the environment."""

from __future__ import annotations

from pydantic import ConfigDict, Field, field_validator

from cliniko_automations.cliniko.config import check_user_agent, resolve_base_url
from cliniko_automations.cliniko.errors import ConfigurationError
from cliniko_automations.common.settings import EnvironmentSettings, SettingsError

__all__ = ["AuditSettings", "ErasureSettings", "SettingsError"]


class AuditSettings(EnvironmentSettings):
    """What the overdue check needs."""

    model_config = ConfigDict(frozen=True, str_strip_whitespace=True)
    describes = "erasure settings"

    audit_table: str = Field(min_length=1)


class ErasureSettings(AuditSettings):
    """What the erasure API and the local CLI need."""

    pepper_secret_name: str = Field(min_length=1)
    # The intake's claim-check store: an erasure deletes the person's submission bodies there
    # and leaves a tombstone against older submissions of theirs.
    submission_table: str = Field(min_length=1)
    cliniko_api_key_secret_name: str = Field(min_length=1)
    cliniko_user_agent: str
    cliniko_base_url: str | None = None

    # The client runtime's own checks, so a bad value fails at start-up with the same rule.
    @field_validator("cliniko_user_agent")
    @classmethod
    def _user_agent(cls, value: str) -> str:
        try:
            return check_user_agent(value)
        except ConfigurationError as error:
            raise ValueError(error.message) from None

    @field_validator("cliniko_base_url")
    @classmethod
    def _base_url(cls, value: str | None) -> str | None:
        if value is not None:
            try:
                resolve_base_url("au1", value)
            except ConfigurationError as error:
                raise ValueError(error.message) from None
        return value
