"""500 changes of every kind between two polls, several in the same second as the cursor:
the emulator's journal of changes against the events on the bus (read through an SQS rule).

A poller sees a contact's state, not each edit: a contact changed twice between two polls
makes one event (its latest state). So the expectation is each changed contact's last change
since the previous poll; the churn changes each contact at most once per call, so nearly all
of the 500 changes are states the feed can see, and each must be published exactly once.
"""

from __future__ import annotations

import datetime as dt
import time
from collections import Counter
from typing import Any

import boto3
import pytest
from cliniko_automations.changefeed import cliniko_source
from cliniko_automations.changefeed.bus import EventBridgeSink
from cliniko_automations.changefeed.changes import FieldHasher, PublishedState
from cliniko_automations.changefeed.cliniko_source import ClinikoContactsSource
from cliniko_automations.changefeed.core import ChangeFeed
from cliniko_automations.changefeed.events import EventBuilder
from cliniko_automations.changefeed.store import DynamoFeedStore
from cliniko_automations.common import aws

from tests.fixtures.dropped_filters import DropsFilters
from tests.integration.changefeed.stack import (
    create_feed_stack,
    eventbridge_refusing,
    feed_environment,
    run_feed,
)

KIND_TO_TYPE = {
    "created": "contact.created",
    "updated": "contact.updated",
    "archived": "contact.archived",
    "unarchived": "contact.unarchived",
}
BASE_TIME = dt.datetime(2026, 1, 5, 9, 0, 0, tzinfo=dt.UTC)
# moto's EventBridge evaluates every rule for every one of the 500 events: minutes on a loaded
# machine (the full run's parallel workers), so the bound is wider than the default.
pytestmark = pytest.mark.timeout(900)


class Killed(BaseException):
    """The Lambda dying (timeout, out of memory): nothing after it runs, no handler catches it."""


@pytest.fixture
def stack(aws, cliniko, tmp_path, monkeypatch):
    created = create_feed_stack()
    feed_environment(
        monkeypatch,
        created,
        cliniko,
        tmp_path,
        BACKFILL_FROM=(BASE_TIME - dt.timedelta(minutes=1)).strftime("%Y-%m-%dT%H:%M:%SZ"),
    )
    return created


def iso(moment: dt.datetime) -> str:
    return moment.strftime("%Y-%m-%dT%H:%M:%SZ")


def catch_up() -> dict:
    """Runs until one reaches the end, as the schedule would (a slow machine may stop a run
    at its time limit: the next continues from its cursor). The runs' counts, summed."""
    total = {"changes": 0, "duplicates": 0, "runs": 0}
    for _ in range(10):
        result = run_feed()
        assert result["error"] is None, result
        total["changes"] += result["changes"]
        total["duplicates"] += result["duplicates"]
        total["runs"] += 1
        if result["complete"]:
            return {**result, **total}
    raise AssertionError("the feed did not catch up in 10 runs")


def kill_at_put_events(number: int, *, after: bool = False):
    """Kill the run at its `number`-th PutEvents call: before it is sent, or after EventBridge
    accepted it (before the feed could record it). A botocore hook: the AWS boundary."""
    calls = {"n": 0}

    def hook(**_: object) -> None:
        calls["n"] += 1
        if calls["n"] == number:
            raise Killed

    stage = "after-call" if after else "before-call"
    # The process's one EventBridge client (common.aws), which the feed publishes through.
    emitter = aws.client("events", config=aws.FAIL_FAST).meta.events
    emitter.register(f"{stage}.events.PutEvents", hook, unique_id="kill")
    return lambda: emitter.unregister(f"{stage}.events.PutEvents", unique_id="kill")


