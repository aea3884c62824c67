"""The intake API's settings: one validated model, read from the environment."""

from __future__ import annotations

import os
from collections.abc import Mapping

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from cliniko_automations.intake.accept import DEFAULT_MAX_BODY_BYTES


class SettingsError(RuntimeError):
    """The environment is missing or has a bad API setting (names only, no values)."""


class ApiSettings(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")

    submission_queue_url: str = Field(min_length=1)
    form_sources_file: str | None = None
    max_body_bytes: int = Field(default=DEFAULT_MAX_BODY_BYTES, gt=0, le=6 * 1024 * 1024)

    @classmethod
    def from_env(cls, env: Mapping[str, str] | None = None) -> ApiSettings:
        env = os.environ if env is None else env
        values = {
            name: env[name.upper()]
            for name in cls.model_fields
            if env.get(name.upper()) not in (None, "")
        }
        try:
            return cls.model_validate(values)
        except ValidationError as exc:
            names = sorted({str(e["loc"][0]).upper() for e in exc.errors() if e["loc"]})
            raise SettingsError(
                f"intake API settings missing or invalid: {', '.join(names)}"
            ) from None
