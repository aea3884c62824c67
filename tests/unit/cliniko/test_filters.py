"""Filter rendering for every operator of the reference, and how httpx encodes it."""

from __future__ import annotations

import datetime as dt
from decimal import Decimal
from urllib.parse import parse_qs, urlsplit

import httpx
import pytest
from cliniko_automations.cliniko.filters import (
    BooleanFilter,
    DateFilter,
    DateTimeFilter,
    NumericFilter,
    StringFilter,
)

AT = dt.datetime(2014, 8, 30, 18, 0, 0, tzinfo=dt.UTC)


@pytest.mark.parametrize(
    ("built", "query"),
    [
        (StringFilter("email").eq("a+b@example.com"), "email:=a+b@example.com"),
        (StringFilter("last_name").ne("Bode"), "last_name:!=Bode"),
        (StringFilter("company_name").contains("Clinic"), "company_name:~Clinic"),
        (StringFilter("first_name").like("Dar%l"), "first_name:~~Dar%l"),
        (StringFilter("occupation").present(), "occupation:?"),
        (StringFilter("occupation").absent(), "occupation:!?"),
        (NumericFilter("id").eq("1390712996921091568"), "id:=1390712996921091568"),
        (NumericFilter("id").eq(["1", "2", "3"]), "id:=1,2,3"),
        (NumericFilter("id").eq((1, "2")), "id:=1,2"),
        (NumericFilter("type_code").eq(1), "type_code:=1"),
        (NumericFilter("type_code").ne(0), "type_code:!=0"),
        (NumericFilter("id").gt("10"), "id:>10"),
        (NumericFilter("id").ge(10), "id:>=10"),
        (NumericFilter("id").lt(10), "id:<10"),
        (NumericFilter("id").le(Decimal("10")), "id:<=10"),
        (NumericFilter("type_code").present(), "type_code:?"),
        (NumericFilter("type_code").absent(), "type_code:!?"),
        (DateTimeFilter("created_at").gt(AT), "created_at:>2014-08-30T18:00:00Z"),
        (DateTimeFilter("created_at").ge(AT), "created_at:>=2014-08-30T18:00:00Z"),
        (DateTimeFilter("updated_at").lt(AT), "updated_at:<2014-08-30T18:00:00Z"),
        (DateTimeFilter("updated_at").le(AT), "updated_at:<=2014-08-30T18:00:00Z"),
        (DateTimeFilter("archived_at").any(), "archived_at:*"),
        (DateTimeFilter("archived_at").present(), "archived_at:?"),
        (DateTimeFilter("deleted_at").absent(), "deleted_at:!?"),
        (DateFilter("date_of_birth").eq(dt.date(1980, 5, 1)), "date_of_birth:=1980-05-01"),
        (DateFilter("date_of_birth").gt(dt.date(1980, 5, 1)), "date_of_birth:>1980-05-01"),
        (DateFilter("date_of_birth").ge(dt.date(1980, 5, 1)), "date_of_birth:>=1980-05-01"),
        (DateFilter("date_of_birth").lt(dt.date(1980, 5, 1)), "date_of_birth:<1980-05-01"),
        (DateFilter("date_of_birth").le(dt.date(1980, 5, 1)), "date_of_birth:<=1980-05-01"),
        (DateFilter("date_of_birth").matches("****-05-**"), "date_of_birth:=****-05-**"),
        (DateFilter("date_of_birth").present(), "date_of_birth:?"),
        (DateFilter("date_of_birth").absent(), "date_of_birth:!?"),
        (BooleanFilter("archived").eq(True), "archived:=true"),
        (BooleanFilter("archived").ne(False), "archived:!=false"),
    ],
)
def test_every_operator_renders(built: object, query: str) -> None:
    assert built.to_query() == query  # type: ignore[attr-defined]
    assert str(built) == query


def test_datetime_in_another_zone_is_converted_to_utc_z() -> None:
    sydney = dt.timezone(dt.timedelta(hours=10))
    local = dt.datetime(2014, 8, 31, 4, 0, 0, tzinfo=sydney)
    assert DateTimeFilter("created_at").gt(local).to_query() == "created_at:>2014-08-30T18:00:00Z"


def test_datetime_fraction_is_kept_when_present() -> None:
    at = AT.replace(microsecond=250000)
    assert (
        DateTimeFilter("updated_at").gt(at).to_query() == "updated_at:>2014-08-30T18:00:00.250000Z"
    )


def test_naive_datetime_is_refused() -> None:
    with pytest.raises(ValueError, match="naive"):
        DateTimeFilter("created_at").lt(dt.datetime(2014, 8, 30, 18, 0, 0))


def test_datetime_filter_has_no_equality() -> None:
    assert not hasattr(DateTimeFilter("created_at"), "eq")


@pytest.mark.parametrize("value", [1.0, True, "1e3", "12a", "", None])
def test_numeric_values_must_be_whole_numbers_not_floats(value: object) -> None:
    with pytest.raises(TypeError):
        NumericFilter("id").eq(value)  # type: ignore[arg-type]


def test_numeric_list_must_not_be_empty() -> None:
    with pytest.raises(ValueError):
        NumericFilter("id").eq([])


@pytest.mark.parametrize("field", ["", "Email", "email:=x", "q[]", "first name", "1st"])
def test_field_names_are_checked(field: str) -> None:
    with pytest.raises(ValueError):
        StringFilter(field)


def test_string_values_refuse_control_characters() -> None:
    with pytest.raises(ValueError):
        StringFilter("email").eq("a@b.co\nq[]=id:?")
    with pytest.raises(TypeError):
        StringFilter("email").eq(5)  # type: ignore[arg-type]


def test_date_filter_refuses_datetimes_and_bad_patterns() -> None:
    with pytest.raises(TypeError):
        DateFilter("date_of_birth").eq(AT)  # type: ignore[arg-type]
    with pytest.raises(ValueError):
        DateFilter("date_of_birth").matches("05-**")


def test_boolean_filter_takes_only_bools() -> None:
    with pytest.raises(TypeError):
        BooleanFilter("archived").eq("true")  # type: ignore[arg-type]
    assert not hasattr(BooleanFilter("archived"), "present")


def test_filters_are_percent_encoded_as_separate_q_params() -> None:
    """What the generated list operation hands httpx: one `q[]` per filter, values encoded."""
    filters = [
        StringFilter("email").eq("a+b@example.com"),
        NumericFilter("id").eq(["1", "2"]),
        StringFilter("last_name").like("O'%"),
        StringFilter("company_name").eq("A&B #1 = 100%"),
    ]
    request = httpx.Request(
        "GET", "http://127.0.0.1/au1/v1/contacts", params={"q[]": [f.to_query() for f in filters]}
    )
    raw_query = request.url.query.decode()
    assert "a%2Bb%40example.com" in raw_query  # the plus survives as %2B, not a space
    assert "&B" not in raw_query and "#" not in raw_query
    decoded = parse_qs(urlsplit(str(request.url)).query)["q[]"]
    assert decoded == [f.to_query() for f in filters]
