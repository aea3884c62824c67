"""Concurrent processes on simulated time: each thread's sleep returns when the simulated
clock reaches its wake-up, and the clock moves on only when every thread is asleep.

So several processes sending for minutes run in a fraction of a second, each seeing the
others' bookings exactly as it would at that moment, whatever the machine's speed.
"""

from __future__ import annotations

import itertools
import threading
from collections.abc import Callable, Sequence


class VirtualClock:
    """A `Clock` (time, monotonic, sleep) shared by the threads of `run_threads`."""

    def __init__(self, start: float = 1_700_000_000.0) -> None:
        self._now = start
        self._cond = threading.Condition()
        self._wakeups: list[tuple[float, int]] = []
        self._order = itertools.count()
        self._awake = 1  # the thread that made it, until it waits on `run_threads`

    def time(self) -> float:
        with self._cond:
            return self._now

    def monotonic(self) -> float:
        return self.time()

    def sleep(self, seconds: float) -> None:
        with self._cond:
            wake = (self._now + max(seconds, 0.0), next(self._order))
            self._wakeups.append(wake)
            self._awake -= 1
            self._advance_if_all_asleep()
            while self._now < wake[0]:
                self._cond.wait()
            self._wakeups.remove(wake)
            self._awake += 1

    def _advance_if_all_asleep(self) -> None:
        if self._awake == 0 and self._wakeups:
            self._now = max(self._now, min(self._wakeups)[0])
            self._cond.notify_all()

    def _enter(self) -> None:
        with self._cond:
            self._awake += 1

    def _leave(self) -> None:
        with self._cond:
            self._awake -= 1
            self._advance_if_all_asleep()


def run_threads(clock: VirtualClock, bodies: Sequence[Callable[[], None]]) -> None:
    """Run every body in its own thread on `clock` until all have returned."""

    def run(body: Callable[[], None]) -> None:
        try:
            body()
        finally:
            clock._leave()

    for _ in bodies:
        clock._enter()  # all count as awake before any may advance the clock
    clock._leave()  # the caller only waits for them
    threads = [threading.Thread(target=run, args=(body,), daemon=True) for body in bodies]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=120)
        if thread.is_alive():
            raise RuntimeError("a simulated process never finished")
    clock._enter()


def most_in_any_window(sends: list[float], period: float) -> int:
    """The most of `sends` (times) that any `period` seconds hold."""
    sends = sorted(sends)
    return max(sum(1 for t in sends[i:] if t < start + period) for i, start in enumerate(sends))