def prepare(stack, cliniko):
    """Contacts the feed has seen (a backfill run), then a poll whose cursor lands on `now`."""
    cliniko.control.churn(300, kinds=["create"], at=iso(BASE_TIME), seed=1)
    cliniko.control.churn(
        60, kinds=["archive"], at=iso(BASE_TIME + dt.timedelta(seconds=1)), seed=2, distinct=True
    )
    backfill = catch_up()
    assert backfill["changes"] == 300, backfill
    stack.sqs.purge_queue(QueueUrl=stack.tap_queue_url)  # the backfill's events: not under test
    cliniko.control.churn(5, seed=3, distinct=True)
    polled = catch_up()
    assert len(stack.drain()) == polled["changes"]
    return dt.datetime.fromisoformat(polled["cursor"].replace("Z", "+00:00"))


def churn_500(cliniko, cursor: dt.datetime) -> list[dict]:
    """500 changes between two polls: 25 stamped in the cursor's own second (changes committed
    after the last poll read that second), then 475 of every kind as fast as they go."""
    made = cliniko.control.churn(
        25,
        kinds=["create", "update", "archive", "unarchive"],
        at=iso(cursor),
        seed=4,
        distinct=True,
    )
    made += cliniko.control.churn(475, seed=5, distinct=True)
    assert len(made) == 500
    assert Counter(c["kind"] for c in made).keys() == KIND_TO_TYPE.keys()
    return made


def expected_events(made: list[dict]) -> dict[str, dict]:
    last: dict[str, dict] = {}
    for change in made:
        last[change["id"]] = change
    return last


def check_exactly_once(events: list[dict], made: list[dict]) -> None:
    details = [event["detail"] for event in events]
    expected = expected_events(made)
    published = Counter((d["contact_id"], d["updated_at"]) for d in details)
    # Nothing published twice, nothing missed, nothing extra.
    assert max(published.values()) == 1
    assert set(published) == {(cid, c["updated_at"]) for cid, c in expected.items()}
    changes_per_contact = Counter(c["id"] for c in made)
    for detail in details:
        if changes_per_contact[detail["contact_id"]] == 1:
            assert detail["type"] == KIND_TO_TYPE[expected[detail["contact_id"]]["kind"]]


@pytest.mark.slow
def test_500_changes_between_two_polls_are_each_published_once(stack, cliniko):
    cursor = prepare(stack, cliniko)
    made = churn_500(cliniko, cursor)
    assert sum(1 for c in made if c["updated_at"] == iso(cursor)) >= 25

    result = catch_up()
    events = stack.drain()
    check_exactly_once(events, made)
    assert result["changes"] == len(events) == len(expected_events(made))
    # And once more: the overlap lists the last seconds again, nothing is re-published.
    again = catch_up()
    assert again["changes"] == 0 and stack.drain() == []


@pytest.mark.slow
def test_a_run_killed_mid_page_and_rerun_still_publishes_each_change_once(stack, cliniko):
    cursor = prepare(stack, cliniko)
    made = churn_500(cliniko, cursor)

    undo = kill_at_put_events(13)  # inside the second page of 100
    try:
        with pytest.raises(Killed):
            run_feed()
    finally:
        undo()
    first_part = stack.drain()
    assert 0 < len(first_part) < len(expected_events(made))
    stack.expire_lease()
    rerun = catch_up()
    assert rerun["duplicates"] >= len(first_part) - 100  # the re-listed page, dropped
    check_exactly_once(first_part + stack.drain(), made)


@pytest.mark.slow
def test_a_kill_between_a_publish_and_its_record_repeats_only_that_batch_same_ids(stack, cliniko):
    # The one window no ordering closes: EventBridge took the batch, the run died before
    # recording it. The rerun publishes that batch again with the same event ids (the
    # webhook-id), which is what subscribers dedupe on; everything else stays exactly once.
    cursor = prepare(stack, cliniko)
    made = churn_500(cliniko, cursor)
    undo = kill_at_put_events(4, after=True)
    try:
        with pytest.raises(Killed):
            run_feed()
    finally:
        undo()
    events = stack.drain()
    stack.expire_lease()
    catch_up()
    events += stack.drain()
    ids = Counter(event["detail"]["event_id"] for event in events)
    repeated = [event_id for event_id, n in ids.items() if n > 1]
    assert 0 < len(repeated) <= 10 and max(ids.values()) == 2
    unique = {event["detail"]["event_id"]: event for event in events}
    check_exactly_once(list(unique.values()), made)


