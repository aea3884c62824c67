"""The key's budget shared by every process (shared_pacing.py) on its DynamoDB table (moto).

Two `SharedBudget`s on one table and key stand for two processes (two Lambda containers):
they share nothing but the table. Waiting runs on a fake clock shared by both, so nothing
really sleeps and nothing depends on the machine's speed.
"""

from __future__ import annotations

import itertools
import random

import boto3
import pytest
from cliniko_automations.cliniko.pacing import BudgetExhausted
from cliniko_automations.cliniko.shared_pacing import (
    BULK_TAT,
    FLOOR_TAT,
    TAT,
    CallerCap,
    Priority,
    SharedBudget,
    SharingPolicy,
)
from cliniko_automations.common.rate_limit_table import DynamoBudgetStore

from tests.unit.cliniko.fake_clock import FakeClock
from tests.unit.cliniko.virtual_time import VirtualClock, most_in_any_window, run_threads

TABLE = "rate-limit"
KEY_ID = "0123456789abcdef"
# Small numbers keep the tests short; the arithmetic is the same as at 200 a minute.
POLICY = SharingPolicy(limit=40, period=60.0)


@pytest.fixture
def store(aws: str) -> DynamoBudgetStore:
    client = boto3.client("dynamodb")
    client.create_table(
        TableName=TABLE,
        AttributeDefinitions=[{"AttributeName": "key_id", "AttributeType": "S"}],
        KeySchema=[{"AttributeName": "key_id", "KeyType": "HASH"}],
        BillingMode="PAY_PER_REQUEST",
    )
    return DynamoBudgetStore(client, TABLE)


def _process(store, clock, *, priority=Priority.INTERACTIVE, policy=POLICY, seed=7, cap=None):
    """A process's budget: its own `SharedBudget` (own slots) and its own store object."""
    own_store = DynamoBudgetStore(store._client, TABLE)
    return SharedBudget(
        KEY_ID,
        own_store,
        policy=policy,
        priority=priority,
        cap=cap,
        clock=clock,
        rng=random.Random(seed),
    )


def _item(store) -> dict:
    item = store._client.get_item(TableName=TABLE, Key={"key_id": {"S": KEY_ID}}).get("Item", {})
    return {name: value.get("N", value.get("S")) for name, value in item.items()}


def test_policy_books_under_the_limit_with_room_for_its_burst_and_jitter() -> None:
    policy = SharingPolicy()
    # 200 - 2 safety - 4 booked ahead - 1 sent late - 1 (a span starts inside a slot)
    assert policy.rate == 192
    assert policy.interval == pytest.approx(60 / 192)
    with pytest.raises(ValueError):
        SharingPolicy(lease=3, depth=4)


def test_a_busy_process_books_a_lease_of_slots_per_round_trip(store) -> None:
    clock = FakeClock()
    budget = _process(store, clock)
    # The first requests book one slot each: nothing is left unsent by a process that needs
    # one or two (an intake submission's lookup and create).
    assert [budget.acquire(), budget.acquire()] == [0.0, 0.0]
    assert budget.store_calls == 2

    # Still coming back: busy, so one round trip books a lease.
    assert [budget.acquire() for _ in range(POLICY.lease)] == [0.0] * POLICY.lease
    assert budget.store_calls == 3
    # The item holds times and the key's hash, nothing else.
    assert set(_item(store)) == {"key_id", TAT, "expires_at"}
    assert _item(store)["key_id"] == KEY_ID


def test_requests_expected_together_are_booked_in_one_round_trip(store) -> None:
    clock = FakeClock()
    budget = _process(store, clock)
    # A lookup and the create it decides: one booking of both, not one each.
    budget.expect(2)
    assert [budget.acquire(), budget.acquire()] == [0.0, 0.0]
    assert budget.store_calls == 1
    clock.advance(POLICY.period)

    # More than a lease: booked a lease at a time.
    budget.expect(4)
    assert [budget.acquire() for _ in range(4)] == [0.0] * 4
    assert budget.store_calls == 1 + 4 // POLICY.lease
    clock.advance(POLICY.period)

    # One request expected, or a bulk caller: one slot per round trip as before.
    budget.expect(1)
    budget.acquire()
    assert budget.store_calls == 4
    bulk = _process(store, clock, priority=Priority.BULK)
    bulk.expect(2)
    bulk.acquire()
    clock.advance(1.0)
    bulk.acquire()
    assert bulk.store_calls == 2


