"""One Cliniko budget per user, shared by every process that holds the key.

Cliniko allows 200 requests a minute per user, across every client of that user: the intake
worker's concurrent batches, erasure and the cleanup all spend the same budget. Each process
pacing itself (pacing.py) cannot see the others, so their share shows up as 429s. Here the
processes book their requests on one shared schedule held by a `BudgetStore` (a DynamoDB item
in AWS: common/rate_limit_table.py), a few slots per round trip.

The schedule (a GCRA, "generic cell rate algorithm", i.e. a token bucket kept as one time):
`tat` is the moment up to which the budget is already booked. Booking n slots moves it to
max(tat, now) + n * interval, allowed only while that stays within `depth` slots of now. The
n slots are then this process's, each to be sent by its scheduled time plus `late` slots
(a process that is not back for more while its last slot is valid books one at a time).
Every slot occupies its own `interval` of the schedule, so any 60-second span (however
Cliniko aligns its window) sees at most `rate + depth + late + 1` requests: `rate` is chosen
so that stays `safety` requests under Cliniko's limit (200 -> 192 a minute by default).

First come, first served: when the burst is booked, an interactive caller books the next free
slot all the same, up to `longest_queue` seconds ahead (and never further than it may wait),
and its process sleeps until the moment the rule above would have let it book that slot, so
every send stays where the schedule puts it. Each request then costs one round trip, and the
processes of a key are served in the order they asked: refusing and retrying after a random
sleep (what this did before) gave eight processes sending flat out shares of 8-15 % where
12.5 % is fair, four round trips per request, and requests that gave up after waiting 25 s
while others were served at once. A 429 reaching a process that has slots queued costs each
such process at most one more 429 before it holds too.

Priorities: interactive callers (intake, erasure) book up to `depth` slots ahead. Bulk callers
(the cleanup, a change feed) book one slot at a time and only when at most one slot is booked
ahead (what interactive callers leave), and at most `bulk_share` of the rate (their own second
schedule, `bulk_tat`), so a cleanup never starves intake: an intake submission arriving during
a cleanup finds at most two slots booked in front of it, and its two requests go at once.
While interactive callers leave nothing (they had booked their burst when a bulk caller last
saw the schedule, and it has wanted a slot for `BACKLOG_FLOOR_SLOTS` of the floor's: an
intake backlog, not submissions arriving together), bulk callers together still get
`bulk_floor` of the rate: such a bulk booking queues on the schedule like an interactive one,
behind the callers already queued, and books a third schedule, `floor_tat`, at `bulk_floor`
of the rate. Without it a backlog of 1,000 submissions (10 minutes at the budget's pace) left
the cleanup and the change feed nothing until it had drained. A floor slot is a slot of the
one schedule like any other, so the limit holds as before; interactive callers get the rest,
in the order they asked.

A caller may also have its own cap (`CallerCap`: a name and requests per period, e.g. the
change feed's 20 a minute): one more schedule on the same item, `cap_<name>`, booked with every
slot like `bulk_tat` is (at most one slot ahead), so all the processes of that caller together
stay under their cap while interactive callers keep their priority. Any period then sees at
most `cap.rate + 2` of that caller's requests (GCRA: the one slot booked ahead, and a span that
starts inside a slot).

A 429, whoever receives it, blocks the shared item until `X-RateLimit-Reset`; everyone waits
it out, each resuming after a random part of `resume_jitter` so they do not all send at the
same instant. When the store cannot be reached, the process paces itself at `fallback_share`
of the budget (never unpaced; a bulk caller at its floor, `bulk_floor`, which it can wait
for), logs it and tells `on_fallback` (a metric in AWS), and tries the store again after
`store_recheck_after` seconds, then, while it stays out of reach, `store_retry_after`.

This module knows no AWS: the store is a Protocol, its DynamoDB adapter lives in common/.
"""

from __future__ import annotations

import logging
import random
import re
import threading
from collections import deque
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from enum import StrEnum
from typing import Protocol

from .pacing import CLINIKO_REQUESTS_PER_MINUTE, SYSTEM_CLOCK, BudgetExhausted, Clock, RateBudget

logger = logging.getLogger("cliniko_automations.cliniko")

