"""Bulk callers' floor on the key's shared budget (SharingPolicy.bulk_floor) during a backlog.

Intake processes sending flat out (a backlog of submissions) book the whole schedule, queued,
so bulk callers, who take what interactive callers leave, got nothing until it drained: the
cleanup archived nothing and the change feed polled 3 times in minute 0 of a 200-person
import and never in minute 1. Processes are `SharedBudget`s on one in-memory store, each
sending from its own thread on one simulated clock (virtual_time.py), as in
test_budget_queue.py.
"""

from __future__ import annotations

import random
from collections.abc import Callable
from dataclasses import dataclass, field

import pytest
from cliniko_automations.cliniko.pacing import BudgetExhausted
from cliniko_automations.cliniko.shared_pacing import (
    FLOOR_TAT,
    TAT,
    CallerCap,
    Priority,
    SharedBudget,
    SharingPolicy,
)

from tests.unit.cliniko.fake_clock import FakeClock
from tests.unit.cliniko.memory_budget_store import MemoryBudgetStore
from tests.unit.cliniko.virtual_time import VirtualClock, most_in_any_window, run_threads

KEY_ID = "0123456789abcdef"
POLICY = SharingPolicy()  # Cliniko's: 200 a minute, bulk_floor 0.1
REQUEST_SECONDS = 0.1
WORKER_WAIT = 25.0  # the intake worker's longest wait for a slot
BULK_WAIT = 60.0  # the cleanup's and the feed's
FEED = CallerCap("changefeed", 20)
MINUTES = 4


@dataclass
class Role:
    priority: Priority
    max_wait: float
    cap: CallerCap | None = None
    sends: list[float] = field(default_factory=list)
    gave_up: int = 0


def _run(
    roles: list[Role],
    policy: SharingPolicy = POLICY,
    minutes: float = MINUTES,
    beside: Callable[[VirtualClock, MemoryBudgetStore, float], None] | None = None,
) -> None:
    """Every role's process sends as fast as its budget lets it; one that gives up a request
    (its wait limit) tries again a second later, as the worker's next batch or the cleanup's
    next step does. `beside(clock, store, end)`: one more process on its own thread."""
    clock, store = VirtualClock(), MemoryBudgetStore()
    end = clock.time() + minutes * policy.period

    def sender(seed: int, role: Role) -> None:
        budget = SharedBudget(
            KEY_ID,
            store,
            policy=policy,
            priority=role.priority,
            cap=role.cap,
            clock=clock,
            rng=random.Random(seed),
        )
        while clock.time() < end:
            try:
                budget.acquire(max_wait=role.max_wait)
            except BudgetExhausted:
                role.gave_up += 1
                clock.sleep(1.0)
                continue
            role.sends.append(clock.time())
            clock.sleep(REQUEST_SECONDS)

    senders = [lambda i=i, r=r: sender(i, r) for i, r in enumerate(roles)]
    extra = [] if beside is None else [lambda: beside(clock, store, end)]
    run_threads(clock, senders + extra)


def _intake(count: int) -> list[Role]:
    return [Role(Priority.INTERACTIVE, WORKER_WAIT) for _ in range(count)]


def _per_minute(sends: list[float], start: float) -> list[int]:
    return [sum(1 for t in sends if start + m * 60 <= t < start + (m + 1) * 60) for m in range(4)]


def test_a_cleanup_gets_its_floor_while_intake_sends_flat_out() -> None:
    intake = _intake(4)
    cleanup = Role(Priority.BULK, BULK_WAIT)

    _run([*intake, cleanup])

    start = min(t for role in intake for t in role.sends)
    floor = POLICY.bulk_floor * POLICY.rate  # 19.2 a minute
    # Every minute of the backlog, not just on average: about its floor, never much more.
    assert all(floor - 2 <= n <= floor + 2 for n in _per_minute(cleanup.sends, start)), _per_minute(
        cleanup.sends, start
    )
    # Still one schedule: never past Cliniko's limit less its safety, the budget all used.
    every = sorted([t for role in intake for t in role.sends] + cleanup.sends)
    assert most_in_any_window(every, POLICY.period) <= POLICY.limit - POLICY.safety
    assert len(every) >= MINUTES * POLICY.rate * 0.98
    # Intake gets the rest, served in turn: even shares, nobody gives up.
    sent = [len(role.sends) for role in intake]
    assert sum(sent) >= MINUTES * POLICY.rate * (1 - POLICY.bulk_floor) * 0.98
    assert max(sent) - min(sent) <= 0.01 * sum(sent), sent
    assert [role.gave_up for role in intake] == [0] * 4
    assert cleanup.gave_up == 0


def test_without_a_floor_the_cleanup_gets_nothing_beside_a_backlog() -> None:
    # What the floor is for: the same run with bulk_floor 0, the behaviour before it.
    intake = _intake(4)
    cleanup = Role(Priority.BULK, BULK_WAIT)

    _run([*intake, cleanup], policy=SharingPolicy(bulk_floor=0.0), minutes=2)

    assert len(cleanup.sends) <= 2
    assert cleanup.gave_up >= 1