def test_an_expected_request_never_sent_is_not_spent_later(store) -> None:
    clock = FakeClock()
    budget = _process(store, clock)
    budget.expect(2)
    budget.acquire()  # the lookup; it found the contact unchanged, so no second request
    clock.advance(10)

    budget.acquire()

    assert budget.store_calls == 2  # the spare slot lapsed: a fresh booking


def test_processes_sharing_a_key_never_pass_the_limit_in_any_window(store) -> None:
    clock = FakeClock()
    processes = [_process(store, clock) for _ in range(3)]
    sends = []
    for turn in range(120):
        processes[turn % 3].acquire()
        sends.append(clock.time())
        clock.advance(0.05)  # the request itself

    assert most_in_any_window(sends, POLICY.period) <= POLICY.limit - POLICY.safety
    # ...and the budget is used: 120 requests take about 120 / rate periods, not more.
    assert sends[-1] - sends[0] < (120 / POLICY.rate + 0.5) * POLICY.period


def test_a_process_behind_a_spent_burst_books_its_turn_in_one_booking(store) -> None:
    clock = FakeClock()
    first, second = _process(store, clock, seed=1), _process(store, clock, seed=2)
    for _ in range(POLICY.depth):
        assert first.acquire() == 0.0
    booked = float(_item(store)[TAT])

    # First come, first served: the next free slot is booked at once, and sent at its turn.
    assert second.acquire() == pytest.approx(POLICY.interval, abs=1e-3)
    assert second.store_calls == 1
    assert float(_item(store)[TAT]) == pytest.approx(booked + POLICY.interval, abs=1e-3)


def test_a_quiet_spell_gives_back_the_burst(store) -> None:
    clock = FakeClock()
    budget = _process(store, clock)

    def burst() -> int:
        sent = 0
        while budget.acquire() == 0.0:
            sent += 1
        return sent

    first = burst()
    for _ in range(20):
        budget.acquire()  # a busy spell
    clock.advance(POLICY.period)  # then a quiet minute: the window rolls over

    assert 1 < first <= POLICY.depth
    assert burst() == first


def test_slots_booked_but_not_sent_in_time_are_not_spent_late(store) -> None:
    clock = FakeClock()
    budget = _process(store, clock)
    budget.acquire()  # books a lease; one slot is left over
    calls = budget.store_calls
    clock.advance(10)  # far past the spare slot's time

    budget.acquire()

    assert budget.store_calls == calls + 1  # a fresh booking, not the stale slot


def test_bulk_takes_only_what_interactive_callers_leave(store) -> None:
    clock = FakeClock()
    intake = _process(store, clock)
    cleanup = _process(store, clock, priority=Priority.BULK)
    for _ in range(POLICY.depth):
        intake.acquire()  # intake has booked ahead of now

    booked = _item(store)[TAT]

    with pytest.raises(BudgetExhausted):
        cleanup.acquire(max_wait=0.0)
    # Interactive callers are still served first: the bulk caller booked nothing meanwhile.
    assert _item(store)[TAT] == booked
    assert BULK_TAT not in _item(store)


def test_bulk_books_nothing_while_two_slots_are_booked_ahead(store) -> None:
    # An intake submission's lookup and create: a cleanup does not book on top of them.
    clock = FakeClock()
    intake = _process(store, clock)
    cleanup = _process(store, clock, priority=Priority.BULK)
    intake.acquire()
    intake.acquire()
    booked = _item(store)[TAT]

    with pytest.raises(BudgetExhausted):
        cleanup.acquire(max_wait=0.0)
    assert _item(store)[TAT] == booked


def test_an_intake_request_during_a_cleanup_does_not_wait(store) -> None:
    clock = FakeClock()
    intake = _process(store, clock)
    cleanup = _process(store, clock, priority=Priority.BULK)
    for _ in range(50):
        cleanup.acquire()  # the cleanup keeps the budget busy

    assert intake.acquire() == 0.0


