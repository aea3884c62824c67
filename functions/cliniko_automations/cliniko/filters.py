"""Typed builders for Cliniko's `q[]` filters: every operator of the reference, by field type.

A filter renders as `FIELD:OPERATORVALUE` (e.g. `email:=a+b@example.com`). Rendering does no
URL encoding on purpose: each filter becomes one `q[]` query parameter and httpx
percent-encodes the value (`+` as `%2B`), so an email with a `+` arrives intact. Building the
query string by hand is the mistake this module exists to prevent.

    StringFilter("email").eq("a+b@example.com")
    NumericFilter("id").eq(["1", "2"])            # id:=1,2
    DateTimeFilter("created_at").lt(aware_dt)     # created_at:<2014-08-30T18:00:00Z
    DateTimeFilter("archived_at").any()           # include archived contacts
"""

from __future__ import annotations

import datetime as dt
import re
from collections.abc import Iterable
from dataclasses import dataclass
from decimal import Decimal

__all__ = [
    "KEYSET_SORT",
    "BooleanFilter",
    "DateFilter",
    "DateTimeFilter",
    "Filter",
    "NumericFilter",
    "StringFilter",
]

# The sort under which a listing reads on by id, which a contact leaving the listing meanwhile
# cannot shift as it shifts offset pages (`ClinikoClient.iter_contacts`).
KEYSET_SORT = "id"

_FIELD = re.compile(r"[a-z][a-z0-9_]*")
_INTEGER = re.compile(r"-?[0-9]+")
_NUMBER = re.compile(r"-?[0-9]+(?:\.[0-9]+)?")
_DATE_PATTERN = re.compile(r"[0-9*]{4}-[0-9*]{2}-[0-9*]{2}")
_CONTROL = re.compile(r"[\x00-\x1f\x7f]")


@dataclass(frozen=True, slots=True)
class Filter:
    """One rendered `q[]` condition. Build it with the typed builders below."""

    field: str
    operator: str
    value: str = ""

    def to_query(self) -> str:
        return f"{self.field}:{self.operator}{self.value}"

    def __str__(self) -> str:
        return self.to_query()


class _FieldFilter:
    def __init__(self, field: str) -> None:
        if not isinstance(field, str) or not _FIELD.fullmatch(field):
            raise ValueError("a filter field is a lower-case name such as 'email' or 'created_at'")
        self.field = field

    def _make(self, operator: str, value: str = "") -> Filter:
        return Filter(self.field, operator, value)


class _NullableFieldFilter(_FieldFilter):
    def present(self) -> Filter:
        """`?`: the field has a value (not null)."""
        return self._make("?")

    def absent(self) -> Filter:
        """`!?`: the field is null."""
        return self._make("!?")


def _text(value: object) -> str:
    if not isinstance(value, str):
        raise TypeError("a string filter value must be a str")
    if _CONTROL.search(value):
        raise ValueError("a string filter value must not contain control characters")
    return value


class StringFilter(_NullableFieldFilter):
    """String fields: `=` `!=` `~` (contains) `~~` (wildcard with `%`) `?` `!?`."""

    def eq(self, value: str) -> Filter:
        return self._make("=", _text(value))

    def ne(self, value: str) -> Filter:
        return self._make("!=", _text(value))

    def contains(self, value: str) -> Filter:
        """`~x`: the value contains x (the same as `~~%x%`)."""
        return self._make("~", _text(value))

    def like(self, pattern: str) -> Filter:
        """`~~`: a wildcard match where `%` stands for any run of characters."""
        return self._make("~~", _text(pattern))


def _number(value: object) -> str:
    # Ids are 64-bit: a float would already have lost digits, and a bool is not a number.
    if isinstance(value, (bool, float)):
        raise TypeError("a numeric filter value must be an int, a Decimal or a string of digits")
    if isinstance(value, int):
        return str(value)
    if isinstance(value, Decimal):
        if not value.is_finite():
            raise ValueError("a numeric filter value must be finite")
        return format(value, "f")
    if isinstance(value, str) and _NUMBER.fullmatch(value):
        return value
    raise TypeError("a numeric filter value must be an int, a Decimal or a string of digits")


