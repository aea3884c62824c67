"""Settings models read from the environment: each field `name` from the variable `NAME`."""

from __future__ import annotations

import os
from collections.abc import Mapping
from typing import ClassVar, Self

from pydantic import BaseModel, ValidationError


class SettingsError(RuntimeError):
    """The environment is missing or has a bad setting (names the variables, never values)."""


class EnvironmentSettings(BaseModel):
    """Base of a function's settings; an empty variable counts as unset."""

    # Names the settings in the error, e.g. "worker settings".
    describes: ClassVar[str] = "settings"

    @classmethod
    def from_env(cls, env: Mapping[str, str] | None = None) -> Self:
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
            raise SettingsError(f"{cls.describes} missing or invalid: {', '.join(names)}") from None
