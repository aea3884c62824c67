"""Webhook delivery, locally: what EventBridge API destinations do in AWS, and a receiver.

moto keeps API destinations but never calls them. `ApiDestinationStandIn` reads the rules that
webhook_stack.py renders from webhooks.yaml, subscribes an SQS queue to the bus with each
rule's own event pattern, and delivers what arrives as the rule's target would: the body its
InputPath selects (serialised compactly, in order), the headers its HttpParameters JSON paths
select, and the connection's API key header, to a local URL.

`SignedWebhookReceiver` is a subscriber's endpoint written from the Standard Webhooks
specification's reference library (`standardwebhooks`), not from our signing code: it answers
204 to a delivery whose signature verifies and 401 otherwise, and keeps what it received.
"""

from __future__ import annotations

import json
import threading
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import httpx
from standardwebhooks import Webhook
from standardwebhooks.webhooks import WebhookVerificationError


def json_path(document: Any, path: str) -> Any:
    """EventBridge's dot-notation JSON paths (`$.detail.webhook.id`)."""
    if not path.startswith("$"):
        raise ValueError(f"not a JSON path: {path}")
    value = document
    for part in [p for p in path[1:].split(".") if p]:
        value = value[part]
    return value


@dataclass
class Received:
    headers: dict[str, str]
    body: bytes
    verified: bool
    payload: Any = None
    problem: str | None = None


@dataclass
class SignedWebhookReceiver:
    secret: str
    host: str = "127.0.0.1"
    port: int = 0
    received: list[Received] = field(default_factory=list)

    def start(self) -> SignedWebhookReceiver:
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
                headers = {k.lower(): v for k, v in self.headers.items()}
                try:
                    payload = Webhook(receiver.secret).verify(body, headers)
                    entry = Received(headers, body, True, payload)
                except WebhookVerificationError as error:
                    entry = Received(headers, body, False, problem=str(error))
                receiver.received.append(entry)
                self.send_response(204 if entry.verified else 401)
                self.end_headers()

            def log_message(self, *args: Any) -> None:
                pass

        self._server = ThreadingHTTPServer((self.host, self.port), Handler)
        self.port = self._server.server_address[1]
        threading.Thread(target=self._server.serve_forever, daemon=True).start()
        return self

    @property
    def url(self) -> str:
        return f"http://{self.host}:{self.port}/webhooks/cliniko"

    def stop(self) -> None:
        self._server.shutdown()
        self._server.server_close()


@dataclass
class _Route:
    rule: str
    queue_url: str
    target: dict[str, Any]
    api_key: tuple[str, str]
    url: str


class ApiDestinationStandIn:
    """Delivers the rendered webhook rules' events to local URLs (subscriber name -> URL)."""

    def __init__(
        self,
        rendered: dict[str, Any],
        events: Any,
        sqs: Any,
        bus: str,
        urls: dict[str, str],
        *,
        wait_seconds: int = 1,
    ) -> None:
        self._events = events
        self._sqs = sqs
        self._bus = bus
        self._wait = wait_seconds
        self._stop = threading.Event()
        self._threads: list[threading.Thread] = []
        self._http = httpx.Client(timeout=5)  # one for every delivery: a client each costs 70 ms
        self.routes: list[_Route] = []
        self.deliveries: list[tuple[str, int]] = []  # (rule, status)
        resources = rendered["Resources"]
        for logical_id, resource in resources.items():
            if resource["Type"] != "AWS::Events::Rule":
                continue
            props = resource["Properties"]
            subscriber = props["EventPattern"]["detail"]["subscriber"][0]
            (target,) = props["Targets"]
            destination = resources[target["Arn"]["Fn::GetAtt"][0]]["Properties"]
            connection = resources[destination["ConnectionArn"]["Fn::GetAtt"][0]]["Properties"]
            key = connection["AuthParameters"]["ApiKeyAuthParameters"]
            name = f"local-{logical_id}"
            queue_url = sqs.create_queue(QueueName=name)["QueueUrl"]
            arn = sqs.get_queue_attributes(QueueUrl=queue_url, AttributeNames=["QueueArn"])[
                "Attributes"
            ]["QueueArn"]
            events.put_rule(
                Name=name, EventBusName=bus, EventPattern=json.dumps(props["EventPattern"])
            )
            events.put_targets(Rule=name, EventBusName=bus, Targets=[{"Id": "queue", "Arn": arn}])
            self.routes.append(
                _Route(
                    name,
                    queue_url,
                    target,
                    (key["ApiKeyName"], str(key["ApiKeyValue"])),
                    urls.get(subscriber, destination["InvocationEndpoint"]),
                )
            )

    def start(self) -> ApiDestinationStandIn:
        for route in self.routes:
            thread = threading.Thread(target=self._loop, args=(route,), daemon=True)
            thread.start()
            self._threads.append(thread)
        return self

    def stop(self) -> None:
        self._stop.set()
        for thread in self._threads:
            thread.join(timeout=5)
        self._http.close()

    def deliver_pending(self) -> int:
        """Deliver what is queued now (tests call this instead of starting threads)."""
        return sum(self._deliver(route, wait=0) for route in self.routes)

    def _loop(self, route: _Route) -> None:
        while not self._stop.is_set():
            self._deliver(route, wait=self._wait)

    def _deliver(self, route: _Route, *, wait: int) -> int:
        delivered = 0
        while True:
            answer = self._sqs.receive_message(
                QueueUrl=route.queue_url, MaxNumberOfMessages=10, WaitTimeSeconds=wait
            )
            messages = answer.get("Messages", [])
            if not messages:
                return delivered
            for message in messages:
                event = json.loads(message["Body"])
                body = json.dumps(
                    json_path(event, route.target["InputPath"]),
                    separators=(",", ":"),
                    ensure_ascii=False,
                )
                headers = {
                    name: str(json_path(event, path))
                    for name, path in route.target["HttpParameters"]["HeaderParameters"].items()
                }
                headers[route.api_key[0]] = route.api_key[1]
                headers["content-type"] = "application/json; charset=utf-8"
                answer_status = self._http.post(
                    route.url, content=body.encode(), headers=headers
                ).status_code
                self.deliveries.append((route.rule, answer_status))
                self._sqs.delete_message(
                    QueueUrl=route.queue_url, ReceiptHandle=message["ReceiptHandle"]
                )
                delivered += 1
            if wait:
                return delivered