def test_a_second_holding_more_than_a_page_loses_no_contact_changed_while_read(
    stack, cliniko, monkeypatch
):
    # 150 contacts changed in one second (an import): the second page of that second used to
    # be asked by number, and a contact of the first page changed meanwhile moved every later
    # one up a place, so one was never read, and the cursor went past it.
    at = iso(BASE_TIME)
    ids = cliniko.control.seed(
        contacts=[
            {"first_name": f"P{n}", "last_name": "X", "created_at": at, "updated_at": at}
            for n in range(150)
        ]
    )
    read_by_id = cliniko_source.ClinikoContactsSource.changed_in_second
    client = cliniko.client()
    edited: list[str] = []

    def edit_then_read(self, second, after_id):
        if not edited:  # staff edit a contact the feed has already read, then the feed goes on
            edited.append(ids[0])
            client.update_contact(ids[0], {"city": "Elsewhere"})
        return read_by_id(self, second, after_id)

    monkeypatch.setattr(cliniko_source.ClinikoContactsSource, "changed_in_second", edit_then_read)
    run_feed()
    details = [e["detail"] for e in stack.drain()]
    assert edited == [ids[0]]
    assert {d["contact_id"] for d in details} == set(ids)
    assert Counter(d["type"] for d in details)["contact.created"] == 150


def test_a_crowded_second_is_read_whole_when_cliniko_keeps_fractions_of_seconds(stack, cliniko):
    # Cliniko shows whole seconds but may keep fractions: 150 contacts changed in one second,
    # the later ids earlier in it. The first page (sorted by updated_at) is then not the
    # second's lowest ids, and reading on from its highest id skipped the other 50 for good.
    cliniko.control.set_behaviour(subsecond_times=True)
    ids = cliniko.control.seed(
        contacts=[
            {
                "first_name": f"P{n}",
                "last_name": "X",
                "updated_at": iso(BASE_TIME).replace("Z", f".{999_000 - n * 6_000:06d}Z"),
                "created_at": iso(BASE_TIME - dt.timedelta(days=1)),
            }
            for n in range(150)
        ]
    )
    listed = cliniko.client().contacts_page(sort="updated_at,id").contacts
    assert [c.id for c in listed[:2]] == ids[:-3:-1]  # shown in one second, latest id first

    run_feed()
    published = {e["detail"]["contact_id"] for e in stack.drain()}
    assert published == set(ids)
    assert catch_up()["changes"] == 0 and stack.drain() == []


def test_a_put_events_call_failing_in_part_records_the_changes_it_did_publish(stack, cliniko):
    ids = cliniko.control.seed(
        contacts=[
            {"first_name": f"P{n}", "last_name": "X", "created_at": iso(BASE_TIME)}
            for n in range(10)
        ]
    )
    refused = ids[6]
    # EventBridge accepting all but one entry of the call.
    with eventbridge_refusing(lambda entry: f'"contact_id":"{refused}"' in entry["Detail"]):
        first = run_feed()
    assert (first["complete"], first["error"]) == (False, "publish_failed")
    second = run_feed()
    assert second["complete"] and second["changes"] == 1
    counts = Counter(e["detail"]["contact_id"] for e in stack.drain())
    # Each change the first run got onto the bus is there once: none sent again.
    assert {cid: counts[cid] for cid in ids if cid != refused} == {
        cid: 1 for cid in ids if cid != refused
    }


def quiet_feed_store() -> DynamoFeedStore:
    """The feed's table, and a bus with no rule (the events go nowhere)."""
    boto3.client("dynamodb").create_table(
        TableName="feed",
        AttributeDefinitions=[{"AttributeName": "pk", "AttributeType": "S"}],
        KeySchema=[{"AttributeName": "pk", "KeyType": "HASH"}],
        BillingMode="PAY_PER_REQUEST",
    )
    boto3.client("events").create_event_bus(Name="quiet")
    return DynamoFeedStore(boto3.client("dynamodb"), "feed", state_days=400)