def test_a_capped_feed_gets_its_polls_and_keeps_to_its_cap_beside_a_backlog() -> None:
    intake = _intake(4)
    cleanup = Role(Priority.BULK, BULK_WAIT)
    feeds = [Role(Priority.BULK, BULK_WAIT, cap=FEED) for _ in range(2)]

    _run([*intake, cleanup, *feeds])

    start = min(t for role in intake for t in role.sends)
    polls = sorted(t for feed in feeds for t in feed.sends)
    # The feed's cap holds as documented (its cap + 2 in any 60 s) although its floor slots
    # go a little after they were booked; and it polls every minute of the backlog.
    assert most_in_any_window(polls, POLICY.period) <= FEED.rate + 2
    assert all(n >= 5 for n in _per_minute(polls, start)), _per_minute(polls, start)
    # The cleanup and the feed share the one floor; the limit holds for everything.
    bulk = sorted(polls + cleanup.sends)
    floor = POLICY.bulk_floor * POLICY.rate
    assert all(floor - 2 <= n <= floor + 2 for n in _per_minute(bulk, start))
    assert len(cleanup.sends) >= MINUTES * 5
    every = sorted(bulk + [t for role in intake for t in role.sends])
    assert most_in_any_window(every, POLICY.period) <= POLICY.limit - POLICY.safety


def test_the_floor_leaves_an_interactive_caller_its_turn_in_order() -> None:
    # An interactive caller arriving during the backlog: its turn comes after the callers
    # queued before it, floor slots included, and never past its wait limit.
    intake = _intake(8)
    cleanup = Role(Priority.BULK, BULK_WAIT)

    _run([*intake, cleanup], minutes=2)

    sent = [len(role.sends) for role in intake]
    assert max(sent) - min(sent) <= 0.01 * sum(sent), sent
    assert [role.gave_up for role in intake] == [0] * 8


def test_bulk_callers_book_no_floor_while_intake_leaves_them_room() -> None:
    # Intake at a fifth of the budget: the cleanup takes what it leaves (at most its share),
    # never a floor slot, so a submission's two requests still find room at once.
    clock, store = VirtualClock(), MemoryBudgetStore()
    end = clock.time() + 2 * POLICY.period
    waits: list[float] = []
    cleanup_sends: list[float] = []

    def submissions() -> None:
        intake = SharedBudget(KEY_ID, store, policy=POLICY, clock=clock, rng=random.Random(1))
        while clock.time() < end:
            intake.expect(2)
            waits.extend(intake.acquire(max_wait=WORKER_WAIT) for _ in range(2))
            clock.sleep(3.0)

    def cleanup() -> None:
        budget = SharedBudget(
            KEY_ID, store, policy=POLICY, priority=Priority.BULK, clock=clock, rng=random.Random(2)
        )
        while clock.time() < end:
            budget.acquire(max_wait=BULK_WAIT)
            cleanup_sends.append(clock.time())
            clock.sleep(REQUEST_SECONDS)

    run_threads(clock, [submissions, cleanup])

    assert FLOOR_TAT not in store.items[KEY_ID]
    assert max(waits) <= POLICY.interval
    assert len(cleanup_sends) >= 2 * POLICY.rate * POLICY.bulk_share * 0.7


def test_a_bulk_caller_on_its_floor_takes_what_intake_leaves_when_that_comes_first() -> None:
    # The backlog ends: intake's queue runs out before the floor's next slot is due, and the
    # cleanup takes the schedule then, not the floor's slot a few seconds later (a bulk
    # caller that waited for its floor left what intake left unused: a tenth of the budget at
    # 40 % intake load).
    clock, store = FakeClock(), MemoryBudgetStore()
    now = clock.time()
    interval = POLICY.interval
    floor_slot = interval / POLICY.bulk_floor
    store.items[KEY_ID] = {TAT: now + 6 * interval, FLOOR_TAT: now + 2 * floor_slot}
    cleanup = SharedBudget(
        KEY_ID, store, policy=POLICY, priority=Priority.BULK, clock=clock, rng=random.Random(3)
    )

    waited = cleanup.acquire(max_wait=BULK_WAIT)

    # Booked when at most one slot was left ahead (5 slots on), well before the floor's turn.
    assert 5 * interval <= waited <= 5.5 * interval + 2 * interval / 10
    assert waited < floor_slot
    assert store.items[KEY_ID][FLOOR_TAT] == now + 2 * floor_slot  # no floor slot spent


def test_submissions_arriving_together_are_no_backlog_and_get_no_floor_slot_in_front() -> None:
    # Two submissions at once book the burst (a lookup and a create each) for a second: the
    # cleanup waits that second out and books after them, as when intake leaves room. Read
    # as a backlog, its floor slot queued in front of the next submissions (at half of the
    # budget, intake's 95th percentile wait went from 1.1 s to 2.6 s).
    clock, store = FakeClock(), MemoryBudgetStore()
    now = clock.time()
    store.items[KEY_ID] = {TAT: now + POLICY.depth * POLICY.interval}
    cleanup = SharedBudget(
        KEY_ID, store, policy=POLICY, priority=Priority.BULK, clock=clock, rng=random.Random(4)
    )

    waited = cleanup.acquire(max_wait=BULK_WAIT)

    assert FLOOR_TAT not in store.items[KEY_ID]
    assert (POLICY.depth - 1) * POLICY.interval <= waited <= (POLICY.depth + 1) * POLICY.interval


