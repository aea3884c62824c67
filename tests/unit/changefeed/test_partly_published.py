"""The change feed's core with changes taken in part, on an in-memory source, store and sink
(the sink refuses the entries a test names, as EventBridge does after four attempts, and says
which it took)."""

from __future__ import annotations

import base64
import datetime as dt

import pytest
from cliniko_automations.changefeed.changes import ContactSnapshot, FieldHasher
from cliniko_automations.changefeed.core import (
    ChangeFeed,
    ContactsPage,
    CorruptState,
    PublishFailed,
)
from cliniko_automations.changefeed.events import CONTACTS_SOURCE, EventBuilder
from cliniko_automations.changefeed.signing import signing_keys
from cliniko_automations.changefeed.store import _state
from cliniko_automations.changefeed.subscribers import DEFAULT_PATH, Subscribers
from cliniko_automations.common.config_file import validated

T0 = dt.datetime(2026, 3, 1, 10, 0, 0, tzinfo=dt.UTC)
SECRET = "whsec_" + base64.b64encode(b"0123456789abcdef0123456789abcdef").decode()
TYPES = ["contact.created", "contact.updated", "contact.archived", "contact.unarchived"]


class Source:
    def __init__(self) -> None:
        self.contacts: dict[str, ContactSnapshot] = {}
        self.stale: list[ContactSnapshot] = []

    def put(self, cid, updated_at, archived=False, **fields):
        self.contacts[cid] = ContactSnapshot(
            cid, T0, updated_at, updated_at if archived else None, {"first_name": "Ada", **fields}
        )

    def changed_since(self, since, page):
        listed = [c for c in self.contacts.values() if c.updated_at >= since] + self.stale
        return ContactsPage(sorted(listed, key=lambda c: c.updated_at), False)

    def changed_in_second(self, second, after_id):
        raise AssertionError("not used")


class Store:
    def __init__(self) -> None:
        self.states = {}
        self.cursor_at = None

    def lease(self, account, owner, seconds):
        return True

    def release(self, account, owner):
        pass

    def cursor(self, account):
        return self.cursor_at

    def position(self, account):
        return None

    def save_cursor(self, account, cursor, *, caught_up, position=None):
        self.cursor_at = cursor

    def published(self, account, contact_ids):
        return {c: self.states[c] for c in contact_ids if c in self.states}

    def record(self, account, states):
        for state in states:
            self.states[state.contact_id] = state


class Sink:
    """Takes every event but those `refuse` matches (PublishFailed naming what it took), or
    raises at call number `raise_at`."""

    def __init__(self) -> None:
        self.taken = []  # (source, type, event id) in the order taken
        self.calls = 0
        self.refuse = lambda event: False
        self.raise_at = None

    def publish(self, events):
        self.calls += 1
        if self.raise_at == self.calls:
            raise TimeoutError("the call's answer never came")
        accepted = set()
        for n, event in enumerate(events):
            if not self.refuse(event):
                accepted.add(n)
                self.taken.append((event.source, event.detail_type, event_id(event)))
        if len(accepted) < len(events):
            raise PublishFailed("refused", frozenset(accepted))


def event_id(event):
    return (
        event.detail["event_id"]
        if event.source == CONTACTS_SOURCE
        else event.detail["webhook"]["id"]
    )


def feed(source, store, sink, signing_clock=lambda: 1_700_000_000.0):
    subs = validated(
        DEFAULT_PATH,
        Subscribers,
        {
            "subscribers": [
                {
                    "name": "crm-sync",
                    "url": "https://hooks.example.com/cliniko",
                    "events": TYPES,
                    "secret": "cliniko-automations/webhooks/crm-sync",
                    "include_fields": True,
                }
            ]
        },
    ).subscribers
    return ChangeFeed(
        lambda account: source,
        store,
        sink,
        FieldHasher(b"k" * 32),
        EventBuilder(subs, {"crm-sync": signing_keys(SECRET)}, clock=signing_clock),
        overlap=dt.timedelta(seconds=5),
        start_at=T0 - dt.timedelta(minutes=1),
        run_id="run",
        lease_seconds=60,
        clock=lambda: T0 + dt.timedelta(hours=1),
    )


