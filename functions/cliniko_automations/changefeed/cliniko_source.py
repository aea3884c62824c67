"""The feed's view of Cliniko: one account's contacts changed since a moment, a page at a time,
through the project's typed client."""

from __future__ import annotations

import datetime as dt
from typing import Any

from cliniko_client.types import Unset

from cliniko_automations.cliniko.filters import DateTimeFilter

from .changes import TRACKED_FIELDS, ContactSnapshot
from .core import ContactsPage

# `id` breaks ties inside a second, so the order is stable from one request to the next.
SORT = "updated_at,id"
_FIELDS = tuple(name for name in TRACKED_FIELDS if name != "archived_at")


class ClinikoContactsSource:
    def __init__(self, client: Any) -> None:
        self._client = client

    def changed_since(self, since: dt.datetime, page: int) -> ContactsPage:
        filters = [
            DateTimeFilter("updated_at").ge(since.replace(microsecond=0)),
            # Lists leave archived contacts out unless a filter on archived_at asks for them.
            DateTimeFilter("archived_at").any(),
        ]
        listing = self._client.contacts_page(filters, sort=SORT, page=page)
        return ContactsPage([_snapshot(c) for c in listing.contacts], listing.has_next)


def _snapshot(contact: Any) -> ContactSnapshot:
    body = contact.to_dict()
    archived_at = contact.archived_at
    return ContactSnapshot(
        contact_id=str(contact.id),
        created_at=contact.created_at,
        updated_at=contact.updated_at,
        archived_at=None if archived_at is None or isinstance(archived_at, Unset) else archived_at,
        fields={name: body.get(name) for name in _FIELDS},
    )
