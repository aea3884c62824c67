"""The feed's view of Cliniko: one account's contacts changed since a moment, a page at a time,
through the project's typed client."""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable
from itertools import pairwise
from typing import Any

from cliniko_automations.cliniko.config import PER_PAGE
from cliniko_automations.cliniko.errors import UnexpectedResponse
from cliniko_automations.cliniko.filters import DateTimeFilter, NumericFilter
from cliniko_automations.cliniko.rules import country_code_for
from cliniko_automations.common.json_input import value_without_lone_surrogates

from .changes import TRACKED_FIELDS, ContactSnapshot
from .core import SECOND, ContactsPage

# `id` breaks ties inside a second, so the order is stable from one request to the next.
SORT = "updated_at,id"
_FIELDS = tuple(name for name in TRACKED_FIELDS if name != "archived_at")


class ClinikoContactsSource:
    def __init__(self, client: Any) -> None:
        self._client = client
        # The page size, kept for the rest of the run: the client reads a page too long to
        # hold smaller, from its first contact (contacts' notes are unbounded; a page of long
        # ones, refused again by every run, stopped the account's feed for good), and says
        # at what size. A single contact too long to hold still stops it (AnswerTooLong).
        self._per_page = PER_PAGE

    def _page(self, filters: list[Any], sort: str, page: int) -> Any:
        if page != 1:
            # The feed reads by keyset, always the first page: a later one read smaller would
            # start where it did but end sooner, and the next page number would skip.
            raise ValueError("the change feed reads the first page of a keyset only")
        listing = self._client.contacts_page(filters, sort=sort, page=1, per_page=self._per_page)
        self._per_page = listing.per_page
        return listing

    def changed_since(self, since: dt.datetime, page: int) -> ContactsPage:
        filters = [
            DateTimeFilter("updated_at").ge(since.replace(microsecond=0)),
            # Lists leave archived contacts out unless a filter on archived_at asks for them.
            DateTimeFilter("archived_at").any(),
        ]
        listing = self._page(filters, SORT, page)
        snapshots = [_snapshot(c) for c in listing.contacts]
        # The cursor moves to the page's newest second: on a page not in updated_at order
        # (a Cliniko that ignored `sort`) that skips, for good, the changes still unlisted.
        _in_order(snapshots, lambda c: c.updated_at.replace(microsecond=0), "updated_at")
        floor = since.replace(microsecond=0) - SECOND  # a stamp shown rounded, not cut
        _as_asked(snapshots, lambda c: c.updated_at >= floor, "updated_at")
        return ContactsPage(
            snapshots, listing.has_next, listing.total_entries, _offset(listing.clock_offset)
        )

    def changed_in_second(self, second: dt.datetime, after_id: int) -> ContactsPage:
        start = second.replace(microsecond=0)
        filters = [
            DateTimeFilter("updated_at").ge(start),
            DateTimeFilter("updated_at").lt(start + SECOND),
            NumericFilter("id").gt(after_id),
            DateTimeFilter("archived_at").any(),
        ]
        listing = self._page(filters, "id", 1)
        snapshots = [_snapshot(c) for c in listing.contacts]
        # The next request reads on from this page's highest id: only sound in id order, and
        # on a page of that second after that id (a Cliniko that dropped `id:>` listed the
        # second's first page again and again: the feed read it until each run's time ran out,
        # and never went past it).
        _in_order(snapshots, lambda c: int(c.contact_id), "id")
        _as_asked(snapshots, lambda c: int(c.contact_id) > after_id, "id")
        # A second either side: a Cliniko that shows its stamps rounded, not cut, is not
        # taken for one that dropped a filter.
        _as_asked(
            snapshots, lambda c: start - SECOND <= c.updated_at < start + 2 * SECOND, "updated_at"
        )
        return ContactsPage(snapshots, listing.has_next, clock_offset=_offset(listing.clock_offset))


def _offset(seconds: float | None) -> dt.timedelta | None:
    return None if seconds is None else dt.timedelta(seconds=seconds)


def _in_order(
    snapshots: list[ContactSnapshot], key: Callable[[ContactSnapshot], Any], column: str
) -> None:
    keys = [key(c) for c in snapshots]
    if any(later < earlier for earlier, later in pairwise(keys)):
        raise UnexpectedResponse(f"Cliniko's page of contacts is not sorted by {column}")


def _as_asked(
    snapshots: list[ContactSnapshot], asked: Callable[[ContactSnapshot], bool], field: str
) -> None:
    if not all(asked(c) for c in snapshots):
        raise UnexpectedResponse(f"Cliniko listed contacts outside the {field} filter asked for")


def _snapshot(contact: Any) -> ContactSnapshot:
    body = contact.to_dict()
    return ContactSnapshot(
        contact_id=str(contact.id),
        created_at=contact.created_at,
        updated_at=contact.updated_at,
        archived_at=_archived_at(contact),
        archive_shown="archived_at" in body or "deleted_at" in body,
        # A text Cliniko holds with half an emoji (a lone surrogate, which its JSON can carry)
        # could never be encoded into an event or a signed webhook: every run failed on it,
        # and the account's feed stopped there.
        fields={
            name: value_without_lone_surrogates(value)
            for name in _FIELDS
            if (value := _listed(body, name)) is not _UNKNOWN
        },
    )


_UNKNOWN = object()


def _listed(body: dict[str, Any], name: str) -> Any:
    """A tracked field's value as the listing shows it, or `_UNKNOWN` when it does not: a
    field left out is not blank, and published as null it would tell subscribers a contact
    has none (then it is hashed as null, as it always was, and left out of the contact's
    fields). Cliniko's documented contacts carry `country`, the name, and no `country_code`
    (nor, in a list, `doctor_type`): the code is read from the name, as the intake reads it,
    so a change of country is named."""
    if name in body:
        return body[name]
    if name == "country_code" and "country" in body:
        country = body["country"]
        if not isinstance(country, str) or not country.strip():
            return None
        return country_code_for(country) or _UNKNOWN
    return _UNKNOWN


def _archived_at(contact: Any) -> dt.datetime | None:
    """When the contact was archived: `archived_at`, else `deleted_at`, the only mark the
    contacts page of Cliniko's docs shows (its legacy DELETE archives), as `rules.is_archived`
    reads them."""
    for mark in (contact.archived_at, contact.deleted_at):
        if isinstance(mark, dt.datetime):
            return mark
    return None
