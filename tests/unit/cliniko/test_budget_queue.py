"""First come, first served on the key's shared budget (shared_pacing.SharedBudget).

Processes are `SharedBudget`s on one in-memory `BudgetStore` (the DynamoDB adapter's contract),
each sending from its own thread on one simulated clock (virtual_time.py): minutes of eight
processes sending flat out take well under a second, and what each sees of the others is
exactly what it would see at that moment. The same schedule on DynamoDB (moto) is in
tests/integration/cliniko/test_shared_pacing.py.
"""

from __future__ import annotations

import random
from dataclasses import dataclass, field

import pytest
from cliniko_automations.cliniko.pacing import BudgetExhausted
from cliniko_automations.cliniko.shared_pacing import TAT, SharedBudget, SharingPolicy

from tests.unit.cliniko.memory_budget_store import MemoryBudgetStore
from tests.unit.cliniko.virtual_time import VirtualClock, run_threads

KEY_ID = "0123456789abcdef"
POLICY = SharingPolicy()  # Cliniko's: 200 a minute
REQUEST_SECONDS = 0.1  # what a Cliniko request takes
WORKER_WAIT = 25.0  # the intake worker's longest wait for a slot


@dataclass
class Run:
    """What the processes of `flat_out` did: each one's send times and give-ups."""

    sends: list[list[float]]
    gave_up: list[int]
    store_calls: int
    throttled_sends: list[int] = field(default_factory=list)

    @property
    def all_sends(self) -> list[float]:
        return sorted(t for sends in self.sends for t in sends)

    def shares(self) -> list[float]:
        total = len(self.all_sends)
        return [len(sends) / total for sends in self.sends]


def _processes(count: int, store: MemoryBudgetStore, clock: VirtualClock) -> list[SharedBudget]:
    return [
        SharedBudget(KEY_ID, store, policy=POLICY, clock=clock, rng=random.Random(seed))
        for seed in range(count)
    ]


def flat_out(
    processes: list[SharedBudget],
    clock: VirtualClock,
    *,
    minutes: float,
    requests_per_operation: int = 1,
    throttle: tuple[float, float] | None = None,
) -> Run:
    """Every process sends as fast as its budget lets it, as the intake worker does (giving
    up a request after `WORKER_WAIT`). `throttle` (start, seconds after the first send):
    Cliniko answers 429 in that span, as it does when another client of the user spent the
    window; a process that meets it holds the budget until the span ends."""
    start = clock.time()
    end = start + minutes * POLICY.period
    run = Run(
        [[] for _ in processes], [0] * len(processes), 0, throttled_sends=[0] * len(processes)
    )
    blocked = (start + throttle[0], start + throttle[0] + throttle[1]) if throttle else (0.0, 0.0)

    def sender(index: int) -> None:
        budget = processes[index]
        while clock.time() < end:
            budget.expect(requests_per_operation)
            for _ in range(requests_per_operation):
                try:
                    budget.acquire(max_wait=WORKER_WAIT)
                except BudgetExhausted:
                    run.gave_up[index] += 1
                    clock.sleep(1.0)
                    break
                now = clock.time()
                if blocked[0] <= now < blocked[1]:
                    run.throttled_sends[index] += 1
                    budget.hold(blocked[1] - now)
                else:
                    run.sends[index].append(now)
                clock.sleep(REQUEST_SECONDS)

    run_threads(clock, [lambda i=i: sender(i) for i in range(len(processes))])
    run.store_calls = sum(process.store_calls for process in processes)
    return run


def _most_in_any_window(sends: list[float], period: float) -> int:
    return max(sum(1 for t in sends[i:] if t < start + period) for i, start in enumerate(sends))