def test_bulk_alone_takes_at_most_its_share(store) -> None:
    clock = FakeClock()
    policy = SharingPolicy(limit=40, period=60.0, bulk_share=0.5)
    cleanup = _process(store, clock, priority=Priority.BULK, policy=policy)
    sends = []
    for _ in range(60):
        cleanup.acquire()
        sends.append(clock.time())

    per_period = (len(sends) - 1) / (sends[-1] - sends[0]) * policy.period
    assert per_period <= policy.rate * policy.bulk_share * 1.05
    assert per_period >= policy.rate * policy.bulk_share * 0.8  # and it does use it


def test_a_429_in_one_process_holds_every_process_until_the_reset(store) -> None:
    clock = FakeClock()
    throttled = _process(store, clock, seed=1)
    other = _process(store, clock, seed=2)
    throttled.acquire()
    start = clock.time()

    throttled.hold(12.0)

    with pytest.raises(BudgetExhausted):
        throttled.acquire(max_wait=0.0)
    with pytest.raises(BudgetExhausted) as caught:
        other.acquire(max_wait=0.0)
    assert 12.0 <= caught.value.wait <= 12.0 + POLICY.resume_jitter
    assert other.acquire() > 0
    assert clock.time() >= start + 12.0
    assert float(_item(store)["blocked_until"]) == pytest.approx(start + 12.0, abs=1e-3)


def test_throttled_processes_resume_at_different_moments(store) -> None:
    clock = FakeClock()
    processes = [_process(store, clock, seed=seed) for seed in range(4)]
    processes[0].hold(5.0)

    waits = []
    for process in processes:  # the one that met the 429 too
        with pytest.raises(BudgetExhausted) as caught:
            process.acquire(max_wait=0.0)
        waits.append(caught.value.wait)

    assert all(5.0 < wait <= 5.0 + POLICY.resume_jitter for wait in waits)
    assert len(set(waits)) == len(waits)


def test_slots_booked_before_a_429_are_not_sent_into_the_spent_window(store) -> None:
    clock = FakeClock()
    budget = _process(store, clock)
    budget.expect(2)
    budget.acquire()  # the lookup; the create's slot is booked too
    budget.hold(5.0)  # the lookup met a 429

    with pytest.raises(BudgetExhausted) as caught:
        budget.acquire(max_wait=0.0)
    assert caught.value.wait >= 5.0


def test_a_missing_table_falls_back_to_cautious_local_pacing_and_says_so(aws: str) -> None:
    clock = FakeClock()
    reasons: list[str] = []
    budget = SharedBudget(
        KEY_ID,
        DynamoBudgetStore(boto3.client("dynamodb"), "no-such-table"),
        policy=POLICY,
        clock=clock,
        on_fallback=reasons.append,
    )
    spacing = POLICY.period / POLICY.fallback_limit
    assert budget.acquire() == 0.0  # paced, never refused for want of the table
    # A fraction of the budget, evenly spaced: every process of the key falls back at once,
    # and each sending its share in a burst would spend Cliniko's window in seconds.
    with pytest.raises(BudgetExhausted):
        budget.acquire(max_wait=spacing / 2)
    for _ in range(3):
        assert budget.acquire() == pytest.approx(spacing)
    # Tried again soon (a moment's stall is the likelier failure), then after 30 s: the
    # pacing kept its spacing throughout.
    assert budget.in_fallback
    assert reasons == ["rate limit table: ResourceNotFoundException"] * 2
    assert budget.fallbacks == 2
    clock.advance(POLICY.store_retry_after - 3 * spacing)
    assert budget.in_fallback and budget.fallbacks == 2


def test_a_capped_caller_stays_under_its_cap_across_processes(store) -> None:
    clock = FakeClock()
    cap = CallerCap("changefeed", 6)
    feeds = [_process(store, clock, priority=Priority.BULK, cap=cap, seed=s) for s in range(3)]
    intake = _process(store, clock, seed=9)
    sends, intake_waits = [], []
    end = clock.time() + 3 * POLICY.period
    for step in itertools.count():
        if clock.time() >= end:
            break
        for feed in feeds:
            try:
                feed.acquire(max_wait=0.0)
                sends.append(clock.time())
            except BudgetExhausted:
                pass  # this feed process waits for its cap
        if step % 5 == 0:  # an intake submission every 10 s: a lookup and a create
            intake_waits += [intake.acquire(), intake.acquire()]
        clock.advance(2.0)

    assert most_in_any_window(sends, POLICY.period) <= cap.rate + 2
    assert len(sends) >= 3 * cap.rate - 2  # the feed does get its share
    assert max(intake_waits) <= 2 * POLICY.interval  # intake is not held back by the feed
    assert float(_item(store)["cap_changefeed"]) > 0  # one more schedule on the key's item


