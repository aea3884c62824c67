"""Dataclasses to and from plain data (JSON's types): for data this system wrote itself or
validated already, so no check is made, only the nesting of dataclasses followed.

The configuration the build validated (common/config_file.py) and the erasure outcomes the
audit trail and the idempotency table keep (erasure/models.py) are read back this way, without
importing a validator on a cold start.
"""

from __future__ import annotations

import dataclasses
import json
import types
import typing
from collections.abc import Collection
from typing import Any, TypeVar

Kind = TypeVar("Kind")


def from_data(kind: type[Kind], data: Any) -> Kind:
    """A dataclass (nested ones too) built from data that was one: no check is made, only the
    nesting followed."""
    return _built(kind, data)  # type: ignore[no-any-return]


def _built(kind: Any, data: Any) -> Any:
    if data is None:
        return None
    if isinstance(kind, type) and dataclasses.is_dataclass(kind):
        hints = field_types(kind)
        return kind(**{name: _built(hints[name], value) for name, value in data.items()})
    origin = typing.get_origin(kind)
    if origin in (types.UnionType, typing.Union):
        inner = [arg for arg in typing.get_args(kind) if arg is not type(None)]
        return _built(inner[0], data) if len(inner) == 1 else data
    if origin is list:
        return [_built(typing.get_args(kind)[0], item) for item in data]
    if origin is dict:
        return {key: _built(typing.get_args(kind)[1], item) for key, item in data.items()}
    return data


_FIELD_TYPES: dict[type, dict[str, Any]] = {}


def field_types(kind: type) -> dict[str, Any]:
    """A dataclass's field types, its string annotations resolved once per process."""
    if kind not in _FIELD_TYPES:
        _FIELD_TYPES[kind] = typing.get_type_hints(kind)
    return _FIELD_TYPES[kind]


def as_data(value: Any, exclude: Collection[str] = ()) -> dict[str, Any]:
    """A dataclass as plain data (nested ones too), without the fields named in `exclude`."""
    return {k: v for k, v in dataclasses.asdict(value).items() if k not in exclude}


def as_json(value: Any, exclude: Collection[str] = ()) -> str:
    """A dataclass as compact JSON, text as it is (not escaped to ASCII)."""
    return json.dumps(as_data(value, exclude), separators=(",", ":"), ensure_ascii=False)
