"""A caller's own cap inside the key's shared budget (shared_pacing.CallerCap).

Processes are `SharedBudget`s on one in-memory `BudgetStore` (the DynamoDB adapter's contract:
all bookings or none, each `max(value, now) + cost <= ceiling`), on a fake clock shared by all,
so several simulated minutes take milliseconds. The same schedule on DynamoDB (moto) is in
tests/integration/cliniko/test_shared_pacing.py.
"""

from __future__ import annotations

import random

import pytest
from cliniko_automations.cliniko.pacing import BudgetExhausted
from cliniko_automations.cliniko.shared_pacing import (
    BudgetStoreUnavailable,
    CallerCap,
    Priority,
    SharedBudget,
    SharingPolicy,
)

from tests.unit.cliniko.fake_clock import FakeClock
from tests.unit.cliniko.memory_budget_store import MemoryBudgetStore
from tests.unit.cliniko.virtual_time import most_in_any_window

KEY_ID = "0123456789abcdef"
POLICY = SharingPolicy()  # Cliniko's: 200 a minute
FEED = CallerCap("changefeed", 20)


def _process(store, clock, *, priority=Priority.BULK, cap=FEED, seed=0) -> SharedBudget:
    return SharedBudget(
        KEY_ID,
        store,
        policy=POLICY,
        priority=priority,
        cap=cap,
        clock=clock,
        rng=random.Random(seed),
    )


def _run(processes: list[SharedBudget], clock: FakeClock, minutes: float) -> list[float]:
    """Each process sends as fast as its budget lets it, the earliest ready one first (a
    fair interleaving of concurrent processes on one clock): the send times."""
    sends: list[float] = []
    ready = [clock.time()] * len(processes)
    end = clock.time() + minutes * POLICY.period
    while min(ready) < end:
        turn = ready.index(min(ready))
        if clock.time() < ready[turn]:
            clock.advance(ready[turn] - clock.time())
        try:
            processes[turn].acquire(max_wait=0.0)
        except BudgetExhausted as exc:  # come back when the wait is over
            ready[turn] = clock.time() + exc.wait
            continue
        sends.append(clock.time())
        ready[turn] = clock.time() + 0.05  # the request itself
    return sends


def test_three_feed_processes_together_stay_under_the_cap() -> None:
    clock = FakeClock()
    store = MemoryBudgetStore()
    feeds = [_process(store, clock, seed=seed) for seed in range(3)]

    sends = _run(feeds, clock, minutes=5)

    # The documented slack: one slot booked ahead, and a span starting inside a slot.
    assert most_in_any_window(sends, POLICY.period) <= FEED.rate + 2
    # ...and the feed does get its share: about 20 a minute over the five minutes.
    assert len(sends) >= 5 * FEED.rate - 2
    assert {f"cap_{FEED.name}"} <= set(store.items[KEY_ID])


def test_without_the_cap_three_bulk_processes_take_the_bulk_share() -> None:
    # The same run with no cap: what the cap is there to prevent (80 % of 192 a minute).
    clock = FakeClock()
    store = MemoryBudgetStore()
    feeds = [_process(store, clock, seed=seed, cap=None) for seed in range(3)]

    sends = _run(feeds, clock, minutes=2)

    assert most_in_any_window(sends, POLICY.period) > 5 * FEED.rate


def test_an_interactive_caller_is_served_promptly_beside_capped_feeds() -> None:
    clock = FakeClock()
    store = MemoryBudgetStore()
    feeds = [_process(store, clock, seed=seed) for seed in range(3)]
    intake = _process(store, clock, priority=Priority.INTERACTIVE, cap=None, seed=9)
    waits: list[float] = []
    sends: list[float] = []
    end = clock.time() + 3 * POLICY.period
    next_submission = clock.time()
    while clock.time() < end:
        for feed in feeds:
            try:
                feed.acquire(max_wait=0.0)
                sends.append(clock.time())
            except BudgetExhausted:
                pass  # the feed waits its turn
        if clock.time() >= next_submission:  # a submission: lookup, then create
            waits.extend(intake.acquire() for _ in range(2))
            next_submission = clock.time() + 7.0
        clock.advance(0.05)

    assert len(waits) >= 2 * 25
    assert max(waits) <= 2 * POLICY.interval  # never behind more than a slot or two
    assert most_in_any_window(sends, POLICY.period) <= FEED.rate + 2


def test_caps_of_different_callers_are_separate_schedules() -> None:
    clock = FakeClock()
    store = MemoryBudgetStore()
    feed = _process(store, clock)
    other = _process(store, clock, cap=CallerCap("other", 20))

    feed.acquire()
    other.acquire()  # not held back by the feed's cap

    assert clock.sleeps == []
    assert {"cap_changefeed", "cap_other"} <= set(store.items[KEY_ID])


class UnreachableStore:
    def book(self, budget_id, now, bookings):
        raise BudgetStoreUnavailable("rate limit table: timeout")

    def block(self, budget_id, until):
        raise BudgetStoreUnavailable("rate limit table: timeout")


def test_a_capped_process_without_the_store_paces_itself_at_most_at_its_cap() -> None:
    budget = _process(UnreachableStore(), FakeClock(), cap=CallerCap("changefeed", 5))
    assert budget.acquire() == 0.0
    assert budget.in_fallback
    with pytest.raises(BudgetExhausted):
        budget.acquire(max_wait=11.0)  # not the fallback's 50 a minute: the cap's 5
    assert budget.acquire() == pytest.approx(12.0)  # evenly spaced: one every 60/5 s


def test_a_failing_fallback_metric_never_stops_a_request() -> None:
    def broken_metric(reason: str) -> None:
        raise RuntimeError("CloudWatch is down too")

    budget = SharedBudget(
        KEY_ID, UnreachableStore(), policy=POLICY, clock=FakeClock(), on_fallback=broken_metric
    )
    assert budget.acquire() == 0.0
    assert budget.in_fallback


@pytest.mark.parametrize("name", ["", "Feed", "cap-feed", "x" * 41, "1feed"])
def test_a_cap_needs_a_plain_name(name: str) -> None:
    with pytest.raises(ValueError):
        CallerCap(name, 20)


@pytest.mark.parametrize("rate", [0, -1, True, 2.5])
def test_a_cap_needs_a_positive_whole_rate(rate) -> None:
    with pytest.raises(ValueError):
        CallerCap("changefeed", rate)