# The shared item's schedules: all callers book on TAT; bulk callers on BULK_TAT too, and on
# FLOOR_TAT when they queue behind interactive callers (their floor).
TAT = "tat"
BULK_TAT = "bulk_tat"
FLOOR_TAT = "floor_tat"
BLOCKED_UNTIL = "blocked_until"
CAP_PREFIX = "cap_"
_ROUNDING = 1e-5  # seconds
# Beyond a booking's ceiling (the furthest a process with a right clock books its schedule:
# the burst and the longest queue, ~31 s; a caller's cap up to three of its slots), or beyond
# now for `blocked_until` (a hold is at most 65 s): by this much, a value a clock gone wrong
# wrote (a laptop's tool, a host whose clock jumped), read as absent and booked over. Trusted,
# it would keep every process of the key from Cliniko until real time caught up with it.
STALE_AHEAD_SECONDS = 120.0
# How long, in slots of the floor's schedule (3.1 s at 200 a minute), a bulk caller must have
# wanted a slot before it books on its floor: longer than submissions arriving together keep
# the burst full, far shorter than a backlog lasts.
BACKLOG_FLOOR_SLOTS = 2
_CAP_NAME = re.compile(r"[a-z][a-z0-9_]{0,39}")
# Why a process paces itself alone: its log line's and the ClinikoPacingFallback metric's reason
# (template.yaml's alarms name it).
FALLBACK_REASON = "rate_budget_store_unavailable"


class Priority(StrEnum):
    """Who is asking: interactive callers are served first, bulk jobs take what is left."""

    INTERACTIVE = "interactive"
    BULK = "bulk"


@dataclass(frozen=True, slots=True)
class SharingPolicy:
    """How a key's budget is shared. The defaults are Cliniko's window (200 per 60 s)."""

    limit: int = CLINIKO_REQUESTS_PER_MINUTE
    period: float = 60.0
    # Requests of Cliniko's limit never booked: clock differences and network jitter.
    safety: int = 2
    # How many slots interactive callers may book ahead of now (their burst).
    depth: int = 4
    # Seconds beyond the burst an interactive caller books ahead, queued (first come, first
    # served), and sleeps until its slot; a longer queue refuses (the caller tries later).
    longest_queue: float = 30.0
    # Slots booked per round trip to the store (<= depth).
    lease: int = 2
    # A booked slot may still be sent this many slot intervals after its scheduled time.
    late: int = 1
    # The most of the rate bulk callers may take, and only when interactive callers leave it.
    bulk_share: float = 0.8
    # The least of the rate bulk callers get while they wait, even when interactive callers
    # leave nothing (0: none; at most bulk_share).
    bulk_floor: float = 0.1
    # Without the store: each process paces itself at this share of the limit.
    fallback_share: float = 0.25
    # Seconds before a process that fell back tries the store again: once soon, as one call
    # that timed out is most often a moment's stall, then less often. Each process falls back
    # alone: one sending outside the schedule for 30 s after a 2 s stall took 31 requests a
    # minute beside the others' 192, and three 429s.
    store_recheck_after: float = 2.0
    store_retry_after: float = 30.0
    # Throttled processes resume after a 429's reset plus a random part of this (seconds).
    resume_jitter: float = 1.0

    def __post_init__(self) -> None:
        if isinstance(self.limit, bool) or not isinstance(self.limit, int) or self.limit < 1:
            raise ValueError("a sharing policy needs a positive whole number of requests")
        if self.period <= 0:
            raise ValueError("a sharing policy needs a positive period")
        # depth >= lease + 2: a busy interactive lease still fits behind the two slots a bulk
        # caller may leave booked ahead.
        if not 1 <= self.lease <= self.depth - 2 or self.late < 1 or self.safety < 0:
            raise ValueError(
                "a sharing policy needs 1 <= lease <= depth - 2, late >= 1, safety >= 0"
            )
        if self.rate < 1:
            raise ValueError("the limit is too small for the policy's depth, late and safety")
        if not 0 < self.bulk_share <= 1 or not 0 < self.fallback_share <= 1:
            raise ValueError("bulk_share and fallback_share are shares in (0, 1]")
        if not 0 <= self.bulk_floor <= self.bulk_share:
            raise ValueError("bulk_floor is a share in [0, bulk_share]")
        if not self.longest_queue >= 0:
            raise ValueError("a sharing policy's longest_queue is seconds, 0 or more")

    @property
    def rate(self) -> int:
        """Slots booked per period: any period then sees at most `limit - safety` requests."""
        return self.limit - self.safety - self.depth - self.late - 1

    @property
    def interval(self) -> float:
        return self.period / self.rate

    @property
    def fallback_limit(self) -> int:
        return max(1, int(self.limit * self.fallback_share))