def test_eight_processes_flat_out_share_the_budget_evenly() -> None:
    clock, store = VirtualClock(), MemoryBudgetStore()

    run = flat_out(_processes(8, store, clock), clock, minutes=3)

    sends = run.all_sends
    # Under Cliniko's limit in every window, and the budget used.
    assert _most_in_any_window(sends, POLICY.period) <= POLICY.limit - POLICY.safety
    assert len(sends) >= 3 * POLICY.rate * 0.98
    # Each process its eighth, served in turn: nobody gives up while others are served.
    assert all(abs(share - 1 / 8) <= 0.005 for share in run.shares()), run.shares()
    assert run.gave_up == [0] * 8
    # One round trip to the store per request, not a refusal and a random sleep after another.
    assert run.store_calls <= len(sends) * 1.05


def test_a_lone_busy_process_books_a_lease_per_round_trip() -> None:
    clock, store = VirtualClock(), MemoryBudgetStore()

    run = flat_out(_processes(1, store, clock), clock, minutes=2)

    assert len(run.all_sends) >= 2 * POLICY.rate * 0.98
    assert run.store_calls <= len(run.all_sends) / POLICY.lease + 2


def test_operations_of_two_requests_share_evenly_too() -> None:
    clock, store = VirtualClock(), MemoryBudgetStore()

    run = flat_out(_processes(4, store, clock), clock, minutes=3, requests_per_operation=2)

    assert all(abs(share - 1 / 4) <= 0.01 for share in run.shares()), run.shares()
    assert run.gave_up == [0] * 4
    assert run.store_calls <= len(run.all_sends) / 2 * 1.05  # both requests in one booking


def test_a_queued_slot_goes_at_its_turn_not_at_once() -> None:
    clock, store = VirtualClock(), MemoryBudgetStore()
    first, second = _processes(2, store, clock)
    started = clock.time()
    for _ in range(POLICY.depth):
        assert first.acquire() == 0.0  # the burst, spent at once
    booked = store.items[KEY_ID][TAT]

    waited = second.acquire()

    # The next free slot, booked at once (one round trip, no refusal), and sent when booking
    # it would have fitted the burst: one slot's interval later.
    assert store.items[KEY_ID][TAT] == pytest.approx(booked + POLICY.interval)
    assert second.store_calls == 1
    assert waited == pytest.approx(POLICY.interval)
    assert clock.time() == pytest.approx(started + POLICY.interval)


def test_a_queue_longer_than_the_caller_waits_refuses_at_once_and_books_nothing() -> None:
    clock, store = VirtualClock(), MemoryBudgetStore()
    (late,) = _processes(1, store, clock)
    started = clock.time()
    # Others have booked 20 slots beyond the burst: a queue of about 6 s.
    booked = store.items[KEY_ID] = {TAT: started + (POLICY.depth + 20) * POLICY.interval}

    with pytest.raises(BudgetExhausted) as caught:
        late.acquire(max_wait=2.0)

    assert caught.value.wait == pytest.approx(21 * POLICY.interval, abs=1e-3)
    assert store.items[KEY_ID] == booked  # nothing booked for a request never sent
    assert clock.time() == started  # and no time spent waiting for it
    # A caller that can wait that long takes its turn.
    assert late.acquire(max_wait=10.0) == pytest.approx(21 * POLICY.interval, abs=1e-3)


def test_a_429_costs_each_queued_process_one_more_429_at_most() -> None:
    clock, store = VirtualClock(), MemoryBudgetStore()

    run = flat_out(_processes(8, store, clock), clock, minutes=2, throttle=(60.0, 10.0))

    # The first process to meet it holds the key; the others had slots queued, so each
    # may meet it once more before it holds too, and never again.
    assert all(count <= 1 for count in run.throttled_sends), run.throttled_sends
    assert run.gave_up == [0] * 8
    # Nothing sent into the held span after that, and the minute after it is used again.
    after = [t for t in run.all_sends if t >= run.all_sends[0] + 70.0]
    assert len(after) >= (120 - 70 - 2) / POLICY.interval * 0.95
