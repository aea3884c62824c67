"""Cliniko's rate limit: N requests per minute per API key, in fixed windows.

`time_scale` shrinks the minute for benchmarks (time_scale=60 makes it one real second).
`X-RateLimit-Reset` is the window's end in real UNIX seconds, rounded up, so a client that
sleeps until then always finds a fresh window.
"""

from __future__ import annotations

import math
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass

DEFAULT_PER_MINUTE = 200


@dataclass
class _Window:
    start: float
    count: int


class RateLimiter:
    def __init__(
        self,
        per_minute: int | None = DEFAULT_PER_MINUTE,
        time_scale: float = 1.0,
        *,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self._lock = threading.Lock()
        self._clock = clock
        self._windows: dict[str, _Window] = {}
        self.configure(per_minute, time_scale)

    def configure(self, per_minute: int | None, time_scale: float = 1.0) -> None:
        if per_minute is not None and (isinstance(per_minute, bool) or per_minute < 0):
            raise ValueError("per_minute must be a positive integer, 0 or null (no limit)")
        if not time_scale or time_scale <= 0:
            raise ValueError("time_scale must be a positive number")
        with self._lock:
            self.per_minute = per_minute or None
            self.time_scale = float(time_scale)
            self._windows.clear()

    @property
    def window_seconds(self) -> float:
        return 60.0 / self.time_scale

    def settings(self) -> dict:
        return {"per_minute": self.per_minute or 0, "time_scale": self.time_scale}

    def hit(self, key: str) -> int | None:
        """Counts a request; None when allowed, else the reset time in UNIX seconds."""
        if self.per_minute is None:
            return None
        now = self._clock()
        with self._lock:
            window = self._windows.get(key)
            if window is None or now >= window.start + self.window_seconds:
                window = self._windows[key] = _Window(now, 0)
            if window.count >= self.per_minute:
                return math.ceil(window.start + self.window_seconds)
            window.count += 1
            return None