@dataclass(frozen=True, slots=True)
class CallerCap:
    """At most `rate` requests per policy period for every process of the caller `name`
    together (on the key's shared item, as the schedule `cap_<name>`)."""

    name: str
    rate: int

    def __post_init__(self) -> None:
        if not isinstance(self.name, str) or not _CAP_NAME.fullmatch(self.name):
            raise ValueError("a caller cap's name is lowercase letters, digits and _")
        if isinstance(self.rate, bool) or not isinstance(self.rate, int) or self.rate < 1:
            raise ValueError("a caller cap needs a positive whole number of requests")

    @property
    def schedule(self) -> str:
        return CAP_PREFIX + self.name


@dataclass(frozen=True, slots=True)
class Booking:
    """Move schedule `name` to max(its value, now) + `cost`, if that stays <= `ceiling`."""

    name: str
    cost: float
    ceiling: float


@dataclass(frozen=True, slots=True)
class StoreAnswer:
    """`granted`: every booking was made. `values`: the schedules and `blocked_until` as
    they were just before the booking (granted) or as they are (refused); absent ones are 0."""

    granted: bool
    values: Mapping[str, float]

    def value(self, name: str) -> float:
        return float(self.values.get(name, 0.0))


class BudgetStoreUnavailable(Exception):
    """The store could not be reached or refused us (missing table, no permission, timeout).
    The message names the reason, never a key."""


class BudgetStore(Protocol):
    """Where the shared schedule of every key lives, keyed by the key's fingerprint."""

    def book(self, budget_id: str, now: float, bookings: Sequence[Booking]) -> StoreAnswer:
        """All `bookings` at once, or none; none either while `blocked_until` > `now`."""
        ...

    def block(self, budget_id: str, until: float) -> None:
        """Nobody books before `until` (UNIX seconds); an earlier `until` changes nothing."""
        ...


