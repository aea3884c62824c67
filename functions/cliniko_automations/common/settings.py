"""Settings models read from the environment: each field `name` from the variable `NAME`, and
the nested Cliniko settings from their `CLINIKO_*` variables (common/cliniko_settings.py)."""

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
        """Each field from `NAME`; a nested model with a `variables` map (the Cliniko
        settings) from its own variables. Every missing or bad one is named in one
        SettingsError, never its value."""
        env = os.environ if env is None else env
        values: dict[str, object] = {}
        for name, field in cls.model_fields.items():
            variables = _variables(field.annotation)
            if variables is not None:
                values[name] = {
                    inner: env[variable]
                    for inner, variable in variables.items()
                    if env.get(variable, "").strip()
                }
            elif env.get(name.upper(), "").strip():
                values[name] = env[name.upper()]
        try:
            return cls.model_validate(values)
        except ValidationError as exc:
            names = sorted({cls._variable(e["loc"]) for e in exc.errors() if e["loc"]})
            raise SettingsError(f"{cls.describes} missing or invalid: {', '.join(names)}") from None

    @classmethod
    def _variable(cls, loc: tuple[int | str, ...]) -> str:
        field = cls.model_fields.get(str(loc[0]))
        variables = _variables(field.annotation) if field is not None else None
        if variables is not None and len(loc) > 1:
            return variables.get(str(loc[1]), str(loc[0]).upper())
        return str(loc[0]).upper()


def _variables(annotation: object) -> dict[str, str] | None:
    """The variables of a nested settings model, by field; None for a plain value."""
    if isinstance(annotation, type) and issubclass(annotation, BaseModel):
        return getattr(annotation, "variables", None)
    return None
