"""Settings read from the environment: each field `name` from the variable `NAME`, and the
nested Cliniko settings from their `CLINIKO_*` variables (common/cliniko_settings.py).

A function's settings are a frozen dataclass deriving from `EnvironmentSettings`; a bound on
a number is the field's metadata (`bounded`). They are read and checked here, without
pydantic: every function reads its settings at each event, and the intake API would
otherwise import pydantic for a few strings and numbers.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import math
import os
import re
import types
import typing
from collections.abc import Callable, Mapping
from typing import Any, ClassVar, Self

from cliniko_automations.common.plain_data import field_types


class SettingsError(RuntimeError):
    """The environment is missing or has a bad setting (names the variables, never values)."""


class SettingInvalid(ValueError):
    """Raised by a nested settings type's `from_variables`: `variables` names the bad ones."""

    def __init__(self, variables: list[str]) -> None:
        self.variables = variables
        super().__init__(", ".join(variables))


def bounded(
    default: float | None = None,
    *,
    gt: float | None = None,
    ge: float | None = None,
    le: float | None = None,
) -> Any:
    """A number field's default and bounds; without a default the setting is required."""
    limits = {"gt": gt, "ge": ge, "le": le}
    metadata = {name: limit for name, limit in limits.items() if limit is not None}
    if default is None:
        return dataclasses.field(metadata=metadata)
    return dataclasses.field(default=default, metadata=metadata)


@dataclasses.dataclass(frozen=True)
class EnvironmentSettings:
    """Base of a function's settings; an empty variable counts as unset."""

    # Names the settings in the error, e.g. "worker settings".
    describes: ClassVar[str] = "settings"

    @classmethod
    def from_env(cls, env: Mapping[str, str] | None = None) -> Self:
        """Each field from `NAME`; a nested settings type (one with a `variables` map: the
        Cliniko settings) from its own variables. Every missing or bad one is named in one
        SettingsError, never its value."""
        env = os.environ if env is None else env
        values: dict[str, object] = {}
        bad: list[str] = []
        # Resolved once per process: the intake API and the worker read their settings per event.
        types_by_name = field_types(cls)
        for field in dataclasses.fields(cls):
            kind = types_by_name[field.name]
            variables: dict[str, str] | None = getattr(kind, "variables", None)
            if variables is not None:
                given = {
                    inner: env[variable]
                    for inner, variable in variables.items()
                    if env.get(variable, "").strip()
                }
                try:
                    values[field.name] = kind.from_variables(given)
                except SettingInvalid as exc:
                    bad += exc.variables
                continue
            raw = env.get(field.name.upper(), "").strip()
            if not raw:
                if is_required(field):
                    bad.append(field.name.upper())
                continue
            try:
                values[field.name] = parsed_setting(raw, kind, field.metadata)
            except ValueError:
                bad.append(field.name.upper())
        if bad:
            raise SettingsError(f"{cls.describes} missing or invalid: {', '.join(sorted(bad))}")
        return cls(**values)


def is_required(field: dataclasses.Field[Any]) -> bool:
    """Whether a settings field has no default (its variable must be set)."""
    return field.default is dataclasses.MISSING and field.default_factory is dataclasses.MISSING


# What pydantic took for a boolean, so no deployed value changes meaning.
_TRUE = frozenset({"1", "on", "t", "true", "y", "yes"})
_FALSE = frozenset({"0", "off", "f", "false", "n", "no"})
_INTEGER = re.compile(r"[+-]?[0-9]+")


def parsed_setting(raw: str, kind: object, limits: Mapping[str, float]) -> object:
    """`raw` as a value of `kind` within `limits`; ValueError when it is not one."""
    if isinstance(kind, types.UnionType):  # `X | None`: unset was handled by the caller
        kind = next(arg for arg in typing.get_args(kind) if arg is not type(None))
    value = _PARSERS[kind](raw)
    if isinstance(value, int | float) and not _within(value, limits):
        raise ValueError("out of bounds")
    return value


def _within(value: float, limits: Mapping[str, float]) -> bool:
    return (
        value > limits.get("gt", -math.inf)
        and value >= limits.get("ge", -math.inf)
        and value <= limits.get("le", math.inf)
    )


def _integer(raw: str) -> int:
    if not _INTEGER.fullmatch(raw):
        raise ValueError("not a whole number")
    return int(raw)


def _number(raw: str) -> float:
    value = float(raw)
    if not math.isfinite(value):
        raise ValueError("not a finite number")
    return value


def _boolean(raw: str) -> bool:
    folded = raw.lower()
    if folded not in _TRUE | _FALSE:
        raise ValueError("not a boolean")
    return folded in _TRUE


def _aware_time(raw: str) -> dt.datetime:
    value = dt.datetime.fromisoformat(raw)
    if value.tzinfo is None:
        raise ValueError("a time without its offset")
    return value


_PARSERS: dict[object, Callable[[str], object]] = {
    str: str,
    int: _integer,
    float: _number,
    bool: _boolean,
    dt.datetime: _aware_time,
}
