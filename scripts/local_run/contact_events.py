"""The local run's view of the contacts event bus: what a subscriber would see.

- A tap: an SQS queue subscribed to each event bus the template creates (a local-only rule
  matching every contact event), read in the background and kept for `python -m local_run
  events` (ids, types and field names: the bus carries no values).
- Webhooks: a local subscriber in a local webhooks.yaml, its rule rendered by webhook_stack.py,
  delivered by the API-destination stand-in to a receiver that verifies each signature with
  the Standard Webhooks reference library.
"""

from __future__ import annotations

import base64
import hashlib
import json
import threading
from collections import deque
from pathlib import Path
from typing import Any

from .webhooks import ApiDestinationStandIn, SignedWebhookReceiver

LOCAL_SUBSCRIBER = "local-receiver"
# The secret's name (its value is made up at start).
LOCAL_SUBSCRIBER_SECRET = "cliniko-automations/webhooks/local-receiver/signing-secret"  # noqa: S105
LOCAL_WEBHOOKS = f"""\
# Written by the local run: one subscriber, delivered to the local signed-webhook receiver.
subscribers:
  - name: {LOCAL_SUBSCRIBER}
    url: https://webhooks.local.example/cliniko
    events: [contact.created, contact.updated, contact.archived, contact.unarchived]
    secret: {LOCAL_SUBSCRIBER_SECRET}
"""
KEPT = 200


def local_webhook_secret() -> str:
    """A made-up, stable Standard Webhooks secret ("whsec_" + base64 of 32 bytes)."""
    key = hashlib.sha256(f"local-run:{LOCAL_SUBSCRIBER_SECRET}".encode()).digest()
    return "whsec_" + base64.b64encode(key).decode()


def write_local_webhooks(target: Path) -> Path:
    target.parent.mkdir(parents=True, exist_ok=True)
    target.write_text(LOCAL_WEBHOOKS)
    return target


class ContactEvents:
    def __init__(self, events: Any, sqs: Any, buses: list[str], webhooks_file: Path) -> None:
        from cliniko_automations.changefeed.events import CONTACTS_SOURCE
        from cliniko_automations.changefeed.subscribers import load_subscribers
        from cliniko_automations.changefeed.webhook_stack import render

        self._sqs = sqs
        self._stop = threading.Event()
        self._threads: list[threading.Thread] = []
        self.bus_events: deque[dict[str, Any]] = deque(maxlen=KEPT)
        self._taps: list[str] = []
        for bus in buses:
            name = f"local-tap-{bus}"[:80]
            url = sqs.create_queue(QueueName=name)["QueueUrl"]
            arn = sqs.get_queue_attributes(QueueUrl=url, AttributeNames=["QueueArn"])["Attributes"][
                "QueueArn"
            ]
            events.put_rule(
                Name=name, EventBusName=bus, EventPattern=json.dumps({"source": [CONTACTS_SOURCE]})
            )
            events.put_targets(Rule=name, EventBusName=bus, Targets=[{"Id": "tap", "Arn": arn}])
            self._taps.append(url)
        self.receiver = SignedWebhookReceiver(local_webhook_secret()).start()
        self.stand_in = ApiDestinationStandIn(
            render(load_subscribers(webhooks_file)),
            events,
            sqs,
            buses[0],
            {LOCAL_SUBSCRIBER: self.receiver.url},
        )

    def start(self) -> ContactEvents:
        self.stand_in.start()
        for url in self._taps:
            thread = threading.Thread(target=self._read, args=(url,), daemon=True)
            thread.start()
            self._threads.append(thread)
        return self

    def stop(self) -> None:
        self._stop.set()
        self.stand_in.stop()
        for thread in self._threads:
            thread.join(timeout=5)
        self.receiver.stop()

    def _read(self, url: str) -> None:
        while not self._stop.is_set():
            answer = self._sqs.receive_message(
                QueueUrl=url, MaxNumberOfMessages=10, WaitTimeSeconds=1
            )
            for message in answer.get("Messages", []):
                event = json.loads(message["Body"])
                self.bus_events.append({"detail-type": event["detail-type"], **event["detail"]})
                self._sqs.delete_message(QueueUrl=url, ReceiptHandle=message["ReceiptHandle"])

    def summary(self) -> dict[str, Any]:
        return {
            "bus": list(self.bus_events),
            "webhooks": [
                {
                    "webhook-id": received.headers.get("webhook-id"),
                    "verified": received.verified,
                    "type": (received.payload or {}).get("type"),
                    "erased": ((received.payload or {}).get("data") or {}).get("erased"),
                    "problem": received.problem,
                }
                for received in self.receiver.received[-KEPT:]
            ],
        }
