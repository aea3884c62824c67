"""Proactive pacing under Cliniko's per-user budget (200 requests a minute), and the clock.

Why a rolling window and not a classic refilling bucket: a bucket of N tokens refilled at
N/60 per second lets 2N requests through in the first minute (N at once, N more refilled),
which is exactly the 429 we want to avoid. Here a token comes back 60 s after it was spent,
so no 60-second window (Cliniko's, whichever way it is aligned) ever sees more than N
requests from this process, and a burst of up to N still goes out at once.

Every client of the same key (and budget) in the process shares one budget, keyed by a hash
of the key (the key itself is never stored here). This budget knows only its own process: it
serves tests, the CLI and any client built without a shared store. Deployed functions book
on the key's budget shared by all processes (shared_pacing.py), and fall back to this one.

A send counts against the window for `WINDOW_MARGIN` seconds more than Cliniko's minute: its
slot is taken just before it is sent and it reaches Cliniko a moment later, so a slot reused
exactly 60 s on could arrive inside the same window as the send it replaces.
"""

from __future__ import annotations

import hashlib
import threading
import time
from collections import deque
from typing import Protocol


class Clock(Protocol):
    """Time as the runtime sees it; tests inject a fake one so nothing really sleeps."""

    def monotonic(self) -> float: ...

    def time(self) -> float: ...

    def sleep(self, seconds: float) -> None: ...


class SystemClock:
    def monotonic(self) -> float:
        return time.monotonic()

    def time(self) -> float:
        return time.time()

    def sleep(self, seconds: float) -> None:
        if seconds > 0:
            time.sleep(seconds)


SYSTEM_CLOCK = SystemClock()
WINDOW_MARGIN = 1.0
# Cliniko's limit: this many requests a minute per user, across every key of that user.
CLINIKO_REQUESTS_PER_MINUTE = 200


class Budget(Protocol):
    """What the transport asks of a rate budget: this process's (`RateBudget`) or the key's
    budget shared by every process (`shared_pacing.SharedBudget`)."""

    def acquire(self, max_wait: float | None = None) -> float: ...

    def hold(self, seconds: float) -> None: ...

    def expect(self, requests: int) -> None:
        """The next `requests` sends are one piece of work: a shared budget books them in as
        few round trips to its store as its policy allows."""
        ...


class BudgetExhausted(Exception):
    """The next send fits only after a longer wait than the caller allows."""

    def __init__(self, wait: float) -> None:
        super().__init__(f"the rate budget frees a slot in {wait:.1f}s")
        self.wait = wait


class RateBudget:
    """At most `limit` sends in any `period` seconds; thread-safe."""

    def __init__(self, limit: int, period: float = 60.0, *, clock: Clock = SYSTEM_CLOCK) -> None:
        if isinstance(limit, bool) or not isinstance(limit, int) or limit < 1:
            raise ValueError("a rate budget needs a positive whole number of requests")
        if period <= 0:
            raise ValueError("a rate budget needs a positive period")
        self.limit = limit
        self.period = float(period)
        self.clock = clock
        self._sent: deque[float] = deque()
        self._hold_until = float("-inf")
        self._lock = threading.Lock()

    def acquire(self, max_wait: float | None = None) -> float:
        """Wait until one more send fits, record it, and return the seconds spent waiting.

        With `max_wait`, a wait that would take longer is not started: `BudgetExhausted`
        says how long it would have been, and nothing is recorded.
        """
        waited = 0.0
        while True:
            with self._lock:
                now = self.clock.monotonic()
                while self._sent and self._sent[0] <= now - self.period:
                    self._sent.popleft()
                wait = self._hold_until - now
                if len(self._sent) >= self.limit:
                    wait = max(wait, self._sent[0] + self.period - now)
                if wait <= 0:
                    self._sent.append(now)
                    return waited
            if max_wait is not None and waited + wait > max_wait:
                raise BudgetExhausted(wait)
            # Sleep outside the lock so other threads can see the same answer and wait too.
            self.clock.sleep(wait)
            waited += wait

    def hold(self, seconds: float) -> None:
        """Let nobody send for `seconds` (Cliniko said the window is spent: a 429)."""
        with self._lock:
            self._hold_until = max(self._hold_until, self.clock.monotonic() + seconds)

    def expect(self, requests: int) -> None:
        """Nothing to do: this budget books nothing ahead, it counts the sends."""

    def in_window(self) -> int:
        """How many sends fall in the current window (for tests and figures)."""
        with self._lock:
            now = self.clock.monotonic()
            return sum(1 for sent in self._sent if sent > now - self.period)


_shared: dict[tuple[str, int], RateBudget] = {}
_shared_lock = threading.Lock()


def key_fingerprint(api_key: str) -> str:
    """A stable, non-reversible name for a key: safe to hold in memory maps and logs."""
    return hashlib.sha256(api_key.encode()).hexdigest()[:16]


def shared_budget(budget_id: str, requests_per_minute: int) -> RateBudget:
    """The process-wide budget of a key (`budget_id`: its fingerprint, or its user's). Keyed
    by (id, budget) so a client asking for a different budget (a test, a deliberately slower
    job) never changes another's pacing."""
    slot = (budget_id, requests_per_minute)
    with _shared_lock:
        budget = _shared.get(slot)
        if budget is None:
            budget = _shared[slot] = RateBudget(requests_per_minute, 60.0 + WINDOW_MARGIN)
        return budget