def test_bulk_gets_its_floor_on_the_table_while_intake_takes_all_it_can(store) -> None:
    # An intake backlog: three processes sending flat out, each from its own thread, and a
    # cleanup beside them; one conditional UpdateItem books the floor with the slot.
    clock = VirtualClock()
    intake = [_process(store, clock, seed=seed) for seed in range(3)]
    cleanup = _process(store, clock, priority=Priority.BULK, seed=9)
    end = clock.time() + 3 * POLICY.period
    sends: dict[int, list[float]] = {id(budget): [] for budget in [*intake, cleanup]}

    def send(budget: SharedBudget, max_wait: float) -> None:
        while clock.time() < end:
            try:
                budget.acquire(max_wait=max_wait)
            except BudgetExhausted:  # given up: the cleanup goes on at its next step
                clock.sleep(1.0)
                continue
            sends[id(budget)].append(clock.time())
            clock.sleep(0.05)  # the request itself

    run_threads(
        clock,
        [lambda b=b: send(b, 25.0) for b in intake] + [lambda: send(cleanup, 60.0)],
    )

    # 9.6 in the three periods; more by a few: the floor's schedule lets a slot be booked
    # one ahead, and the cleanup may take a slot or two before intake has booked its burst.
    floor = 3 * POLICY.rate * POLICY.bulk_floor
    assert floor - 2 <= len(sends[id(cleanup)]) <= floor + 5
    every = sorted(t for times in sends.values() for t in times)
    assert most_in_any_window(every, POLICY.period) <= POLICY.limit - POLICY.safety
    assert len(every) >= 3 * POLICY.rate * 0.95  # the rest is intake's, the budget used
    assert float(_item(store)[FLOOR_TAT]) > 0


class Ahead(FakeClock):
    """A process's clock `seconds` ahead of the others' (a laptop's tool on the deployed table,
    a host whose clock jumped)."""

    def __init__(self, base: FakeClock, seconds: float) -> None:
        self.base, self.seconds = base, seconds

    def time(self) -> float:
        return self.base.time() + self.seconds

    def monotonic(self) -> float:
        return self.base.monotonic()

    def sleep(self, seconds: float) -> None:
        self.base.sleep(seconds)


@pytest.mark.parametrize("what", ["booking", "429"])
def test_a_process_whose_clock_ran_ahead_does_not_lock_the_others_out(store, what) -> None:
    clock = FakeClock()
    skewed = _process(store, Ahead(clock, 600.0), seed=1)  # ten minutes ahead
    if what == "booking":
        skewed.acquire()
    else:
        skewed.hold(30.0)  # a 429 it received
    healthy = _process(store, clock, seed=2)
    try:
        waited = healthy.acquire(max_wait=75.0)  # the default RetryPolicy's wait
    except BudgetExhausted as exc:
        pytest.fail(f"every process of the key is locked out for {exc.wait:.0f}s")
    assert waited < 75.0
    if what == "429":
        # A real 429 still holds every process, over the stale hold.
        healthy.hold(12.0)
        with pytest.raises(BudgetExhausted) as caught:
            _process(store, clock, seed=3).acquire(max_wait=0.0)
        assert 12.0 <= caught.value.wait <= 12.0 + POLICY.resume_jitter


def test_a_slow_caller_cap_booked_minutes_ahead_is_still_honoured(store) -> None:
    # One request a period (60 s here): its schedule is legitimately up to three slots ahead,
    # further than any schedule of the key's own.
    clock = FakeClock()
    cap = CallerCap("cleanup", 1)
    first = _process(store, clock, priority=Priority.BULK, cap=cap, seed=1)
    second = _process(store, clock, priority=Priority.BULK, cap=cap, seed=2)
    first.acquire()
    first.acquire()  # the next slot, a period on
    with pytest.raises(BudgetExhausted) as caught:
        second.acquire(max_wait=0.0)
    assert caught.value.wait >= POLICY.period
