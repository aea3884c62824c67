"""A contact's date-times reach the code as zoned datetimes or not at all. The generated parser
keeps an optional mark it cannot read (an archive mark) as its raw text: that is refused as off
the spec, never taken for a mark that is missing (a contact read as "not archived")."""

from __future__ import annotations

import datetime as dt

import pytest
from cliniko_automations.cliniko import errors
from cliniko_automations.cliniko.client import _normalise
from cliniko_client.models import Contact

from tests.unit.cliniko.test_ids import SEED_CONTACT


@pytest.mark.parametrize("field", ["archived_at", "deleted_at"])
@pytest.mark.parametrize(
    "value",
    [
        "2016-12-31T23:59:60Z",  # a leap second: Python's datetime has no second 60
        "2016-12-31T24:00:00Z",
        "yesterday",
    ],
)
def test_an_archive_mark_that_cannot_be_read_is_refused(field: str, value: str) -> None:
    with pytest.raises(errors.UnexpectedResponse, match="cannot read"):
        _normalise(Contact.from_dict({**SEED_CONTACT, field: value}))


@pytest.mark.parametrize("field", ["created_at", "updated_at", "archived_at", "deleted_at"])
def test_a_date_time_without_a_zone_is_refused(field: str) -> None:
    with pytest.raises(errors.UnexpectedResponse, match="without a zone"):
        _normalise(Contact.from_dict({**SEED_CONTACT, field: "2016-12-31T23:59:59"}))


@pytest.mark.parametrize("field", ["archived_at", "deleted_at"])
def test_an_archive_mark_with_an_offset_or_none_is_read(field: str) -> None:
    marked = _normalise(Contact.from_dict({**SEED_CONTACT, field: "2017-01-01T10:00:00.5+10:00"}))
    assert getattr(marked, field) == dt.datetime(2017, 1, 1, 0, 0, 0, 500000, tzinfo=dt.UTC)
    assert getattr(_normalise(Contact.from_dict({**SEED_CONTACT, field: None})), field) is None