@pytest.fixture
def world():
    source, store, sink = Source(), Store(), Sink()
    return source, store, sink, feed(source, store, sink)


def bus_types(sink):
    return [kind for src, kind, _ in sink.taken if src == CONTACTS_SOURCE]


def test_an_owed_part_taken_is_kept_when_the_call_of_the_new_changes_is_refused(world):
    source, store, sink, f = world
    source.put("a", T0 + dt.timedelta(seconds=1))
    f.poll("main")
    # a's update: its delivery refused
    source.put("a", T0 + dt.timedelta(seconds=2), city="x")
    sink.refuse = lambda e: e.source != CONTACTS_SOURCE
    assert f.poll("main").error == "publish_failed"
    sink.refuse = lambda e: False
    owed = store.states["a"].unsent[0].event_id
    # a's owed delivery goes in a call of its own, then four others' creations (8 entries) and
    # a's new change (2) in the next, which is refused whole.
    for n in range(4):
        source.put(f"b{n}", T0 + dt.timedelta(seconds=3))
    source.put("a", T0 + dt.timedelta(seconds=4), city="y")
    source.contacts["a"] = source.contacts.pop("a")  # listed after the others
    sink.taken.clear()
    calls = sink.calls
    sink.refuse = lambda e: sink.calls > calls + 1
    assert f.poll("main").error == "publish_failed"
    sink.refuse = lambda e: False
    f.poll("main")
    ids = [i for _, _, i in sink.taken]
    assert ids.count(owed) == 1  # taken once, not sent again
    bus = [i for src, _, i in sink.taken if src == CONTACTS_SOURCE]
    assert len(bus) == len(set(bus)) == 5  # the four creations and a's change, once each


def test_an_accepted_owed_delivery_is_not_sent_again_when_the_next_call_raises(world):
    """A run dying in the call after the one EventBridge took a contact's owed delivery in:
    that delivery is on the bus, and recorded so."""
    source, store, sink, f = world
    source.put("a", T0 + dt.timedelta(seconds=1))
    f.poll("main")
    source.put("a", T0 + dt.timedelta(seconds=2), city="x")
    sink.refuse = lambda e: e.source != CONTACTS_SOURCE
    f.poll("main")
    sink.refuse = lambda e: False
    owed = store.states["a"].unsent[0].event_id
    for n in range(4):
        source.put(f"b{n}", T0 + dt.timedelta(seconds=3))
    source.put("a", T0 + dt.timedelta(seconds=4), city="y")
    source.contacts["a"] = source.contacts.pop("a")
    sink.taken.clear()
    sink.raise_at = sink.calls + 2  # the second call of the run raises (throttled, timeout)
    with pytest.raises(TimeoutError):
        f.poll("main")
    assert [i for _, _, i in sink.taken].count(owed) == 1  # EventBridge took it
    sink.raise_at = None
    f.poll("main")
    assert [i for _, _, i in sink.taken].count(owed) == 1  # ...and it is not sent again


def test_an_owed_bus_event_refused_again_is_not_overtaken_by_the_next_change(world):
    """The README: the next run sends what is owed before the contact's next change; an
    archive undone reaches bus subscribers as archived then unarchived."""
    source, store, sink, f = world
    source.put("a", T0 + dt.timedelta(seconds=1))
    f.poll("main")
    source.put("a", T0 + dt.timedelta(seconds=2), archived=True)
    sink.refuse = lambda e: e.source == CONTACTS_SOURCE  # the delivery went, the bus event not
    assert f.poll("main").error == "publish_failed"
    owed = store.states["a"].unsent[0].event_id
    source.put("a", T0 + dt.timedelta(seconds=3))  # unarchived by staff
    # EventBridge refuses the owed archive again (4 attempts), takes the others of the call.
    sink.refuse = lambda e: e.source == CONTACTS_SOURCE and e.detail["event_id"] == owed
    sink.taken.clear()
    f.poll("main")
    sink.refuse = lambda e: False
    f.poll("main")
    assert bus_types(sink) == ["contact.archived", "contact.unarchived"]


