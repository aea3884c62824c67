"""The change feed's core against a Cliniko whose change is committed a moment after the
second it is stamped in, on an in-memory source paged as Cliniko pages, a store and a sink.

The overlap's premise: a change stamped in a second is committed within the overlap after
it. A run reading on past a second it read less than that ago must leave the next run's
overlap to read it again."""

from __future__ import annotations

import datetime as dt

from cliniko_automations.changefeed.changes import ContactSnapshot, FieldHasher
from cliniko_automations.changefeed.core import ChangeFeed, ContactsPage
from cliniko_automations.changefeed.events import CONTACTS_SOURCE, EventBuilder

from tests.unit.changefeed.test_partly_published import Store

S0 = dt.datetime(2026, 3, 1, 10, 0, 0, tzinfo=dt.UTC)
PAGE = 4
SECOND = dt.timedelta(seconds=1)


class PagedSource:
    """An account's contacts by updated_at (then id), PAGE at a time, as Cliniko's keyset
    listing gives them; `before_request(n)` runs before the n-th request is answered."""

    def __init__(self) -> None:
        self.contacts: dict[str, ContactSnapshot] = {}
        self.requests = 0
        self.before_request = lambda n: None

    def put(self, cid: str, updated_at: dt.datetime, **fields: str) -> None:
        self.contacts[cid] = ContactSnapshot(
            cid, S0 - dt.timedelta(days=1), updated_at, None, {"first_name": "Ada", **fields}
        )

    def changed_since(self, since, page):
        self.requests += 1
        self.before_request(self.requests)
        listed = sorted(
            (c for c in self.contacts.values() if c.updated_at >= since),
            key=lambda c: (c.updated_at, int(c.contact_id)),
        )
        return ContactsPage(listed[:PAGE], len(listed) > PAGE, len(listed))

    def changed_in_second(self, second, after_id):
        raise AssertionError("no second here holds a page")


class Bus:
    """Takes every event."""

    def __init__(self) -> None:
        self.events = []

    def publish(self, events):
        self.events.extend(events)


def test_a_change_committed_after_its_second_was_read_is_published_though_the_run_read_on():
    now = [S0]
    source, store, sink = PagedSource(), Store(), Bus()
    feed = ChangeFeed(
        lambda account: source,
        store,
        sink,
        FieldHasher(b"k" * 32),
        EventBuilder([], {}, clock=lambda: now[0].timestamp()),
        overlap=dt.timedelta(seconds=5),
        start_at=S0 - dt.timedelta(minutes=1),
        run_id="run",
        lease_seconds=60,
        clock=lambda: now[0],
    )
    # An import over two seconds: 1-3 in S0, 4-6 in S0+1.
    for n in range(1, 7):
        source.put(str(n), S0 + SECOND * ((n - 1) // 3))
    now[0] = S0 + 2 * SECOND

    def meanwhile(request: int) -> None:
        if request == 2:  # after the page of S0 and S0+1 was read, at S0+2
            # A change stamped S0 is committed now, within the overlap after its second ...
            source.put("1", S0, occupation="Engineer")
            # ... and the run reads on, a few seconds later, past a new change.
            now[0] = S0 + 9 * SECOND
            source.put("7", S0 + 8 * SECOND)

    source.before_request = meanwhile
    first = feed.poll("main")
    assert first.complete and first.error is None
    now[0] = S0 + 70 * SECOND
    feed.poll("main")  # the schedule's next run

    updates = [
        event.detail
        for event in sink.events
        if event.source == CONTACTS_SOURCE and event.detail["contact_id"] == "1"
    ]
    # First seen (made before the feed began), then its late change, once each.
    assert [(d["first_seen"], d["changed_fields"]) for d in updates] == [
        (True, ["first_name"]),
        (False, ["occupation"]),
    ]
