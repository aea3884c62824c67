"""EventBridge adapter: PutEvents, retrying the entries EventBridge reports as failed."""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from typing import Any

from .core import PublishFailed
from .events import OutgoingEvent

_ATTEMPTS = 4


class EventBridgeSink:
    def __init__(
        self, client: Any, bus_name: str, *, sleep: Callable[[float], None] = time.sleep
    ) -> None:
        self._events = client
        self._bus = bus_name
        self._sleep = sleep

    def publish(self, events: Sequence[OutgoingEvent]) -> None:
        pending = [
            {
                "EventBusName": self._bus,
                "Source": event.source,
                "DetailType": event.detail_type,
                "Detail": event.detail_json(),
            }
            for event in events
        ]
        codes: set[str] = set()
        for attempt in range(_ATTEMPTS):
            if not pending:
                return
            answer = self._events.put_events(Entries=pending)
            if not answer.get("FailedEntryCount"):
                return
            # Entries are answered in order; only the failed ones are sent again.
            failed = [
                entry
                for entry, outcome in zip(pending, answer["Entries"], strict=True)
                if outcome.get("ErrorCode")
            ]
            codes = {o["ErrorCode"] for o in answer["Entries"] if o.get("ErrorCode")}
            pending = failed
            self._sleep(0.1 * 2**attempt)
        if pending:
            raise PublishFailed(
                f"{len(pending)} events not accepted by EventBridge ({', '.join(sorted(codes))})"
            )