def test_a_published_state_is_kept_for_state_days(aws):
    # What lets the feed tell a contact's next change (its changed fields) from a first sight:
    # kept STATE_DAYS (400), then left to the table's TTL.
    quiet_feed_store()
    now = 1_800_000_000
    store = DynamoFeedStore(boto3.client("dynamodb"), "feed", state_days=400, clock=lambda: now)
    state = PublishedState("7", "2026-01-05T09:00:00Z", False, {"city": "0f"}, "msg_1")
    store.record("test-clinic", [state])

    item = boto3.client("dynamodb").get_item(
        TableName="feed", Key={"pk": {"S": "contact#test-clinic#7"}}
    )["Item"]
    assert int(item["expires_at"]["N"]) == now + 400 * 86400
    assert store.published("test-clinic", ["7"]) == {"7": state}


def poll_once(
    client: Any,
    store: DynamoFeedStore,
    requests: int = 1000,
    clock: Any = lambda: dt.datetime.now(dt.UTC),
    start_at: dt.datetime = BASE_TIME - dt.timedelta(minutes=1),
) -> dict:
    """One run of the feed over test-clinic, with time for `requests` requests."""
    checks = iter(range(requests + 1))  # out of time at the look after the last request
    feed = quiet_feed(client, store, start_at, clock, out_of_time=lambda: next(checks) >= requests)
    return feed.poll("test-clinic").as_dict()


def quiet_feed(
    client: Any,
    store: DynamoFeedStore,
    start_at: dt.datetime,
    clock: Any,
    out_of_time: Any = lambda: False,
) -> ChangeFeed:
    """A feed of `client`'s contacts from `start_at` on `clock`, publishing to a bus with no
    rule (quiet_feed_store's)."""
    return ChangeFeed(
        lambda account: ClinikoContactsSource(client),
        store,
        EventBridgeSink(boto3.client("events"), "quiet"),
        FieldHasher(b"feed-hash-key-for-tests-only-32b"),
        EventBuilder([], {}, clock=time.time),
        overlap=dt.timedelta(seconds=5),
        start_at=start_at,
        run_id="run",
        lease_seconds=60,
        out_of_time=out_of_time,
        clock=clock,
    )


@pytest.mark.parametrize(
    ("first_read_after", "completes"),
    [
        # Read long after the second: the next run reads on from the last id read.
        (None, [False, True, True, True]),
        # Read within the overlap of the second, when a change stamped in it may not have
        # been committed: the next run reads it from its first id once more, then reads on.
        (dt.timedelta(seconds=2), [False, False, True, True]),
    ],
)
def test_a_second_busier_than_one_run_can_read_is_read_on_where_the_last_run_stopped(
    aws, cliniko, first_read_after, completes
):
    # 250 contacts stamped in one second, read by id a page of 100 at a time, and runs that
    # each have time for four requests. Every run read that second from its first id again,
    # ran out of time inside it, and the feed never got past it: nothing after it was
    # published again.
    store = quiet_feed_store()
    made = cliniko.control.churn(250, kinds=["create"], at=iso(BASE_TIME), seed=7)
    later = cliniko.control.churn(1, kinds=["create"], at=iso(BASE_TIME + dt.timedelta(seconds=30)))
    client = cliniko.client()

    if first_read_after:
        first = poll_once(client, store, 4, lambda: BASE_TIME + first_read_after)
    else:
        first = poll_once(client, store, 4)
    results = [first, *(poll_once(client, store, 4) for _ in range(3))]

    assert [r["complete"] for r in results] == completes
    # Each change published once: the second run read on from the first one's last id.
    assert sum(r["changes"] for r in results) == len(made) + len(later) == 251
    assert results[-1]["cursor"] == iso(BASE_TIME + dt.timedelta(seconds=30))