def test_one_call_taking_some_changes_whole_some_in_part_and_refusing_some(world):
    source, store, sink, f = world
    for cid in "abc":
        source.put(cid, T0 + dt.timedelta(seconds=1))
    f.poll("main")
    for cid in "abc":
        source.put(cid, T0 + dt.timedelta(seconds=2), city="x")
    sink.refuse = lambda e: (
        (e.detail.get("contact_id") or e.detail["body"]["data"]["contact_id"]) == "b"
        or (e.source != CONTACTS_SOURCE and e.detail["body"]["data"]["contact_id"] == "a")
    )
    sink.taken.clear()
    first = f.poll("main")
    assert (first.error, first.changes, first.events) == ("publish_failed", 2, 3)
    assert "b" in store.states and store.states["b"].unsent == ()
    sink.refuse = lambda e: False
    second = f.poll("main")
    assert (second.error, second.changes, second.events) == (None, 1, 3)
    ids = [i for _, _, i in sink.taken]
    assert len(ids) == 6 and len(set(ids)) == 3 and all(ids.count(i) == 2 for i in ids)
    assert f.poll("main").events == 0


@pytest.mark.parametrize(
    "edit",
    [
        lambda u: u.update(changed_fields={"L": [{"N": "1"}]}),
        lambda u: u.update(first_seen={"S": "true"}),
        lambda u: u.update(erased={"S": "true"}),
        lambda u: u.pop("type"),
        lambda u: u.update(subscribers={"SS": ["crm-sync"]}),
        lambda u: u.update(bus={"NULL": True}),
        # A type the feed never sends would go on the bus under it, matched by no rule.
        lambda u: u.update(type={"S": "contact.update"}),
        lambda u: u.update(type={"S": "contact.deleted"}),
    ],
)
def test_an_unsent_entry_edited_by_hand_is_corrupt_state(edit):
    unsent = {
        "event_id": {"S": "msg_1"},
        "type": {"S": "contact.updated"},
        "updated_at": {"S": "2026-03-01T10:00:00Z"},
        "changed_fields": {"L": [{"S": "city"}]},
        "first_seen": {"BOOL": False},
        "bus": {"BOOL": True},
        "subscribers": {"L": [{"S": "crm-sync"}]},
    }
    item = {
        "contact_id": {"S": "a"},
        "updated_at": {"S": "2026-03-01T10:00:00Z"},
        "archived": {"BOOL": False},
        "hashes": {"M": {}},
        "event_id": {"S": "msg_1"},
        "unsent": {"L": [{"M": unsent}]},
    }
    # Recorded by a version that did not mark erasures: read, and sent unmarked.
    assert _state(item).unsent[0].subscribers == ("crm-sync",)
    assert _state(item).unsent[0].erased is False
    edit(unsent)
    with pytest.raises(CorruptState):
        _state(item)
    for odd in ({"M": {}}, {"L": [{"S": "x"}]}, {"L": ["x"]}, {"NULL": True}):
        with pytest.raises(CorruptState):
            _state({**item, "unsent": odd})


def test_a_delivery_is_signed_as_it_is_put_not_as_its_page_was_built():
    """A page's changes are built before its first call; its last calls go out seconds later
    (a minute here). Signed at the build, their deliveries would reach the end of
    EventBridge's 5 minutes of retries older than a receiver's 5 minutes of tolerance."""
    now = [1_700_000_000.0]
    source, store = Source(), Store()

    class SlowSink(Sink):
        def publish(self, events):
            signed = {
                int(e.detail["webhook"]["timestamp"]) for e in events if e.source != CONTACTS_SOURCE
            }
            assert signed == {int(now[0])}, "a delivery signed before its call"
            super().publish(events)
            now[0] += 60

    sink = SlowSink()
    for n in range(12):  # 24 entries: three calls
        source.put(f"c{n}", T0 + dt.timedelta(seconds=1))
    result = feed(source, store, sink, signing_clock=lambda: now[0]).poll("main")
    assert (result.error, sink.calls, len(sink.taken)) == (None, 3, 24)
