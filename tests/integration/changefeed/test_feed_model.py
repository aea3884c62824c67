"""A randomized stateful model of the change feed: hypothesis interleaves contact changes
(several in one second, at the cursor's own second, committed late within the overlap),
polls through the real handler, polls killed midway, Cliniko faults (429, 5xx), an update
landing while a poll pages, and a second invocation overlapping a poll, against the emulator
over HTTP and moto. Cliniko's clock and the feed's are one virtual clock (the feed's skewed
by a few seconds, within the overlap), so seconds are shared at will; pages are 2 contacts,
so a handful of contacts makes many pages and crowded seconds.

Invariants (README "Contacts change feed"):
- once a poll completes normally, each contact's state from before it started was published
  (its newest, with its fields, through an opted-in webhook subscriber);
- nothing published twice: one event id per change, and a contact's consecutive publications
  are different states; the one repeat allowed is a batch EventBridge took as the run died
  (the same event ids);
- events carry only `{"event_id", "type", "account", "contact_id", "updated_at",
  "changed_fields", "first_seen", "erased"}`, of the right type, and webhooks are signed;
- the cursor never moves back; a poll refused the lease publishes nothing;
- no contact value in any log line.
"""

from __future__ import annotations

import datetime as dt
import functools
import json
import secrets
import threading
from collections import Counter
from typing import Any, ClassVar

import boto3
import pytest
from cliniko_automations.changefeed import cliniko_source, handler
from cliniko_automations.changefeed.changes import TRACKED_FIELDS
from cliniko_automations.changefeed.core import ChangeFeed
from cliniko_automations.changefeed.store import DynamoFeedStore
from cliniko_automations.cliniko import ClinikoClient
from cliniko_automations.common import aws
from hypothesis import strategies as st
from hypothesis.stateful import (
    RuleBasedStateMachine,
    initialize,
    invariant,
    precondition,
    rule,
    run_state_machine_as_test,
)
from standardwebhooks import Webhook

from tests.fixtures.emulator import before_each_answer
from tests.fixtures.state_machines import (
    a_fresh_start,
    assert_none_logged,
    assert_none_printed,
    cliniko_waits_pass_at_once,
    model_world,
    state_machine_settings,
    tapped_logs,
)
from tests.integration.changefeed.stack import (
    ACCOUNT,
    EVENT_DETAIL_KEYS,
    create_feed_stack,
    feed_environment,
    run_feed,
    subscribed,
)

BASE = dt.datetime(2026, 1, 5, 9, 0, 0, 250_000, tzinfo=dt.UTC)
OVERLAP = 5
TYPES = {"contact.created", "contact.updated", "contact.archived", "contact.unarchived"}
CONTACT_KEYS = set(TRACKED_FIELDS) | {"id", "created_at", "updated_at"}
# The fields the model writes; values from a small set, so a contact comes back to a state.
WRITTEN = ("first_name", "last_name", "city", "occupation")
SUBSCRIBERS = """\
subscribers:
  - name: full-copy
    url: https://copy.example.com/in
    events: [contact.created, contact.updated, contact.archived, contact.unarchived]
    secret: tests/webhooks/full-copy
    include_fields: true
"""
PAGE = 2


class Killed(BaseException):
    """The Lambda dying: nothing after it runs, no handler catches it."""


