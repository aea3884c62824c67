"""In-memory implementations of the worker's storage ports, for testing the core without AWS.

They keep the semantics the DynamoDB adapters have (a claim excludes others until released,
an intent holds the latest attempt's window, the ledger keeps the first submission's entry
for a contact); the adapters
themselves are tested against moto in tests/integration/intake_worker.
"""

from __future__ import annotations

import contextlib
import threading
from collections.abc import Iterator, Sequence
from dataclasses import replace
from datetime import datetime

from cliniko_automations.common.ledger import LedgerEntry
from cliniko_automations.intake.submission import Submission
from cliniko_automations.intake_worker.worker import ClaimBusy, Intent


class MemoryClaims:
    def __init__(self, wait_seconds: float = 5.0) -> None:
        self._locks: dict[str, threading.Lock] = {}
        self._guard = threading.Lock()
        self._wait = wait_seconds
        self.taken: list[str] = []

    @contextlib.contextmanager
    def hold(self, key: str) -> Iterator[None]:
        with self._guard:
            lock = self._locks.setdefault(key, threading.Lock())
        if not lock.acquire(timeout=self._wait):
            raise ClaimBusy()
        self.taken.append(key)
        try:
            yield
        finally:
            lock.release()


class MemoryIntents:
    def __init__(self) -> None:
        self.items: dict[str, Intent] = {}

    def get(self, idempotency_key: str) -> Intent | None:
        return self.items.get(idempotency_key)

    def begin(self, idempotency_key: str, started_at: datetime) -> None:
        self.items[idempotency_key] = Intent(started_at)

    def lost(self, idempotency_key: str, lost_at: datetime) -> None:
        self.items[idempotency_key] = replace(self.items[idempotency_key], lost_at=lost_at)

    def complete(self, idempotency_key: str, contact_id: str) -> None:
        self.items[idempotency_key] = replace(self.items[idempotency_key], contact_id=contact_id)

    def abandon(self, idempotency_key: str) -> None:
        self.items.pop(idempotency_key, None)

    def keep(self, idempotency_key: str) -> None:
        pass


class MemoryLedger:
    def __init__(self) -> None:
        self.entries: dict[str, LedgerEntry] = {}
        self.seen_at: dict[str, str] = {}

    def record(self, entry: LedgerEntry) -> None:
        self.entries.setdefault(entry.contact_id, entry)

    def seen(self, contact_id: str, at: str) -> None:
        if contact_id in self.entries:
            self.seen_at[contact_id] = at


class MemoryParking:
    def __init__(self) -> None:
        self.parked: list[tuple[str, str, tuple[str, ...]]] = []

    def park(self, submission: Submission, reason: str, candidate_ids: Sequence[str]) -> None:
        self.parked.append((submission.submission_id, reason, tuple(candidate_ids)))
