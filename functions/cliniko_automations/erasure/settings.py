"""Erasure settings: one validated model per function, read from the environment once.

The Cliniko client's settings (`CLINIKO_*`, common/cliniko_accounts.ClinikoSettings) are
nested in the erasure's and handed to the client factory, which reads nothing itself.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from typing import Self

from pydantic import ConfigDict, Field, ValidationError

from cliniko_automations.common.cliniko_accounts import ENV_NAMES, ClinikoSettings
from cliniko_automations.common.settings import EnvironmentSettings, SettingsError

__all__ = ["AuditSettings", "ErasureSettings", "SettingsError"]


class AuditSettings(EnvironmentSettings):
    """What the overdue check needs."""

    model_config = ConfigDict(frozen=True, str_strip_whitespace=True)
    describes = "erasure settings"

    audit_table: str = Field(min_length=1)


class ErasureSettings(AuditSettings):
    """What the erasure API and the local CLI need."""

    # Powertools' idempotency records of the requests (shared with the intake worker's, each
    # under its own key prefix).
    idempotency_table: str = Field(min_length=1)
    pepper_secret_name: str = Field(min_length=1)
    # The intake's claim-check store: an erasure deletes the person's submission bodies there
    # and leaves a tombstone against older submissions of theirs.
    submission_table: str = Field(min_length=1)
    cliniko_api_key_secret_name: str = Field(min_length=1)
    cliniko: ClinikoSettings

    @classmethod
    def from_env(cls, env: Mapping[str, str] | None = None) -> Self:
        """Each own field from `NAME`, the Cliniko ones from their `CLINIKO_*` variables;
        every missing or bad one named in one SettingsError, never its value."""
        env = os.environ if env is None else env
        values: dict[str, object] = {
            name: env[name.upper()]
            for name in cls.model_fields
            if name != "cliniko" and env.get(name.upper(), "").strip()
        }
        values["cliniko"] = {
            name: env[variable]
            for name, variable in ENV_NAMES.items()
            if env.get(variable, "").strip()
        }
        try:
            return cls.model_validate(values)
        except ValidationError as error:
            names = sorted({_variable(error["loc"]) for error in error.errors() if error["loc"]})
            raise SettingsError(f"{cls.describes} missing or invalid: {', '.join(names)}") from None


def _variable(loc: tuple[int | str, ...]) -> str:
    if loc[0] == "cliniko" and len(loc) > 1:
        return ENV_NAMES.get(str(loc[1]), "CLINIKO_SETTINGS")
    return str(loc[0]).upper()
