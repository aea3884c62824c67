"""The shared budget's store contract on a dict, for tests that need no DynamoDB."""

from __future__ import annotations

import threading
from collections.abc import Sequence

from cliniko_automations.cliniko.shared_pacing import BLOCKED_UNTIL, Booking, StoreAnswer


class MemoryBudgetStore:
    """The `BudgetStore` contract on a dict: what DynamoBudgetStore does in one UpdateItem."""

    def __init__(self) -> None:
        self.items: dict[str, dict[str, float]] = {}
        self._lock = threading.Lock()

    def book(self, budget_id: str, now: float, bookings: Sequence[Booking]) -> StoreAnswer:
        with self._lock:
            item = self.items.setdefault(budget_id, {})
            before = dict(item)
            if item.get(BLOCKED_UNTIL, 0.0) > now:
                return StoreAnswer(False, before)
            moved = {b.name: max(item.get(b.name, 0.0), now) + b.cost for b in bookings}
            if any(moved[b.name] > b.ceiling for b in bookings):
                return StoreAnswer(False, before)
            item.update(moved)
            return StoreAnswer(True, before)

    def block(self, budget_id: str, until: float) -> None:
        with self._lock:
            item = self.items.setdefault(budget_id, {})
            item[BLOCKED_UNTIL] = max(item.get(BLOCKED_UNTIL, 0.0), until)