def test_a_busy_second_listed_without_its_id_filter_stops_the_run_and_not_its_time(aws, cliniko):
    # A Cliniko (or a proxy) that drops `id:>` lists the second's first page for every read
    # on: the feed read it until the run's time was gone, said nothing was wrong, and every
    # later run did the same, nothing after that second published again.
    store = quiet_feed_store()
    cliniko.control.churn(150, kinds=["create"], at=iso(BASE_TIME), seed=7)
    client = DropsFilters(cliniko.client(), "id")

    result = poll_once(client, store, 50)

    assert (result["complete"], result["error"]) == (False, "cliniko_UnexpectedResponse")
    # The first page, then the one that lists it again: refused at once, not read to the end.
    assert len(cliniko.control.requests()) <= 3


def test_a_busy_second_read_within_the_overlap_by_clinikos_clock_is_read_again_from_its_first_id(
    aws, cliniko
):
    # Whether a run's reading of a busy second began more than the overlap after it compares
    # that reading's start with Cliniko's stamp. Taken on our clock, a minute ahead of
    # Cliniko's, every reading looked a minute late, and the next run read on from the last
    # id read: past the ids a change still being committed in that second may have taken.
    cliniko.control.set_skew(-60)
    second = (dt.datetime.now(dt.UTC) + dt.timedelta(seconds=-60 + 1)).replace(microsecond=0)
    store = quiet_feed_store()
    cliniko.control.churn(250, kinds=["create"], at=iso(second), seed=7)
    client = cliniko.client()
    start_at = second - dt.timedelta(minutes=1)
    assert not poll_once(client, store, 4, start_at=start_at)["complete"]
    cliniko.control.clear_requests()

    poll_once(client, store, 4, start_at=start_at)

    by_id = [
        r["query"]["q[]"] for r in cliniko.control.requests() if r["query"].get("sort") == ["id"]
    ]
    assert by_id and "id:>0" in by_id[0]


def test_quiet_polls_keep_a_busy_second_s_place_while_the_overlap_still_reaches_it(aws, cliniko):
    # The busy second is the overlap's first (its last change exactly OVERLAP_SECONDS later):
    # every poll still lists it, so its place must stay with the cursor, or each quiet minute
    # reads its 450 from the first id again and, with time for 4 requests, never completes.
    store = quiet_feed_store()
    cliniko.control.churn(450, kinds=["create"], at=iso(BASE_TIME), seed=9)
    cliniko.control.churn(1, kinds=["create"], at=iso(BASE_TIME + dt.timedelta(seconds=5)))
    client = cliniko.client()
    published = [poll_once(client, store, 4) for _ in range(3)]
    assert sum(r["changes"] for r in published) == 451

    quiet = [poll_once(client, store, 4) for _ in range(2)]

    assert [(r["complete"], r["changes"]) for r in quiet] == [(True, 0)] * 2
    assert [r["requests"] for r in quiet] == [3, 3]


def test_quiet_polls_after_a_busy_second_do_not_read_it_all_again(aws, cliniko):
    # The account's last change is a second holding 450 (an import): the cursor stays on it,
    # and each poll's overlap reads it again. Read again from its first id, every quiet
    # minute cost 2 + 450/100 requests, and with time for 4 requests no run ever completed.
    store = quiet_feed_store()
    cliniko.control.churn(450, kinds=["create"], at=iso(BASE_TIME), seed=8)
    client = cliniko.client()
    published = [poll_once(client, store, 4) for _ in range(3)]
    assert sum(r["changes"] for r in published) == 450

    quiet = [poll_once(client, store, 4) for _ in range(3)]

    assert [(r["complete"], r["changes"]) for r in quiet] == [(True, 0)] * 3
    # The second's first page, on by id from its last id read, then the next second.
    assert [r["requests"] for r in quiet] == [3, 3, 3]
