"""A clock for tests of waiting: sleeping advances it at once and records how long."""

from __future__ import annotations

import threading
import time


class FakeClock:
    def __init__(self, start: float | None = None) -> None:
        # Wall time starts at the real time so UNIX reset headers from a server make sense.
        self._wall = time.time() if start is None else start
        self._mono = 1000.0
        self.sleeps: list[float] = []
        self._lock = threading.Lock()

    def monotonic(self) -> float:
        with self._lock:
            return self._mono

    def time(self) -> float:
        with self._lock:
            return self._wall

    def sleep(self, seconds: float) -> None:
        with self._lock:
            self.sleeps.append(seconds)
            if seconds > 0:
                self._mono += seconds
                self._wall += seconds

    def advance(self, seconds: float) -> None:
        with self._lock:
            self._mono += seconds
            self._wall += seconds