class SharedBudget:
    """The budget of one key for one priority in this process, booked on a shared store.

    Same interface as `RateBudget` (`acquire`, `hold`), so the transport uses either.
    Thread-safe: the threads of a process share its booked slots and one round trip at a time.
    """

    def __init__(
        self,
        budget_id: str,
        store: BudgetStore,
        *,
        policy: SharingPolicy | None = None,
        priority: Priority | str = Priority.INTERACTIVE,
        cap: CallerCap | None = None,
        clock: Clock = SYSTEM_CLOCK,
        rng: random.Random | None = None,
        on_fallback: Callable[[str], None] | None = None,
    ) -> None:
        self.budget_id = budget_id
        self.store = store
        self.policy = policy or SharingPolicy()
        self.priority = Priority(priority)
        self.cap = cap
        self.clock = clock
        self._rng = rng or random.Random()  # noqa: S311 - jitter, not security
        self._on_fallback = on_fallback
        # This process's booked slots: (when it may be sent, when it is scheduled).
        self._slots: deque[tuple[float, float]] = deque()
        # Slots booked by the next round trip (None: not decided yet, see _take_slot).
        self._lease: int | None = None
        self._handed: deque[float] = deque(maxlen=self.policy.lease)  # when slots were taken
        self._seen: dict[str, float] = {}  # the shared item as this process last saw it
        self._seen_at = float("-inf")  # ...and when
        self._booked_to = 0.0  # where this process's last booking left the schedule
        self._contended = False  # others booked ahead of now since this process last did
        # Since when this process has wanted a slot without one handed to it (None: it has
        # one, or asks for none), and whether its last booking was on its floor (_floor_due_in).
        self._wanting_since: float | None = None
        self._last_on_floor = False
        self._not_before = float("-inf")  # wall time: the store said wait (or a 429 did)
        # Without the store, a capped caller's process paces itself at no more than its cap,
        # and a bulk caller's at its floor (when it has one): should every process of the key
        # fall back, the worker's two, an erasure's, the cleanup's and the feed's quarters
        # would come to 220 a minute; bulk callers at their floor leave it at 190.
        fallback_limit = self.policy.fallback_limit
        if self.priority is Priority.BULK and self.policy.bulk_floor > 0:
            fallback_limit = min(
                fallback_limit, max(1, int(self.policy.limit * self.policy.bulk_floor))
            )
        if cap is not None:
            fallback_limit = min(fallback_limit, cap.rate)
        # Evenly spaced, one send per period/limit, not `limit` at once: every process of the
        # key falls back together when the table fails, and each sending its share in a
        # burst (an audit saw some 200 requests in the first 20 s) spent Cliniko's window,
        # then a minute of 429s.
        self.fallback_limit = fallback_limit
        self._fallback = RateBudget(1, self.policy.period / fallback_limit, clock=clock)
        self._fallback_until = float("-inf")  # wall time: pace locally until then
        self._store_failures = 0  # the store's failures in a row
        self._lock = threading.Lock()
        # Figures for benchmarks and tests.
        self.store_calls = 0
        self.fallbacks = 0

    @property
    def in_fallback(self) -> bool:
        return self.clock.time() < self._fallback_until

    def acquire(self, max_wait: float | None = None) -> float:
        """Wait for a slot of the shared budget; the seconds waited. `BudgetExhausted` when the
        wait would pass `max_wait` (then nothing is booked for this request)."""
        waited = 0.0
        while True:
            with self._lock:
                now = self.clock.time()
                allowance = float("inf") if max_wait is None else max(max_wait - waited, 0.0)
                wait = None if now < self._fallback_until else self._take_slot(now, allowance)
                if wait is not None and wait <= 0:
                    return waited
            if wait is None:  # paced locally, outside the lock
                remaining = None if max_wait is None else max_wait - waited
                return waited + self._fallback.acquire(max_wait=remaining)
            if max_wait is not None and waited + wait > max_wait:
                raise BudgetExhausted(wait)
            self.clock.sleep(wait)
            waited += wait

    def expect(self, requests: int) -> None:
        """The next `requests` sends are one piece of work (a lookup and its create, an
        erasure's writes): an interactive caller with no slot in hand books up to `lease` of
        them in its next round trip to the store, where it would book one when not busy. A
        slot the work does not use in the end lapses (`late`) like any other."""
        with self._lock:
            if self.priority is Priority.INTERACTIVE and not self._slots and requests > 1:
                self._lease = min(requests, self.policy.lease)

    def hold(self, seconds: float) -> None:
        """Cliniko answered 429: nobody sending on this key (in any process) before it resets."""
        with self._lock:
            now = self.clock.time()
            until = now + seconds
            self._slots.clear()  # the window is spent: slots booked for it are worthless
            # Whoever resumes after a 429 resumes at a random moment just after the reset.
            resume = until + self._rng.uniform(0.0, self.policy.resume_jitter)
            self._not_before = max(self._not_before, resume)
            self._fallback.hold(seconds)
            falling_back = now < self._fallback_until
            if falling_back and self._store_failures > 1:
                return  # out of reach for a while: each try would cost its timeout
            try:
                # Tried after one failure too: a moment's stall leaves this process the only
                # one without the store, and the others would learn of the spent window each
                # from a 429 of its own.
                self.store_calls += 1
                self.store.block(self.budget_id, until)
            except BudgetStoreUnavailable as exc:
                if not falling_back:
                    self._fall_back(now, str(exc))

    # -- inside the lock -----------------------------------------------------------------

    def _take_slot(self, now: float, allowance: float) -> float | None:
        """0 when a slot was taken, else the seconds to wait (None: the store is unreachable);
        a wait longer than `allowance` means the caller should not wait (nothing is booked)."""
        policy = self.policy
        late = policy.late * policy.interval
        while self._slots and self._slots[0][1] + late < now:
            self._slots.popleft()  # booked but not sent in time: spending it now is unsafe
        if self._slots:
            return self._hand_out(now)
        if self._wanting_since is None:
            # Asking again at once after a floor slot (the cleanup's next archive) goes on
            # within the backlog that slot was for: on the floor, not after a floor slot more.
            went_on = self._handed and now - self._handed[-1] < self._floor_slot
            floor_went_on = self._last_on_floor and went_on
            backlog = BACKLOG_FLOOR_SLOTS * self._floor_slot
            self._wanting_since = now - backlog if floor_went_on else now
        if now < self._not_before:
            return self._not_before - now
        if self._lease is None:
            # Busy (the last `lease` slots all went within as many intervals): book full
            # leases. Otherwise one: slots booked and left unsent are taken from everyone else
            # (an intake submission's lookup and create are two requests, not a stream).
            # Bulk callers book one at a time, so they keep no more than a slot ahead of now.
            recent = self._handed
            busy = (
                len(recent) == recent.maxlen and now - recent[0] <= policy.lease * policy.interval
            )
            # And one when others are booking too: a lease per turn of the queue would give
            # this process twice the share of each process booking one.
            leases = busy and self.priority is Priority.INTERACTIVE and not self._contended
            self._lease = policy.lease if leases else 1
        # Other processes only ever move the schedules on: when what this process last saw
        # already refuses the booking, wait without asking (a round trip saved per lease).
        floor, queue, wait = self._plan(now, self._seen, self._seen_at, allowance)
        if wait > 0:
            if not queue or wait <= allowance:
                self._not_before = now + wait
            return wait
        bookings = self._bookings(now, queue, floor)
        try:
            self.store_calls += 1
            answer = self.store.book(self.budget_id, now, bookings)
        except BudgetStoreUnavailable as exc:
            self._fall_back(now, str(exc))
            return None
        self._store_failures = 0
        before = _current(answer.values, now, bookings)
        self._seen = dict(before)
        self._seen_at = now
        if answer.granted:
            self._last_on_floor = floor
            for booking in bookings:
                self._seen[booking.name] = max(before.get(booking.name, 0.0), now) + booking.cost
            start = max(before.get(TAT, 0.0), now)
            self._contended = before.get(TAT, 0.0) > max(now, self._booked_to + _ROUNDING)
            self._booked_to = start + self._lease * policy.interval
            # Slot i may go when booking up to it would have fitted the burst: at once unless
            # the booking was queued.
            self._slots.extend(
                (start + (i + 1 - policy.depth) * policy.interval, start + i * policy.interval)
                for i in range(self._lease)
            )
            self._lease = None
            return self._hand_out(now)
        # Refused: the answer says until when (never 0: the booking did not fit), and whether
        # a bulk caller is to queue on its floor.
        self._contended = True
        floor, queue, wait = self._plan(now, answer.values, now, allowance)
        wait = max(wait, policy.interval / 10)
        if not queue or wait <= allowance:
            self._not_before = now + wait
        return wait

    def _hand_out(self, now: float) -> float:
        """Take this process's next booked slot: 0, or the seconds until it may be sent."""
        send_from = self._slots[0][0]
        if send_from > now + _ROUNDING:  # the store's times are rounded to microseconds
            return send_from - now
        self._slots.popleft()
        self._handed.append(now)
        self._wanting_since = None
        return 0.0

    def _plan(
        self, now: float, values: Mapping[str, float], seen_at: float, allowance: float
    ) -> tuple[bool, float, float]:
        """The booking to try as `values` (seen at `seen_at`) has the item: on the floor or
        not, how far it may queue, and the seconds until it fits (0: now). A bulk caller on
        its floor still takes what interactive callers leave when that comes first.

        A bulk caller's wait has a random part of a tenth of a slot added: bulk callers on
        the floor all wait for the floor's next slot, and with waits to the same moment the
        one that always asked first took it every time: in a simulated 4-minute backlog, a
        cleanup beside a change feed's two processes got 14 to 37 of some 80 floor slots,
        by how their asks lined up after some change elsewhere; 31 or 32 with this part."""
        floor, queue, wait = self._plan_booking(now, values, seen_at, allowance)
        if wait > 0 and self.priority is Priority.BULK:
            wait += self._rng.uniform(0.0, self.policy.interval / 10)
        return floor, queue, wait

    def _plan_booking(
        self, now: float, values: Mapping[str, float], seen_at: float, allowance: float
    ) -> tuple[bool, float, float]:
        queue = self._queue(allowance)
        wait = self._wait_for(now, values, queue, allowance)
        if wait <= 0 or not self._on_floor(values, seen_at):
            return False, queue, wait
        if (due_in := self._floor_due_in(now)) > 0:
            return False, queue, min(wait, due_in)
        floor_queue = self._queue(allowance, floor=True)
        floor_wait = self._wait_for(now, values, floor_queue, allowance, floor=True)
        if floor_wait < wait:
            return True, floor_queue, floor_wait
        return False, queue, wait

    @property
    def _floor_slot(self) -> float:
        """The seconds between a bulk caller's floor slots (all of them together)."""
        policy = self.policy
        return policy.interval / policy.bulk_floor if policy.bulk_floor > 0 else float("inf")

    def _floor_due_in(self, now: float) -> float:
        """Seconds until this process counts as held below its floor (0: it does): when it
        has wanted a slot for two floor slots' time. A backlog lasts minutes; submissions
        arriving together fill the burst for a second or two, and a floor slot booked then
        queued in front of the next ones (at half of the budget, with a cleanup beside it,
        intake's 95th percentile wait went from 1.1 s to 2.6 s, 1.4 s with no floor)."""
        since = now if self._wanting_since is None else self._wanting_since
        return max(since + BACKLOG_FLOOR_SLOTS * self._floor_slot - now, 0.0)

    def _on_floor(self, values: Mapping[str, float], seen_at: float) -> bool:
        """Whether a bulk caller books on its floor: interactive callers had booked their
        burst (all but a slot) when it last saw the schedule, so they leave it nothing. Read
        from what it saw, not asked again: a backlog lasts minutes, and the answer to a
        booking refused says what to book instead."""
        policy = self.policy
        if self.priority is not Priority.BULK or policy.bulk_floor <= 0 or TAT not in values:
            return False
        booked = _current(values, seen_at, ()).get(TAT, 0.0)
        return booked > seen_at + (policy.depth - 1) * policy.interval

    def _queue(self, allowance: float, floor: bool = False) -> float:
        """Seconds beyond the burst this booking may queue, no longer than it waits: an
        interactive caller's (a capped one keeps to its cap's one slot ahead), and a bulk
        caller's on its floor. A capped caller's floor slot goes at most a slot of its cap
        (less one of the budget) after its booking, so its cap's bound holds as it did: each
        of its sends within a slot of its cap's schedule of its own."""
        policy = self.policy
        if self.priority is Priority.INTERACTIVE:
            return min(policy.longest_queue, allowance) if self.cap is None else 0.0
        if not floor:
            return 0.0
        queue = min(policy.longest_queue, allowance)
        if self.cap is not None:
            queue = min(queue, policy.period / self.cap.rate - policy.interval)
        return max(queue, 0.0)

    def _bookings(self, now: float, queue: float, floor: bool = False) -> list[Booking]:
        policy = self.policy
        cost = (self._lease or 1) * policy.interval
        now += _ROUNDING  # ceilings: sums of floats (and the store's microseconds) may round up
        if self.priority is Priority.INTERACTIVE:
            bookings = [Booking(TAT, cost, now + policy.depth * policy.interval + queue)]
        elif floor:
            # Queued behind the interactive callers, as one of them (their ceiling), and at
            # most `bulk_floor` of the rate (one slot ahead on its schedule) for every bulk
            # caller together; within `bulk_share` too.
            bulk_cost = cost / policy.bulk_share
            floor_cost = cost / policy.bulk_floor
            bookings = [
                Booking(TAT, cost, now + policy.depth * policy.interval + queue),
                Booking(BULK_TAT, bulk_cost, now + 2 * bulk_cost),
                Booking(FLOOR_TAT, floor_cost, now + 2 * floor_cost),
            ]
        else:
            # Bulk books only when at most one slot is booked ahead of now, one slot at a
            # time, so `depth - 2` interactive slots (a submission's lookup and create) always
            # still fit; and on its own slower schedule.
            bulk_cost = cost / policy.bulk_share
            bookings = [
                Booking(TAT, cost, now + cost + policy.interval),
                Booking(BULK_TAT, bulk_cost, now + 2 * bulk_cost),
            ]
        if self.cap is not None:
            # The caller's own schedule, shared by all its processes: one slot ahead at most.
            slot = policy.period / self.cap.rate
            cap_cost = (self._lease or 1) * slot
            bookings.append(Booking(self.cap.schedule, cap_cost, now + cap_cost + slot))
        return bookings

    def _wait_for(
        self,
        now: float,
        values: Mapping[str, float],
        queue: float,
        allowance: float,
        floor: bool = False,
    ) -> float:
        """Seconds until the bookings fit the shared item as `values` has it; 0: they may.
        More than `allowance` when the caller would wait longer than that for its slot."""
        policy = self.policy
        bookings = self._bookings(now, queue, floor)
        values = _current(values, now, bookings)
        blocked = values.get(BLOCKED_UNTIL, 0.0) - now
        if blocked > 0:
            # Everyone throttled resumes at the reset: spread them out.
            return blocked + self._rng.uniform(0.0, policy.resume_jitter)
        wait = max(max(values.get(b.name, 0.0), now) + b.cost - b.ceiling for b in bookings)
        if wait <= 0:
            return 0.0
        if queue > 0:
            # Queued, the slot would come when the schedule is back within the burst: past
            # the allowance, waiting is no use (the queue refills behind this caller).
            until_slot = wait + queue
            if until_slot > allowance:
                return until_slot
        # Jitter, so the processes waiting for the same moment do not all ask at once. Within
        # the slots still booked ahead at that moment, waking later loses nothing: up to
        # depth - lease of them for interactive callers; bulk callers wait for one slot ahead,
        # and spread over half of it so they book before it runs out.
        if self.priority is Priority.BULK or self.cap is not None:
            spread = policy.interval / 2
        else:
            spread = max(policy.depth - (self._lease or 1), 1) * policy.interval
        return wait + self._rng.uniform(0.0, spread)

    def _fall_back(self, now: float, reason: str) -> None:
        self._slots.clear()
        self._store_failures += 1
        policy = self.policy
        seconds = (
            policy.store_recheck_after if self._store_failures == 1 else policy.store_retry_after
        )
        self._fallback_until = now + seconds
        self.fallbacks += 1
        logger.warning(
            "the shared rate budget is unreachable (%s); pacing this process alone at %d "
            "requests per %.0f s, evenly spaced, for %.0f s",
            reason,
            self.fallback_limit,
            policy.period,
            seconds,
            extra={"reason": FALLBACK_REASON, "key_id": self.budget_id},
        )
        if self._on_fallback is not None:
            try:
                self._on_fallback(reason)
            except Exception:  # a metric must never stop a request
                logger.exception("reporting the rate budget fallback failed")


