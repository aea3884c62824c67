"""The events a change becomes: one on the bus for AWS subscribers, and one signed delivery
per webhook subscriber that asked for its type.

Bus event (source `cliniko-automations.contacts`, detail-type the change's type): the
change's summary (ids, type, account, updated_at, changed field names), never field values.

Webhook delivery (source `cliniko-automations.webhooks`): `detail.subscriber` (its rule
matches on it), `detail.body` (the exact body, a Standard Webhooks payload
{"type", "timestamp", "data"}, fields only for a subscriber opted in) and `detail.webhook`
(the id, timestamp and signature headers, signed over that body with the subscriber's key).
The subscriber's rule sends `detail.body` (InputPath) with those headers (HttpParameters JSON
paths) to its API destination.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from .changes import Change, Unsent
from .signing import sign
from .subscribers import Subscriber

CONTACTS_SOURCE = "cliniko-automations.contacts"
WEBHOOKS_SOURCE = "cliniko-automations.webhooks"
# A PutEvents call carries at most 256 KB of entries (source, detail-type and detail, as
# EventBridge counts them); a change goes out in one call. Kept a little under it.
MAX_CALL_BYTES = 250_000


@dataclass(frozen=True)
class OutgoingEvent:
    source: str
    detail_type: str
    detail: Mapping[str, Any]

    def detail_json(self) -> str:
        """The detail as put: serialised as the body is (`webhook_body`), so `detail.body`
        is the signed text itself within it. Escaped to ASCII, a "ë" in the body put as
        `\u00eb` would reach a receiver so if EventBridge passes the subtree on as put, and
        fail its signature."""
        return json.dumps(self.detail, separators=(",", ":"), sort_keys=True, ensure_ascii=False)

    @property
    def subscriber(self) -> str | None:
        """The subscriber this event is a delivery to; None for the bus event."""
        return str(self.detail["subscriber"]) if self.source == WEBHOOKS_SOURCE else None

    def size(self) -> int:
        """The entry's size as EventBridge counts it against a call's 256 KB."""
        return sum(
            len(text.encode()) for text in (self.source, self.detail_type, self.detail_json())
        )


def webhook_body(payload: Mapping[str, Any]) -> str:
    """The body as signed: compact UTF-8 JSON with sorted keys, the same text as `detail.body`
    inside the event's detail (serialised the same way), which the rule's target delivers by
    InputPath. That EventBridge re-serialises that subtree compactly and in order is the one
    assumption AWS's documentation does not settle (the README's change-feed section)."""
    return json.dumps(payload, separators=(",", ":"), sort_keys=True, ensure_ascii=False)


class EventBuilder:
    def __init__(
        self,
        subscribers: Sequence[Subscriber],
        signing_keys: Mapping[str, Sequence[bytes]],
        clock: Callable[[], float],
    ) -> None:
        missing = [s.name for s in subscribers if s.name not in signing_keys]
        if missing:
            raise ValueError(f"no signing key for subscribers {', '.join(missing)}")
        self._subscribers = list(subscribers)
        self._keys = dict(signing_keys)
        self._clock = clock

    def events_for(self, change: Change, unsent: Unsent | None = None) -> list[OutgoingEvent]:
        """The change's bus event and its deliveries; only those `unsent` names, when given
        (a subscriber since removed, or no longer asking for the type, gets none)."""
        wanting = [s for s in self._subscribers if s.wants(change.type, change.account)]
        if unsent is not None:
            wanting = [s for s in wanting if s.name in unsent.subscribers]
        bus = [OutgoingEvent(CONTACTS_SOURCE, change.type, change.summary())]
        if unsent is not None and not unsent.bus:
            bus = []
        if change.snapshot is None:
            # Sent late, after its contact changed again: its values are gone. Each delivery
            # carries the summary, marked, and its receiver reads the contact itself.
            return [*bus, *(self._delivery(s, change, "superseded") for s in wanting)]
        events = [*bus, *(self._delivery(s, change) for s in wanting)]
        if sum(event.size() for event in events) > MAX_CALL_BYTES:
            # Fields too large for the one call a change goes out in (long notes): as above.
            events = [*bus, *(self._delivery(s, change, "too_large") for s in wanting)]
        return events

    def _delivery(
        self, subscriber: Subscriber, change: Change, omitted: str | None = None
    ) -> OutgoingEvent:
        """`omitted`: why an opted-in subscriber's delivery carries no fields (None: it does)."""
        fields = subscriber.include_fields and omitted is None
        data: dict[str, Any] = dict(change.with_fields() if fields else change.summary())
        if subscriber.include_fields and omitted is not None:
            data["fields_omitted"] = omitted
        payload = {"type": change.type, "timestamp": change.updated_at, "data": data}
        return self.signed_delivery(subscriber.name, change.type, change.event_id, payload)

    def signed_now(self, events: Sequence[OutgoingEvent]) -> list[OutgoingEvent]:
        """`events` with each delivery signed again at this moment, as it is put: a page's
        changes are built before its first call, and a delivery put seconds after its
        signature would reach the end of EventBridge's retries older than a receiver's
        tolerance (Standard Webhooks' 5 minutes, which the retries span)."""
        return [
            self.signed_delivery(
                str(event.detail["subscriber"]),
                event.detail_type,
                str(event.detail["webhook"]["id"]),
                event.detail["body"],
            )
            if event.source == WEBHOOKS_SOURCE
            else event
            for event in events
        ]

    def signed_delivery(
        self, subscriber: str, event_type: str, message_id: str, payload: Mapping[str, Any]
    ) -> OutgoingEvent:
        """A delivery of `payload` to `subscriber`, signed now: a change's first delivery, or
        a dead letter's replay (the same `message_id`, so receivers drop a duplicate)."""
        body = webhook_body(payload)
        timestamp = int(self._clock())
        signature = sign(self._keys[subscriber], message_id, timestamp, body)
        detail = {
            "subscriber": subscriber,
            "webhook": {
                "id": message_id,
                "timestamp": str(timestamp),
                "signature": signature,
            },
            "body": payload,
        }
        return OutgoingEvent(WEBHOOKS_SOURCE, event_type, detail)
