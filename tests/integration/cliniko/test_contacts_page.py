"""`ClinikoClient.contacts_page`: one page at a time, for callers that move a cursor."""

from __future__ import annotations

import datetime as dt

import pytest
from cliniko_automations.cliniko.filters import DateTimeFilter


def test_pages_in_updated_at_order_with_archived_included(cliniko):
    cliniko.control.seed(150, seed=1, archived=20)
    client = cliniko.client()
    since = dt.datetime(2000, 1, 1, tzinfo=dt.UTC)
    filters = [DateTimeFilter("updated_at").ge(since), DateTimeFilter("archived_at").any()]
    first = client.contacts_page(filters, sort="updated_at,id")
    second = client.contacts_page(filters, sort="updated_at,id", page=2)
    assert (len(first.contacts), first.has_next, first.total_entries) == (100, True, 150)
    assert (len(second.contacts), second.has_next) == (50, False)
    stamps = [c.updated_at for c in first.contacts + second.contacts]
    assert stamps == sorted(stamps)
    assert sum(1 for c in first.contacts + second.contacts if c.archived_at) == 20
    assert all(isinstance(c.id, str) for c in first.contacts)
    requested = cliniko.control.requests()[-1]["query"]
    assert requested["q[]"] == ["updated_at:>=2000-01-01T00:00:00Z", "archived_at:*"]


@pytest.mark.parametrize("page", [0, -1, True, "2"])
def test_a_bad_page_number_is_refused_before_sending(cliniko, page):
    cliniko.control.clear_requests()
    with pytest.raises(ValueError, match="page"):
        cliniko.client().contacts_page(page=page)
    assert cliniko.control.requests() == []