def stale_after(now: float, booking: Booking | None = None) -> float:
    """Where a value of `booking`'s schedule (None: `blocked_until`) stops being one a right
    clock wrote."""
    return (now if booking is None else booking.ceiling) + STALE_AHEAD_SECONDS


def _current(
    values: Mapping[str, float], now: float, bookings: Sequence[Booking]
) -> dict[str, float]:
    """The shared item's values with the stale ones (`stale_after`) read as absent: the store
    books over them, so they are no reason to wait."""
    limits = {booking.name: stale_after(now, booking) for booking in bookings}
    limit = stale_after(now)
    return {
        name: 0.0 if value > limits.get(name, limit) else value for name, value in values.items()
    }


_shared: dict[tuple[str, Priority, int, SharingPolicy, CallerCap | None], SharedBudget] = {}
_shared_lock = threading.Lock()


def shared_store_budget(
    budget_id: str,
    store: BudgetStore,
    *,
    policy: SharingPolicy,
    priority: Priority | str,
    cap: CallerCap | None = None,
    on_fallback: Callable[[str], None] | None = None,
) -> SharedBudget:
    """The process-wide `SharedBudget` of a key (by fingerprint), store, priority, policy and
    caller cap: every client of them in the process shares its booked slots."""
    slot = (budget_id, Priority(priority), id(store), policy, cap)
    with _shared_lock:
        budget = _shared.get(slot)
        if budget is None or budget.store is not store:
            budget = _shared[slot] = SharedBudget(
                budget_id,
                store,
                policy=policy,
                priority=priority,
                cap=cap,
                on_fallback=on_fallback,
            )
        return budget


def clear_shared_store_budgets() -> None:
    """Forget every process-wide shared budget (test fixtures)."""
    with _shared_lock:
        _shared.clear()
