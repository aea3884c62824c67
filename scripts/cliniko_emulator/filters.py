"""Cliniko's `q[]` filters and `sort`, parsed and matched against stored contacts.

A filter is `FIELD:OPERATORVALUE`. Operators depend on the field's type (Cliniko's
"Filtering Results" documentation); several filters are ANDed. Emulator choices where Cliniko
is silent (see README.md in this package): a blank string counts as "no value" for `?` and
`!?`; `=`/`!=` are case-sensitive while `~`/`~~` ignore case (SQL ILIKE; the behaviour
`like_minds_case` makes them mind it too, as Cliniko may: its docs do not say); the email filter
compares against the lower-cased stored email, the value is used as sent.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from .contact_rules import COLUMN_FIELDS, TIMESTAMP_FIELDS

# "Filterable contact fields" of cliniko-api.md (the contacts documentation lists seven).
FILTERABLE_STRINGS = ("email", "first_name", "last_name", "company_name", "occupation")
FILTERABLE_NUMBERS = ("id", "type_code")
DATETIME_FIELDS = TIMESTAMP_FIELDS
FILTERABLE = {
    **dict.fromkeys(FILTERABLE_STRINGS, "string"),
    **dict.fromkeys(FILTERABLE_NUMBERS, "numeric"),
    **dict.fromkeys(DATETIME_FIELDS, "datetime"),
}

# Longest operators first so that `>=` is not read as `>` followed by "=...".
OPERATORS = {
    "string": ("!=", "!?", "~~", "=", "~", "?"),
    "numeric": (">=", "<=", "!=", "!?", "=", ">", "<", "?"),
    "datetime": (">=", "<=", "!?", ">", "<", "?", "*"),
}
VALUELESS = frozenset({"?", "!?", "*"})

# A filter on an attribute that is not filterable gets Cliniko's "FIELD is not filterable"
# (cliniko-api.md); the same message answers a name that is not an attribute at all. Which
# columns a `sort` may name is not documented: the emulator takes every column of the contact
# (not the nested `phone_numbers` nor `links`), and a 400 for anything else.
SORTABLE = COLUMN_FIELDS

INT64_MAX = 2**63 - 1


class FilterError(ValueError):
    """A filter or sort Cliniko would refuse with a 400; str() is the message."""


@dataclass(frozen=True)
class Filter:
    field: str
    operator: str
    value: Any = None  # str, int, tuple[int, ...], datetime or None (valueless operators)
    minds_case: bool = False  # `~` and `~~` (the emulator's like_minds_case)

    def matches(self, contact: Mapping[str, Any]) -> bool:
        return _MATCHERS[FILTERABLE[self.field]](self, contact.get(self.field))


def parse_datetime(text: str) -> datetime:
    """A UTC date-time from ISO 8601 text (`2014-08-30T18:00:00Z`); naive means UTC."""
    try:
        value = datetime.fromisoformat(text.strip())
    except ValueError:
        raise FilterError(f"{text!r} is not a valid date-time") from None
    if value.tzinfo is None:
        return value.replace(tzinfo=UTC)
    return value.astimezone(UTC)


def _parse_int(text: str) -> int:
    text = text.strip()
    if not re.fullmatch(r"-?\d{1,19}", text) or abs(int(text)) > INT64_MAX:
        raise FilterError(f"{text!r} is not a valid integer")
    return int(text)


def parse_filter(raw: str, *, like_minds_case: bool = False) -> Filter:
    field, sep, rest = raw.partition(":")
    field = field.strip()
    if not sep or not field:
        raise FilterError(f"Invalid filter {raw!r}: expected FIELD:OPERATORVALUE")
    kind = FILTERABLE.get(field)
    if kind is None:
        raise FilterError(f"{field} is not filterable")
    operator = next((op for op in OPERATORS[kind] if rest.startswith(op)), None)
    if operator is None:
        raise FilterError(f"Invalid filter {raw!r}: unknown operator for {field}")
    text = rest[len(operator) :]
    if operator in VALUELESS:
        if text.strip():
            raise FilterError(f"Invalid filter {raw!r}: {operator} takes no value")
        return Filter(field, operator)
    if kind == "string":
        return Filter(field, operator, text, minds_case=like_minds_case)
    if kind == "numeric":
        if operator == "=" and "," in text:
            return Filter(field, operator, tuple(_parse_int(part) for part in text.split(",")))
        return Filter(field, operator, _parse_int(text))
    if not text.strip():
        raise FilterError(f"Invalid filter {raw!r}: a date-time is required")
    return Filter(field, operator, parse_datetime(text))


def parse_filters(raws: Iterable[str], *, like_minds_case: bool = False) -> list[Filter]:
    return [parse_filter(raw, like_minds_case=like_minds_case) for raw in raws]


def wildcard_pattern(value: str, *, minds_case: bool = False) -> re.Pattern[str]:
    """`~~` patterns: `%` matches any run of characters; everything else is literal."""
    body = ".*".join(re.escape(part) for part in value.split("%"))
    return re.compile(body, re.DOTALL if minds_case else re.IGNORECASE | re.DOTALL)


def _string_matches(flt: Filter, stored: Any) -> bool:
    text = stored if isinstance(stored, str) else ""
    if flt.field == "email":
        text = text.lower()
    op = flt.operator
    if op == "?":
        return text != ""
    if op == "!?":
        return text == ""
    if op == "=":
        return text == flt.value
    if op == "!=":
        return text != flt.value
    if op == "~":
        return flt.value in text if flt.minds_case else flt.value.lower() in text.lower()
    return wildcard_pattern(flt.value, minds_case=flt.minds_case).fullmatch(text) is not None


def _compare(op: str, left: Any, right: Any) -> bool:
    if op == ">":
        return left > right
    if op == ">=":
        return left >= right
    if op == "<":
        return left < right
    if op == "<=":
        return left <= right
    if op == "!=":
        return left != right
    return left == right


def _numeric_matches(flt: Filter, stored: Any) -> bool:
    number = None if stored is None else int(stored)
    if flt.operator == "?":
        return number is not None
    if flt.operator == "!?":
        return number is None
    if number is None:
        return False
    if isinstance(flt.value, tuple):
        return number in flt.value
    return _compare(flt.operator, number, flt.value)


def _datetime_matches(flt: Filter, stored: Any) -> bool:
    if flt.operator == "*":
        return True
    moment = parse_datetime(stored) if isinstance(stored, str) else stored
    if flt.operator == "?":
        return moment is not None
    if flt.operator == "!?":
        return moment is None
    if moment is None:
        return False
    return _compare(flt.operator, moment, flt.value)


_MATCHERS: dict[str, Callable[[Filter, Any], bool]] = {
    "string": _string_matches,
    "numeric": _numeric_matches,
    "datetime": _datetime_matches,
}


def asks_for_archived(filters: Sequence[Filter]) -> bool:
    """Lists hide archived contacts unless some filter is on `archived_at`."""
    return any(flt.field == "archived_at" for flt in filters)


def apply_filters(contacts: Iterable[Mapping[str, Any]], filters: Sequence[Filter]):
    include_archived = asks_for_archived(filters)
    for contact in contacts:
        if not include_archived and contact.get("archived_at") is not None:
            continue
        if all(flt.matches(contact) for flt in filters):
            yield contact


@dataclass(frozen=True)
class SortKey:
    field: str
    descending: bool


def parse_sort(sort: str | None, order: str | None = None) -> list[SortKey]:
    """`sort=last_name,created_at:desc`; the deprecated `order=asc|desc` sets the default."""
    if order not in (None, "", "asc", "desc"):
        raise FilterError(f"order must be asc or desc, not {order!r}")
    default_desc = order == "desc"
    keys: list[SortKey] = []
    if sort is None or not sort.strip():
        return [SortKey("created_at", default_desc)]
    for part in sort.split(","):
        field, _, direction = part.strip().partition(":")
        if field not in SORTABLE:
            raise FilterError(f"{field or part!r} is not sortable")
        if direction not in ("", "asc", "desc"):
            raise FilterError(f"Invalid sort direction {direction!r} for {field}")
        keys.append(SortKey(field, direction == "desc" if direction else default_desc))
    return keys


class _Reversed:
    """Wraps a value so that a single ascending sort can order some keys descending."""

    __slots__ = ("value",)

    def __init__(self, value: Any) -> None:
        self.value = value

    def __lt__(self, other: _Reversed) -> bool:
        return other.value < self.value

    def __eq__(self, other: object) -> bool:
        return isinstance(other, _Reversed) and other.value == self.value

    __hash__ = None  # type: ignore[assignment]


def _sort_value(contact: Mapping[str, Any], field: str) -> Any:
    value = contact.get(field)
    if field == "id":
        return int(value)
    if isinstance(value, str) and field in DATETIME_FIELDS:
        return parse_datetime(value)
    return value


def sort_contacts(contacts: Iterable[Mapping[str, Any]], keys: Sequence[SortKey]) -> list:
    """Sorted like PostgreSQL: NULLs last when ascending, first when descending; id breaks ties."""

    def key(contact: Mapping[str, Any]) -> tuple:
        parts: list[Any] = []
        for sort_key in keys:
            value = _sort_value(contact, sort_key.field)
            is_null = value is None
            # (0, value) sorts before (1, None): NULLs last ascending; reversed, first.
            item = (1, 0) if is_null else (0, value)
            parts.append(_Reversed(item) if sort_key.descending else item)
        parts.append(int(contact["id"]))
        return tuple(parts)

    return sorted(contacts, key=key)
