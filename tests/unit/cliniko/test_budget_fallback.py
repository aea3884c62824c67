"""A process of the key without the shared store (`SharedBudget`'s fallback): the others go on
booking the schedule, so what it sends outside it must be little, and short.

A 2 s stall of the table for one process (one call timed out) kept it off the schedule for
30 s at a quarter of the budget whatever its priority, its 429s unshared: Cliniko answered 200
that minute against the 192 the schedule plans, and each process met a 429."""

from __future__ import annotations

import random

import pytest
from cliniko_automations.cliniko.shared_pacing import (
    BLOCKED_UNTIL,
    BudgetStoreUnavailable,
    Priority,
    SharedBudget,
    SharingPolicy,
)

from tests.unit.cliniko.fake_clock import FakeClock
from tests.unit.cliniko.memory_budget_store import MemoryBudgetStore

KEY_ID = "0123456789abcdef"
POLICY = SharingPolicy()  # Cliniko's: 200 a minute, bulk floor 0.1, a quarter without the store


class StallingStore(MemoryBudgetStore):
    """The store, but its next `failures` calls time out."""

    def __init__(self, failures: int = 0) -> None:
        super().__init__()
        self.failures = failures
        self.calls = 0

    def _call(self) -> None:
        self.calls += 1
        if self.failures > 0:
            self.failures -= 1
            raise BudgetStoreUnavailable("rate limit table: timeout")

    def book(self, budget_id, now, bookings):
        self._call()
        return super().book(budget_id, now, bookings)

    def block(self, budget_id, until):
        self._call()
        super().block(budget_id, until)


def _process(store, clock, priority=Priority.INTERACTIVE) -> SharedBudget:
    return SharedBudget(
        KEY_ID, store, policy=POLICY, priority=priority, clock=clock, rng=random.Random(1)
    )


def test_after_one_failed_call_the_process_books_on_the_schedule_again_within_seconds() -> None:
    clock, store = FakeClock(), StallingStore(failures=1)
    budget = _process(store, clock)

    assert budget.acquire() == 0.0  # paced alone, never refused for want of the store
    assert budget.in_fallback
    clock.advance(POLICY.store_recheck_after)
    assert budget.acquire() == 0.0

    assert not budget.in_fallback and budget.fallbacks == 1
    assert store.items[KEY_ID]  # booked on the shared schedule again


def test_a_store_still_out_of_reach_is_tried_again_after_the_longer_wait() -> None:
    clock, store = FakeClock(), StallingStore(failures=2)
    budget = _process(store, clock)

    budget.acquire()
    clock.advance(POLICY.store_recheck_after)
    budget.acquire()  # the second failure: 30 s now
    clock.advance(POLICY.store_retry_after - 1)
    budget.acquire()

    assert budget.in_fallback and (budget.fallbacks, store.calls) == (2, 2)


def test_a_bulk_process_without_the_store_paces_itself_at_its_floor() -> None:
    # Every process of the key without the store: the worker's two, an erasure's, the
    # cleanup's and the feed's quarters came to 220 a minute; the cleanup at its floor, 190.
    clock = FakeClock()
    cleanup = _process(StallingStore(failures=99), clock, Priority.BULK)
    intake = _process(StallingStore(failures=99), clock)

    assert cleanup.fallback_limit == int(POLICY.limit * POLICY.bulk_floor) == 20
    assert intake.fallback_limit == POLICY.fallback_limit == 50
    assert cleanup.acquire() == 0.0
    assert cleanup.acquire() == pytest.approx(POLICY.period / 20)


def test_a_429_met_after_one_failed_call_still_holds_every_process() -> None:
    clock, store = FakeClock(), StallingStore(failures=1)
    budget = _process(store, clock)
    budget.acquire()  # the failed call: falling back

    budget.hold(20.0)  # Cliniko answered 429

    assert store.items[KEY_ID][BLOCKED_UNTIL] == pytest.approx(clock.time() + 20.0)
