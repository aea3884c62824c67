"""Injected faults for the Cliniko routes: server errors, latency, dropped connections and a
window of 429s. Decisions come from a seeded RNG so a run can be replayed.
"""

from __future__ import annotations

import random
import threading
import time
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

ALLOWED_STATUSES = frozenset({500, 502, 503, 504})


@dataclass
class FaultSettings:
    error_rate: float = 0.0
    statuses: list[int] = field(default_factory=lambda: [500, 502, 504])
    latency_ms: int = 0
    drop_rate: float = 0.0
    throttle_window_s: float = 0.0
    # Answer the error or drop the connection after the request took effect (a create that
    # "failed" but happened), as a gateway timing out in front of a busy Cliniko does.
    after_effect: bool = False
    # The share of the random errors and drops answered after the request took effect when
    # `after_effect` is off (a mix of "refused" and "committed, then the answer was lost").
    after_effect_rate: float = 0.0
    # Statuses (or "drop", or "drop_after": commit the request, then drop the connection)
    # answered to the next requests in order, before any random fault: deterministic faults
    # for tests.
    fail_next: list[int | str] = field(default_factory=list)
    seed: int | None = None
    methods: list[str] | None = None  # only these methods get faults; None means all
    # Only requests whose path ends with one of these get faults (one contact's archive, say);
    # None means all.
    paths: list[str] | None = None


@dataclass(frozen=True)
class Decision:
    status: int | None = None  # an injected error status
    drop: bool = False
    throttle_reset: int | None = None  # UNIX seconds when the 429 window ends
    latency_s: float = 0.0
    after_effect: bool = False  # the request takes effect before the fault is answered

    @property
    def is_fault(self) -> bool:
        return bool(self.status or self.drop or self.throttle_reset)

    @property
    def is_throttle(self) -> bool:
        # Cliniko refuses a throttled request before doing anything: never "after effect".
        return bool(self.throttle_reset) or self.status == 429


def _rate(value: Any, name: str) -> float:
    if isinstance(value, bool) or not isinstance(value, int | float) or not 0 <= value <= 1:
        raise ValueError(f"{name} must be a number from 0 to 1")
    return float(value)


class Faults:
    def __init__(self) -> None:
        self._lock = threading.Lock()
        self.settings = FaultSettings()
        self._rng = random.Random()
        self._throttle_until = 0.0

    def configure(self, body: Mapping[str, Any]) -> FaultSettings:
        """Replaces the settings; unknown keys or bad values raise ValueError."""
        known = set(FaultSettings.__dataclass_fields__)
        unknown = set(body) - known
        if unknown:
            raise ValueError(f"unknown fault settings: {', '.join(sorted(unknown))}")
        settings = FaultSettings(**{k: v for k, v in body.items() if v is not None})
        settings.error_rate = _rate(settings.error_rate, "error_rate")
        settings.drop_rate = _rate(settings.drop_rate, "drop_rate")
        settings.after_effect_rate = _rate(settings.after_effect_rate, "after_effect_rate")
        if not settings.statuses or any(s not in ALLOWED_STATUSES for s in settings.statuses):
            raise ValueError(f"statuses must be some of {sorted(ALLOWED_STATUSES)}")
        for name in ("latency_ms", "throttle_window_s"):
            value = getattr(settings, name)
            if isinstance(value, bool) or not isinstance(value, int | float) or value < 0:
                raise ValueError(f"{name} must be a number >= 0")
        for item in settings.fail_next:
            if item not in ("drop", "drop_after") and item not in ALLOWED_STATUSES | {429}:
                raise ValueError(
                    "fail_next items must be 429, 500, 502, 503, 504, 'drop' or 'drop_after'"
                )
        if settings.methods is not None:
            settings.methods = [str(m).upper() for m in settings.methods]
        if settings.paths is not None and (
            not isinstance(settings.paths, list)
            or not all(isinstance(p, str) and p for p in settings.paths)
        ):
            raise ValueError("paths must list non-empty strings")
        with self._lock:
            self.settings = settings
            self._rng = random.Random(settings.seed)
            self._throttle_until = (
                time.time() + settings.throttle_window_s if settings.throttle_window_s else 0.0
            )
            self.settings.fail_next = list(settings.fail_next)
        return settings

    def reset(self) -> None:
        self.configure({})

    def describe(self) -> dict[str, Any]:
        with self._lock:
            out = dict(self.settings.__dict__)
            out["throttled_until"] = self._throttle_until or None
            return out

    def decide(self, method: str, path: str) -> Decision:
        with self._lock:
            settings = self.settings
            latency = settings.latency_ms / 1000.0
            if settings.methods is not None and method not in settings.methods:
                return Decision(latency_s=latency)
            if settings.paths is not None and not path.endswith(tuple(settings.paths)):
                return Decision(latency_s=latency)
            if settings.fail_next:
                item = settings.fail_next.pop(0)
                if item in ("drop", "drop_after"):
                    after = item == "drop_after" or settings.after_effect
                    return Decision(drop=True, latency_s=latency, after_effect=after)
                if item == 429:
                    return Decision(throttle_reset=int(time.time()) + 1, latency_s=latency)
                return Decision(
                    status=int(item), latency_s=latency, after_effect=settings.after_effect
                )
            now = time.time()
            if now < self._throttle_until:
                return Decision(throttle_reset=int(self._throttle_until) + 1, latency_s=latency)
            # Draw every number every time so one setting does not shift another's sequence.
            drop_draw, error_draw = self._rng.random(), self._rng.random()
            status_draw = self._rng.choice(settings.statuses)
            after = settings.after_effect or self._rng.random() < settings.after_effect_rate
            if drop_draw < settings.drop_rate:
                return Decision(drop=True, latency_s=latency, after_effect=after)
            if error_draw < settings.error_rate:
                return Decision(status=status_draw, latency_s=latency, after_effect=after)
            return Decision(latency_s=latency)