def _submission_waits(policy: SharingPolicy, seed: int) -> list[float]:
    """How long each submission took, arrival to its create: the worker's two processes
    taking submissions that arrive at random at half of the budget (a lookup and a create
    each, booked together), for five simulated minutes beside a cleanup archiving flat out."""
    clock, store = VirtualClock(), MemoryBudgetStore()
    end = clock.time() + 5 * policy.period
    rng, arrivals, t = random.Random(seed), [], clock.time()
    while (t := t + rng.expovariate(0.5 * policy.rate / 2 / policy.period)) < end:
        arrivals.append(t)
    waits: list[float] = []

    def worker(n: int) -> None:
        budget = SharedBudget(KEY_ID, store, policy=policy, clock=clock, rng=random.Random(n))
        while arrivals:
            if arrivals[0] > clock.time():
                clock.sleep(arrivals[0] - clock.time())
                continue
            arrived = arrivals.pop(0)
            budget.expect(2)
            for _ in range(2):
                budget.acquire(max_wait=WORKER_WAIT)
                clock.sleep(REQUEST_SECONDS)
            waits.append(clock.time() - arrived)

    def cleanup() -> None:
        budget = SharedBudget(
            KEY_ID, store, policy=policy, priority=Priority.BULK, clock=clock, rng=random.Random(9)
        )
        while clock.time() < end:
            budget.acquire(max_wait=BULK_WAIT)
            clock.sleep(REQUEST_SECONDS)

    run_threads(clock, [lambda: worker(1), lambda: worker(2), cleanup])
    return sorted(waits)


@pytest.mark.parametrize("seed", [1, 2, 3])
def test_submissions_arriving_at_random_do_not_wait_for_floor_slots(seed: int) -> None:
    # Intake leaves half of the budget: no backlog, so the floor must cost it nothing. Booked
    # whenever two submissions had come together, floor slots went in front of the next
    # ones: the 95th percentile wait 1.4 to 1.55 times that with no floor at all (now 1.0 to
    # 1.2 times).
    def p95(waits: list[float]) -> float:
        return waits[int(len(waits) * 0.95)]

    with_floor = _submission_waits(POLICY, seed)
    without = _submission_waits(SharingPolicy(bulk_floor=0.0), seed)
    assert p95(with_floor) <= 1.25 * p95(without), (p95(with_floor), p95(without))


@pytest.mark.parametrize("floor", [-0.1, 0.81])
def test_a_floor_is_a_share_no_larger_than_the_bulk_share(floor: float) -> None:
    with pytest.raises(ValueError):
        SharingPolicy(bulk_floor=floor)


ERASURE_WAIT = 5.0  # the erasure API's CLINIKO_MAX_WAIT_SECONDS
ERASURE_REQUESTS = 6  # a lookup per account, the scrub, the archive, the read-back


def test_an_erasure_beside_a_floods_drain_waits_its_turn_within_its_limit() -> None:
    """A flood's backlog drains with the worker's two batches flat out (MaximumConcurrency 2),
    the cleanup and the feed at their floor: an erasure arriving meanwhile books first come,
    first served, behind what the two batches booked ahead, and is never refused for want of
    a slot (its 5 s limit, past which the request ends "failed")."""
    intake = _intake(2)
    bulk = [Role(Priority.BULK, BULK_WAIT), Role(Priority.BULK, BULK_WAIT, cap=FEED)]
    waits: list[float] = []
    refused: list[int] = []

    def erasures(clock: VirtualClock, store: MemoryBudgetStore, end: float) -> None:
        budget = SharedBudget(
            KEY_ID, store, priority=Priority.INTERACTIVE, clock=clock, rng=random.Random(99)
        )
        clock.sleep(20.0)  # the drain is under way
        while clock.time() < end - 30:
            for _ in range(ERASURE_REQUESTS):
                asked = clock.time()
                try:
                    budget.acquire(max_wait=ERASURE_WAIT)
                except BudgetExhausted:
                    refused.append(1)
                    break
                waits.append(clock.time() - asked)
                clock.sleep(REQUEST_SECONDS)
            clock.sleep(15.0)

    roles = [*intake, *bulk]
    _run(roles, minutes=3, beside=erasures)
    # Measured: 42 requests (7 erasures), waits 0.84 s (median), 1.15 s at most; intake 160
    # a minute, the cleanup and the feed 20 between them.
    assert refused == [] and len(waits) >= 6 * ERASURE_REQUESTS
    assert max(waits) < ERASURE_WAIT / 2
    assert [role.gave_up for role in roles] == [0] * 4
