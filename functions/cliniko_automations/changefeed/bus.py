"""EventBridge adapter: PutEvents, retrying the entries EventBridge reports as failed."""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from typing import Any

from cliniko_automations.common.printable import counted

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
        # Each entry with its position in `events`, so a failure can say which were accepted.
        pending = [
            (
                position,
                {
                    "EventBusName": self._bus,
                    "Source": event.source,
                    "DetailType": event.detail_type,
                    "Detail": event.detail_json(),
                },
            )
            for position, event in enumerate(events)
        ]
        codes: set[str] = set()
        for attempt in range(_ATTEMPTS):
            if not pending:
                return
            answer = self._events.put_events(Entries=[entry for _, entry in pending])
            if not answer.get("FailedEntryCount"):
                return
            # Entries are answered in order; only the failed ones are sent again.
            outcomes = list(zip(pending, answer["Entries"], strict=True))
            pending = [sent for sent, outcome in outcomes if outcome.get("ErrorCode")]
            codes = {outcome["ErrorCode"] for _, outcome in outcomes if outcome.get("ErrorCode")}
            if attempt < _ATTEMPTS - 1:  # no pause after the last: nothing follows it
                self._sleep(0.1 * 2**attempt)
        if pending:
            left = {position for position, _ in pending}
            raise PublishFailed(
                f"{counted(len(pending), 'event')} not accepted by EventBridge"
                f" ({', '.join(sorted(codes))})",
                accepted=frozenset(range(len(events))) - left,
            )