def iso(moment: dt.datetime) -> str:
    return moment.astimezone(dt.UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def value(name: str, n: int) -> str:
    # Distinctive, so a value in a log line is found (and not a word the code logs).
    return f"Qz{name[:3]}{n}x"


class Clock:
    """Cliniko's time, and the feed's (skewed within the overlap)."""

    now = BASE
    skew = 0.0

    @classmethod
    def cliniko(cls) -> dt.datetime:
        return cls.now

    @classmethod
    def feed(cls) -> dt.datetime:
        return cls.now + dt.timedelta(seconds=cls.skew)


class FeedModel(RuleBasedStateMachine):
    world: ClassVar[dict[str, Any]] = {}

    def __init__(self) -> None:
        super().__init__()
        w = self.world
        self.emulator, self.control, self.monkeypatch = w["emulator"], w["control"], w["mp"]
        a_fresh_start(self.monkeypatch, w["moto"])
        self.control.reset()
        self.control.set_behaviour(subsecond_times=True)
        self.control.set_rate_limit(None)
        self.api_key = f"MS0xtest{secrets.token_hex(12)}-au1"
        self.control.add_key(self.api_key)
        w["n"] += 1
        directory = w["tmp"] / f"example{w['n']}"
        directory.mkdir()
        self.stack = create_feed_stack()
        self.webhook_secret = subscribed(directory, SUBSCRIBERS, "full-copy")["full-copy"]
        feed_environment(
            self.monkeypatch,
            self.stack,
            _Key(self.api_key, self.emulator.base_url_template),
            directory,
            BACKFILL_FROM=iso(BASE - dt.timedelta(minutes=1)),
            REQUESTS_PER_MINUTE="200",
        )
        # Staff write with a key of their own: a 429 the feed met holds its key's budget in
        # this process, and would hold staff's writes too.
        staff_key = f"MS0xstaff{secrets.token_hex(12)}-au1"
        self.control.add_key(staff_key)
        self.client = ClinikoClient(
            staff_key,
            "Model Tests (tests@example.com)",
            base_url=self.emulator.base_url_template,
        )
        Clock.now, Clock.skew = BASE, 0.0
        self.store = DynamoFeedStore(boto3.client("dynamodb"), self.stack.table, state_days=400)
        self.ids: list[str] = []
        self.counter = 0
        self.values: set[str] = set()
        self.bus: list[dict[str, Any]] = []  # bus events, in arrival order
        self.hooks: list[dict[str, Any]] = []  # webhook events
        # Event ids of batches EventBridge took as a run died: each may come once more.
        self.repeatable: Counter[str] = Counter()
        self.cursor: dt.datetime | None = None
        self.lease_held = False
        self.polls_run = 0
        self.slow: list[tuple[str, str, dt.datetime]] = []  # writes begun, not committed
        self.log = w["log"]
        self.log.lines.clear()

    def teardown(self) -> None:
        self.client.close()
        self.emulator.app.faults.reset()
        report = self.control.violations()
        assert not report["request"] and not report["response"], report

    # -- Cliniko's side ----------------------------------------------------------------------

    def _fresh(self, name: str) -> str:
        self.counter += 1
        text = value(name, self.counter % 4)  # small set: states come back
        self.values.add(text)
        _ALL_VALUES.add(text)
        return text

    def _tick(self) -> None:
        # Time moves a little between writes: a few writes share a second.
        Clock.now += dt.timedelta(microseconds=37_000)

    @initialize(n=st.integers(1, 6))
    def contacts_before_the_first_poll(self, n: int) -> None:
        self.create(n)

    @rule(n=st.integers(1, 3))
    def create(self, n: int) -> None:
        for _ in range(n):
            self.counter += 1
            body = {"first_name": value("first", self.counter), "last_name": self._fresh("last")}
            self.values.add(body["first_name"])
            _ALL_VALUES.add(body["first_name"])
            self.ids.append(str(self.client.create_contact(body).id))
            self._tick()

    @precondition(lambda self: self.ids)
    @rule(i=st.integers(0, 50), field=st.sampled_from(WRITTEN[1:]))
    def update(self, i: int, field: str) -> None:
        cid = self.ids[i % len(self.ids)]
        self.client.update_contact(cid, {field: self._fresh(field)}, include_archived=True)
        self._tick()

    @precondition(lambda self: self.ids)
    @rule(i=st.integers(0, 50))
    def archive_or_restore(self, i: int) -> None:
        cid = self.ids[i % len(self.ids)]
        if self._record(cid)["archived_at"] is None:
            self.client.archive_contact(cid)
        else:
            self.control.unarchive(cid)  # staff restore it in Cliniko's app
        self._tick()

    @precondition(lambda self: self.ids and not self.slow)
    @rule(i=st.integers(0, 50), field=st.sampled_from(WRITTEN[1:]))
    def slow_write_begins(self, i: int, field: str) -> None:
        """A write stamped now whose transaction commits later (`slow_write_commits`): polls
        in between do not see it, and may move the cursor past its second."""
        self.slow.append((self.ids[i % len(self.ids)], field, Clock.now))

    @precondition(lambda self: self.slow)
    @rule()
    def slow_write_commits(self) -> None:
        cid, field, stamp = self.slow.pop()
        late = (Clock.now - stamp).total_seconds()
        if late + abs(Clock.skew) >= 4 or self._record(cid)["updated_at"] > stamp:
            # Later than the overlap allows for (the README's premise), or the contact changed
            # since (updated_at never goes back): rolled back instead.
            TALLY["a slow write rolled back"] += 1
            return
        TALLY[f"a write committed {int(late)}-{int(late) + 1} s after its stamp"] += 1
        now, Clock.now = Clock.now, stamp
        try:
            self.client.update_contact(cid, {field: self._fresh(field)}, include_archived=True)
        finally:
            Clock.now = now

    @precondition(lambda self: len(self.ids) > 1)
    @rule(
        i=st.integers(0, 50),
        field=st.sampled_from(WRITTEN[1:]),
        late=st.sampled_from([0.2, 0.9, 1.5, 2.6, 3.4]),
    )
    def poll_while_a_write_commits_late(self, i: int, field: str, late: float) -> None:
        """The overlap's case: a write stamped S commits `late` s later; meanwhile another
        contact changes and a poll moves the cursor past S."""
        self.slow.append((self.ids[i % len(self.ids)], field, Clock.now))
        Clock.now += dt.timedelta(seconds=late)
        self.update(i + 1, field)
        self._poll()
        self.slow_write_commits()

    @rule(seconds=st.sampled_from([0.3, 0.9, 1.0, 1.7, 2.5, 5.0, 6.2, 30.0]))
    def time_passes(self, seconds: float) -> None:
        Clock.now += dt.timedelta(seconds=seconds)

    @rule(skew=st.sampled_from([-3.0, -1.5, 0.0, 1.5, 3.0]))
    def feed_clock_skewed(self, skew: float) -> None:
        Clock.skew = skew

    @precondition(lambda self: self.lease_held)
    @rule()
    def dead_run_s_lease_expires(self) -> None:
        self.stack.expire_lease()
        self.lease_held = False

    def _record(self, cid: str) -> dict[str, Any]:
        return self.emulator.app.store.get("au1", cid)

    # -- the feed's side ---------------------------------------------------------------------

    def _states(self) -> dict[str, tuple]:
        return {cid: self._state(self._record(cid)) for cid in self.ids}

    @staticmethod
    def _state(record: dict[str, Any]) -> tuple:
        return (
            iso(record["updated_at"]),
            record["archived_at"] is not None,
            tuple((record.get(name) or "") for name in WRITTEN),
        )

    def _poll(self) -> dict[str, Any]:
        """A run of the handler; every third with a second invocation starting as it
        lists (before Cliniko answers its first listing), which must not poll the account."""
        before = self._states()
        self.polls_run += 1
        other: list[dict[str, Any]] = []
        started: list[threading.Thread] = []
        went_on = threading.Event()  # the second run ended, or it is listing too

        def second_run(method: str, body: bytes) -> None:
            if method != "GET":
                return
            if started:
                went_on.set()
            elif self.polls_run % 3 == 0:
                thread = threading.Thread(target=lambda: (other.append(run_feed()), went_on.set()))
                started.append(thread)
                thread.start()
                went_on.wait(5)

        with pytest.MonkeyPatch.context() as scoped:
            before_each_answer(self.emulator, scoped, second_run)
            try:
                result = run_feed()
            finally:
                for thread in started:
                    thread.join(60)
        if other:
            TALLY["an overlapping invocation refused"] += 1
            assert other[0]["error"] == "another_run_is_polling", other
            assert other[0]["events"] == 0
        outcome = result["error"] or ("complete" if result["complete"] else "partial")
        TALLY[f"poll: {outcome}"] += 1
        if result["requests"] > 2:
            TALLY["poll: more than two requests"] += 1
        published = self._collect()
        if result["error"] == "another_run_is_polling":
            assert published == 0, result
        if result["complete"] and result["error"] is None:
            after = self._states()
            unchanged = {cid: s for cid, s in before.items() if after[cid] == s}
            self._check_latest_published(unchanged)
            TALLY["contact states checked after a completed poll"] += len(unchanged)
        return result

    @rule()
    def poll(self) -> None:
        self._poll()

    @rule(trouble=st.sampled_from(["edit", "faults", "killed"]), data=st.data())
    def poll_in_trouble(self, trouble: str, data: st.DataObject) -> None:
        if trouble == "edit":
            self.poll_while_staff_edit(
                data.draw(st.integers(2, 4), label="at_request"),
                data.draw(st.integers(0, 50), label="contact"),
                data.draw(st.sampled_from(WRITTEN[1:]), label="field"),
                data.draw(st.sampled_from([0.0, 0.4, 1.0]), label="later"),
            )
        elif trouble == "faults":
            statuses = st.sampled_from([429, 500, 502, 503, 504])
            self.poll_while_cliniko_fails(
                data.draw(st.lists(statuses, min_size=1, max_size=4), label="statuses")
            )
        elif trouble == "killed":
            self.poll_killed_midway(
                data.draw(st.integers(1, 2), label="put_events_call"),
                data.draw(st.booleans(), label="after_eventbridge_took_it"),
            )

    def poll_while_staff_edit(self, at_request: int, i: int, field: str, later: float) -> None:
        """A contact changed while the feed pages (before its `at_request`-th listing): it
        moves later in the order, from an early page to a late one."""
        if not self.ids:
            return
        cid = self.ids[i % len(self.ids)]
        text = self._fresh(field)
        seen = {"n": 0}

        def edit(method: str, body: bytes) -> None:
            seen["n"] += 1 if method == "GET" else 0
            if method == "GET" and seen["n"] == at_request:
                Clock.now += dt.timedelta(seconds=later)
                self.emulator.app.store.update("au1", cid, {field: text})
                TALLY["a contact changed while a poll paged"] += 1

        with pytest.MonkeyPatch.context() as scoped:
            before_each_answer(self.emulator, scoped, edit)
            self._poll()

    def poll_while_cliniko_fails(self, statuses: list[int]) -> None:
        if statuses.count(429) > 1:  # each waits for the window's reset, a real second
            statuses = [s for s in statuses if s != 429] + [429]
        self.emulator.app.faults.configure({"fail_next": statuses, "methods": ["GET"]})
        try:
            self._poll()
        finally:
            self.emulator.app.faults.reset()

    def poll_killed_midway(self, number: int, after: bool) -> None:
        """The run dies at its `number`-th PutEvents: before it is sent, or after EventBridge
        took it and before the feed recorded it (README: that batch is published again, same
        ids). Its lease is left held, as a dead Lambda leaves it."""
        calls = {"n": 0}
        emitter = aws.client("events", config=aws.FAIL_FAST).meta.events

        def kill(params: dict[str, Any] | None = None, **_: Any) -> None:
            calls["n"] += 1
            if calls["n"] == number:
                if after:
                    for entry in self._last_entries:
                        detail = json.loads(entry["Detail"])
                        self.repeatable[detail.get("event_id") or detail["webhook"]["id"]] += 1
                TALLY[f"a run killed {stage}"] += 1
                raise Killed

        def remember(params: dict[str, Any], **_: Any) -> None:
            self._last_entries = params["Entries"]

        stage = "after-call" if after else "before-call"
        emitter.register("provide-client-params.events.PutEvents", remember, unique_id="mremember")
        emitter.register(f"{stage}.events.PutEvents", kill, unique_id="mkill")
        died = False
        try:
            self._poll()
        except Killed:
            died = True
            self._collect()
        finally:
            emitter.unregister("provide-client-params.events.PutEvents", unique_id="mremember")
            emitter.unregister(f"{stage}.events.PutEvents", unique_id="mkill")
        if died:
            self.stack.hold_lease(seconds=600)
            self.lease_held = True

    # -- invariants ----------------------------------------------------------------------------

    def _collect(self) -> int:
        bus = self.stack.drain()
        hooks = self.stack.drain(self.stack.webhook_queue_url)
        for event in bus:
            detail = event["detail"]
            assert set(detail) == EVENT_DETAIL_KEYS, detail
            assert detail["type"] in TYPES and event["detail-type"] == detail["type"]
            assert detail["account"] == ACCOUNT and detail["contact_id"] in self.ids
            assert set(detail["changed_fields"]) <= set(TRACKED_FIELDS), detail
            # The model's contacts all keep a name of their own: none is in the erased state.
            assert detail["erased"] is False, detail
        wh = Webhook(self.webhook_secret)
        for event in hooks:
            detail = event["detail"]
            assert set(detail) == {"subscriber", "webhook", "body"}, detail
            body = json.dumps(
                detail["body"], sort_keys=True, separators=(",", ":"), ensure_ascii=False
            )
            wh.verify(
                body,
                {
                    "webhook-id": detail["webhook"]["id"],
                    "webhook-timestamp": detail["webhook"]["timestamp"],
                    "webhook-signature": detail["webhook"]["signature"],
                },
            )
            data = detail["body"]["data"]
            assert set(data) - {"contact"} == EVENT_DETAIL_KEYS, data
            assert set(data["contact"]) <= CONTACT_KEYS, data["contact"]
        self.bus += bus
        self.hooks += hooks
        self._check_no_duplicates()
        return len(bus) + len(hooks)

    def _check_no_duplicates(self) -> None:
        for events, key in (
            (self.bus, lambda e: e["detail"]["event_id"]),
            (self.hooks, lambda e: e["detail"]["webhook"]["id"]),
        ):
            counts = Counter(key(e) for e in events)
            again = {i: n for i, n in counts.items() if n > 1}
            assert all(n <= 1 + self.repeatable[i] for i, n in again.items()), again
        assert {e["detail"]["event_id"] for e in self.bus} == {
            e["detail"]["webhook"]["id"] for e in self.hooks
        }
        # Per contact, its publications in order (each change once): consecutive ones are
        # different states, their times never go back, and each has the type its move says.
        per_contact: dict[str, list[dict[str, Any]]] = {}
        seen: set[str] = set()
        for event in self.hooks:
            data = event["detail"]["body"]["data"]
            if data["event_id"] in seen:
                continue
            seen.add(data["event_id"])
            per_contact.setdefault(data["contact_id"], []).append(data)
        for cid, changes in per_contact.items():
            previous = None
            unrecorded = False  # the previous publication may not have been recorded
            for data in changes:
                contact = data["contact"]
                state = (
                    data["updated_at"],
                    contact["archived_at"] is not None,
                    tuple(contact.get(n) or "" for n in WRITTEN),
                )
                archived = state[1]
                if previous is None or (unrecorded and data["first_seen"]):
                    assert data["first_seen"], data
                    expected = (
                        "contact.archived"
                        if archived
                        else "contact.created"
                        if contact["created_at"] == contact["updated_at"]
                        else "contact.updated"
                    )
                else:
                    assert state != previous, f"contact {cid} published twice in state {state}"
                    assert state[0] >= previous[0], (cid, previous, state)
                    expected = (
                        "contact.archived"
                        if archived and not previous[1]
                        else "contact.unarchived"
                        if previous[1] and not archived
                        else "contact.updated"
                    )
                # After a run died between EventBridge taking a change and its record (the
                # README's one window), the rerun measures the contact's next change from the
                # last state recorded, an older one, or none (first_seen, created again).
                if not unrecorded:
                    assert data["type"] == expected, (cid, previous, state, data["type"])
                previous = state
                unrecorded = self.repeatable[data["event_id"]] > 0

    def _check_latest_published(self, states: dict[str, tuple]) -> None:
        last: dict[str, tuple] = {}
        for event in self.hooks:
            data = event["detail"]["body"]["data"]
            contact = data["contact"]
            last[data["contact_id"]] = (
                data["updated_at"],
                contact["archived_at"] is not None,
                tuple(contact.get(n) or "" for n in WRITTEN),
            )
        missed = {cid: (s, last.get(cid)) for cid, s in states.items() if last.get(cid) != s}
        assert not missed, f"states not published by a completed poll: {missed}"

    @invariant()
    def cursor_never_moves_back(self) -> None:
        cursor = self.store.cursor(ACCOUNT)
        if self.cursor is not None:
            assert cursor is not None and cursor >= self.cursor, (self.cursor, cursor)
        if cursor is not None:
            assert cursor <= Clock.now + dt.timedelta(seconds=max(Clock.skew, 0) + 1)
        self.cursor = cursor

    @invariant()
    def no_contact_value_in_the_logs(self) -> None:
        assert_none_logged(self.log, self.values)


class _Key:
    """What feed_environment needs of the emulator fixture: this example's key."""

    def __init__(self, api_key: str, template: str) -> None:
        self.api_key, self.base_url_template = api_key, template


@pytest.fixture
def world(aws, cliniko, emulator, tmp_path, monkeypatch):
    # One virtual clock for Cliniko's stamps and the feed's clock; pages of 3.
    monkeypatch.setattr(emulator.app.store, "_clock", Clock.cliniko)
    monkeypatch.setattr(handler, "ChangeFeed", functools.partial(ChangeFeed, clock=Clock.feed))
    monkeypatch.setattr(cliniko_source, "PER_PAGE", PAGE)
    cliniko_waits_pass_at_once(monkeypatch)
    with tapped_logs() as tap:
        FeedModel.world = model_world(
            monkeypatch, aws, tmp_path, tap, emulator=emulator, control=cliniko.control
        )
        yield FeedModel.world
    # The fixture's own key is gone after the examples' resets: register it back.
    cliniko.control.add_key(cliniko.api_key)


@pytest.mark.timeout(900)  # a failure's shrinking takes minutes
def test_the_change_feed_against_a_stateful_model(world, capsys):
    run_state_machine_as_test(
        FeedModel,
        settings=state_machine_settings(examples=25, steps=15),
    )
    with capsys.disabled():
        print("\nfeed model:", dict(sorted(TALLY.items())))
    assert TALLY["contact states checked after a completed poll"] > 0
    assert TALLY["an overlapping invocation refused"] > 0
    # Logs printed to stdout by the functions' own handlers: no value there either.
    assert_none_printed(capsys, _ALL_VALUES)


_ALL_VALUES: set[str] = set()
TALLY: Counter[str] = Counter()