class NumericFilter(_NullableFieldFilter):
    """Numeric fields: `=` (one value or a list: `id:=1,2,3`) `!=` `>` `>=` `<` `<=` `?` `!?`."""

    def eq(self, value: int | str | Decimal | Iterable[int | str | Decimal]) -> Filter:
        if isinstance(value, (int, str, Decimal, float)):
            return self._make("=", _number(value))
        values = [_number(item) for item in value]
        if not values:
            raise ValueError("a numeric list filter needs at least one value")
        return self._make("=", ",".join(values))

    def ne(self, value: int | str | Decimal) -> Filter:
        return self._make("!=", _number(value))

    def gt(self, value: int | str | Decimal) -> Filter:
        return self._make(">", _number(value))

    def ge(self, value: int | str | Decimal) -> Filter:
        return self._make(">=", _number(value))

    def lt(self, value: int | str | Decimal) -> Filter:
        return self._make("<", _number(value))

    def le(self, value: int | str | Decimal) -> Filter:
        return self._make("<=", _number(value))


def format_datetime(value: dt.datetime) -> str:
    """UTC with a `Z`, e.g. `2014-08-30T18:00:00Z`; fractions kept only when present.

    A naive datetime is refused: guessing its zone would shift a polling cursor by hours.
    """
    if not isinstance(value, dt.datetime):
        raise TypeError("a date-time filter value must be a datetime.datetime")
    if value.tzinfo is None or value.utcoffset() is None:
        raise ValueError("a date-time filter value must be timezone-aware (naive ones are refused)")
    utc = value.astimezone(dt.UTC)
    text = utc.strftime("%Y-%m-%dT%H:%M:%S")
    if utc.microsecond:
        text += f".{utc.microsecond:06d}"
    return text + "Z"


class DateTimeFilter(_NullableFieldFilter):
    """Date-time fields: `>` `>=` `<` `<=` `?` `!?` `*` (any value). There is no `=`."""

    def gt(self, value: dt.datetime) -> Filter:
        return self._make(">", format_datetime(value))

    def ge(self, value: dt.datetime) -> Filter:
        return self._make(">=", format_datetime(value))

    def lt(self, value: dt.datetime) -> Filter:
        return self._make("<", format_datetime(value))

    def le(self, value: dt.datetime) -> Filter:
        return self._make("<=", format_datetime(value))

    def any(self) -> Filter:
        """`*`: any value, null included. On `archived_at` this includes archived contacts."""
        return self._make("*")


def _date(value: object) -> str:
    if isinstance(value, dt.datetime) or not isinstance(value, dt.date):
        raise TypeError("a date filter value must be a datetime.date (not a datetime)")
    return value.isoformat()


class DateFilter(_NullableFieldFilter):
    """Date fields (`YYYY-MM-DD`): `=` `>` `>=` `<` `<=` `?` `!?`, and `*` wildcards."""

    def eq(self, value: dt.date) -> Filter:
        return self._make("=", _date(value))

    def gt(self, value: dt.date) -> Filter:
        return self._make(">", _date(value))

    def ge(self, value: dt.date) -> Filter:
        return self._make(">=", _date(value))

    def lt(self, value: dt.date) -> Filter:
        return self._make("<", _date(value))

    def le(self, value: dt.date) -> Filter:
        return self._make("<=", _date(value))

    def matches(self, pattern: str) -> Filter:
        """`=` with `*` wildcards, e.g. `****-05-**` for any day in May."""
        if not isinstance(pattern, str) or not _DATE_PATTERN.fullmatch(pattern):
            raise ValueError("a date pattern reads YYYY-MM-DD with '*' for any digit")
        return self._make("=", pattern)


class BooleanFilter(_FieldFilter):
    """Boolean fields: `=` `!=`."""

    def eq(self, value: bool) -> Filter:
        if not isinstance(value, bool):
            raise TypeError("a boolean filter value must be a bool")
        return self._make("=", "true" if value else "false")

    def ne(self, value: bool) -> Filter:
        if not isinstance(value, bool):
            raise TypeError("a boolean filter value must be a bool")
        return self._make("!=", "true" if value else "false")
