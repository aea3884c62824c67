"""The q[] filter parser and matcher, and sorting, without a server."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest
from cliniko_emulator.filters import (
    FILTERABLE,
    Filter,
    FilterError,
    SortKey,
    apply_filters,
    parse_filter,
    parse_sort,
    sort_contacts,
)


def at(text: str) -> datetime:
    return datetime.fromisoformat(text.replace("Z", "+00:00"))


def contact(i: int, **fields) -> dict:
    base = {
        "id": str(1390712996921091568 + i),
        "email": "",
        "first_name": "",
        "last_name": "",
        "company_name": "",
        "occupation": "",
        "type_code": 0,
        "created_at": at("2024-01-01T00:00:00Z"),
        "updated_at": at("2024-01-01T00:00:00Z"),
        "archived_at": None,
        "deleted_at": None,
    }
    return base | fields


def ids(contacts, raws) -> list[int]:
    filters = [parse_filter(raw) for raw in raws]
    base = 1390712996921091568
    return [int(c["id"]) - base for c in apply_filters(contacts, filters)]


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        ("email:=a+b@example.com", Filter("email", "=", "a+b@example.com")),
        ("first_name:!=Jo", Filter("first_name", "!=", "Jo")),
        ("last_name:~no", Filter("last_name", "~", "no")),
        ("last_name:~~S%w", Filter("last_name", "~~", "S%w")),
        ("occupation:?", Filter("occupation", "?")),
        ("company_name:!?", Filter("company_name", "!?")),
        ("email:=", Filter("email", "=", "")),
        ("first_name:=a:b", Filter("first_name", "=", "a:b")),
        ("id:=5", Filter("id", "=", 5)),
        ("id:=1,2,3", Filter("id", "=", (1, 2, 3))),
        ("id:>=7", Filter("id", ">=", 7)),
        ("id:>7", Filter("id", ">", 7)),
        ("type_code:<=1", Filter("type_code", "<=", 1)),
        ("type_code:<1", Filter("type_code", "<", 1)),
        ("type_code:!=2", Filter("type_code", "!=", 2)),
        ("type_code:?", Filter("type_code", "?")),
        ("type_code:!?", Filter("type_code", "!?")),
        ("created_at:>2014-08-30T18:00:00Z", Filter("created_at", ">", at("2014-08-30T18:00:00Z"))),
        (
            "updated_at:>=2014-08-30T18:00:00Z",
            Filter("updated_at", ">=", at("2014-08-30T18:00:00Z")),
        ),
        (
            "created_at:<2014-08-30T20:00:00+02:00",
            Filter("created_at", "<", at("2014-08-30T18:00:00Z")),
        ),
        (
            "deleted_at:<=2014-08-30T18:00:00",
            Filter("deleted_at", "<=", at("2014-08-30T18:00:00Z")),
        ),
        ("archived_at:*", Filter("archived_at", "*")),
        ("archived_at:?", Filter("archived_at", "?")),
        ("archived_at:!?", Filter("archived_at", "!?")),
    ],
)
def test_parse(raw: str, expected: Filter) -> None:
    assert parse_filter(raw) == expected


@pytest.mark.parametrize(
    ("raw", "message"),
    [
        ("notes:=x", "notes is not filterable"),
        ("phone_numbers:?", "phone_numbers is not filterable"),
        ("nonsense:=x", "nonsense is not filterable"),
        ("email", "expected FIELD:OPERATORVALUE"),
        (":=x", "expected FIELD:OPERATORVALUE"),
        ("email:>x", "unknown operator"),
        ("id:~5", "unknown operator"),
        ("created_at:=2014-08-30T18:00:00Z", "unknown operator"),
        ("id:=abc", "not a valid integer"),
        ("id:=1,,2", "not a valid integer"),
        ("id:=99999999999999999999", "not a valid integer"),
        ("id:>", "not a valid integer"),
        ("created_at:>yesterday", "not a valid date-time"),
        ("created_at:>", "a date-time is required"),
        ("email:?x", "takes no value"),
        ("archived_at:*x", "takes no value"),
    ],
)
def test_parse_errors(raw: str, message: str) -> None:
    with pytest.raises(FilterError, match=message):
        parse_filter(raw)


def test_every_filterable_field_has_a_type() -> None:
    assert set(FILTERABLE) == {
        "id", "type_code", "email", "first_name", "last_name", "company_name", "occupation",
        "created_at", "updated_at", "archived_at", "deleted_at",
    }  # fmt: skip


STRINGS = [
    contact(1, email="Ann.Lee+x@Example.com", first_name="Ann", last_name="Lee"),
    contact(2, email="bob@example.org", first_name="Bob", last_name="O'Neil"),
    contact(3, email="", first_name="ann", last_name="Lee_Smith"),
]


@pytest.mark.parametrize(
    ("raws", "expected"),
    [
        (["email:=ann.lee+x@example.com"], [1]),  # compared with the lower-cased email
        (["email:=Ann.Lee+x@Example.com"], []),  # the value is not lower-cased
        (["email:!=bob@example.org"], [1, 3]),
        (["email:~EXAMPLE"], [1, 2]),
        (["email:~~%@example.%"], [1, 2]),
        (["email:~~%.org"], [2]),
        (["email:?"], [1, 2]),
        (["email:!?"], [3]),
        (["first_name:=Ann"], [1]),  # `=` is case-sensitive
        (["first_name:~ann"], [1, 3]),  # `~` is not
        (["last_name:~~Lee"], [1]),  # `~~` matches the whole value
        (["last_name:~~lee%"], [1, 3]),
        (["last_name:~~Lee_%"], [3]),  # `_` is literal, only `%` is a wildcard
        (["last_name:~~L_e"], []),
        (["last_name:=O'Neil"], [2]),
        (["first_name:~n", "last_name:~smith"], [3]),  # ANDed
        (["company_name:?"], []),
        (["occupation:!?"], [1, 2, 3]),
    ],
)
def test_string_operators(raws: list[str], expected: list[int]) -> None:
    assert ids(STRINGS, raws) == expected


NUMBERS = [contact(i, type_code=tc) for i, tc in ((1, 0), (2, 1), (3, 2), (4, None))]


@pytest.mark.parametrize(
    ("raws", "expected"),
    [
        (["type_code:=1"], [2]),
        (["type_code:!=1"], [1, 3]),  # null is not "different from 1" (SQL)
        (["type_code:>0"], [2, 3]),
        (["type_code:>=1"], [2, 3]),
        (["type_code:<2"], [1, 2]),
        (["type_code:<=0"], [1]),
        (["type_code:?"], [1, 2, 3]),
        (["type_code:!?"], [4]),
        (["type_code:=0,2"], [1, 3]),
        ([f"id:={1390712996921091568 + 2}"], [2]),
        ([f"id:={1390712996921091568 + 2},{1390712996921091568 + 4}"], [2, 4]),
        ([f"id:>{1390712996921091568 + 2}"], [3, 4]),
        ([f"id:<={1390712996921091568 + 2}"], [1, 2]),
        ([f"id:!={1390712996921091568 + 2}"], [1, 3, 4]),
        (["id:?"], [1, 2, 3, 4]),
        (["id:!?"], []),
    ],
)
def test_numeric_operators(raws: list[str], expected: list[int]) -> None:
    assert ids(NUMBERS, raws) == expected


DATES = [
    contact(1, created_at=at("2024-01-01T00:00:00Z"), updated_at=at("2024-03-01T00:00:00Z")),
    contact(2, created_at=at("2024-02-01T00:00:00Z"), archived_at=at("2024-05-01T00:00:00Z")),
    contact(3, created_at=at("2024-03-01T00:00:00Z"), archived_at=at("2024-06-01T00:00:00Z")),
]


@pytest.mark.parametrize(
    ("raws", "expected"),
    [
        ([], [1]),  # archived hidden by default
        (["created_at:>2024-01-01T00:00:00Z"], []),
        (["created_at:>=2024-01-01T00:00:00Z"], [1]),
        (["archived_at:*"], [1, 2, 3]),
        (["archived_at:?"], [2, 3]),
        (["archived_at:!?"], [1]),
        (["archived_at:>2024-05-01T00:00:00Z"], [3]),
        (["archived_at:>=2024-05-01T00:00:00Z"], [2, 3]),
        (["archived_at:<2024-06-01T00:00:00Z"], [2]),
        (["archived_at:<=2024-06-01T00:00:00Z"], [2, 3]),
        (["archived_at:*", "created_at:>2024-01-15T00:00:00Z"], [2, 3]),
        (["archived_at:*", "created_at:<2024-02-01T00:00:00Z"], [1]),
        (["archived_at:*", "updated_at:>=2024-03-01T00:00:00Z"], [1]),
        (["archived_at:*", "updated_at:<=2024-01-01T00:00:00Z"], [2, 3]),
        (["archived_at:*", "created_at:*"], [1, 2, 3]),
        (["archived_at:*", "deleted_at:?"], []),
        (["archived_at:*", "deleted_at:!?"], [1, 2, 3]),
        (["archived_at:*", "updated_at:?"], [1, 2, 3]),
    ],
)
def test_datetime_operators(raws: list[str], expected: list[int]) -> None:
    assert ids(DATES, raws) == expected


def test_parse_sort() -> None:
    assert parse_sort(None) == [SortKey("created_at", False)]
    assert parse_sort("", "desc") == [SortKey("created_at", True)]
    assert parse_sort("last_name,created_at:desc") == [
        SortKey("last_name", False),
        SortKey("created_at", True),
    ]
    assert parse_sort("last_name:asc", "desc") == [SortKey("last_name", False)]
    assert parse_sort("id", "desc") == [SortKey("id", True)]


@pytest.mark.parametrize(
    ("sort", "order"), [("phone_numbers", None), ("x", None), ("id:up", None), ("id", "sideways")]
)
def test_parse_sort_errors(sort: str, order: str | None) -> None:
    with pytest.raises(FilterError):
        parse_sort(sort, order)


def test_sort_ties_by_id_and_nulls_like_postgres() -> None:
    rows = [
        contact(3, last_name="B", type_code=None),
        contact(1, last_name="B", type_code=1),
        contact(2, last_name="A", type_code=0),
    ]
    base = 1390712996921091568

    def order(raw: str) -> list[int]:
        return [int(c["id"]) - base for c in sort_contacts(rows, parse_sort(raw))]

    assert order("last_name") == [2, 1, 3]
    assert order("last_name:desc") == [1, 3, 2]
    assert order("last_name:desc,id:desc") == [3, 1, 2]
    assert order("type_code") == [2, 1, 3]  # NULLs last ascending
    assert order("type_code:desc") == [3, 1, 2]  # and first descending
    assert order("created_at") == [1, 2, 3]  # equal times: id ascending
    assert order("created_at:desc") == [1, 2, 3]  # ties still by id ascending


def test_aware_and_naive_times_compare() -> None:
    flt = parse_filter("created_at:<2024-01-01T00:00:01")
    assert flt.value == datetime(2024, 1, 1, 0, 0, 1, tzinfo=UTC)
    assert flt.matches(contact(1))
