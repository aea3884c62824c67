"""The change feed against a strict stand-in for EventBridge on 127.0.0.1 (moto enforces neither
the 256 KB limit nor per-entry failures): at most 10 entries and 256 KB of entries a call (a
ValidationException otherwise), and entries refused as a script says (FailedEntryCount)."""

from __future__ import annotations

import json
import socket
import uuid

import boto3
import pytest
from cliniko_automations.common import aws as aws_clients

from tests.integration.changefeed.stack import (
    create_feed_stack,
    feed_environment,
    run_feed,
    subscribed,
)
from tests.integration.changefeed.test_partly_published import SUBSCRIBERS
from tests.integration.common.test_http_transport import ScriptedServer

LIMIT = 256 * 1024


def entry_size(entry):
    return sum(len(entry.get(k, "").encode()) for k in ("Source", "DetailType", "Detail"))


class StrictEventBridge:
    def __init__(self):
        self.accepted: list[dict] = []
        self.calls: list[int] = []
        self.refusals: list[str] = []
        self.refuse = lambda entry, attempt: None  # an ErrorCode, or None to take it
        self.attempts: dict[str, int] = {}
        self.server = ScriptedServer(self.answer)

    def answer(self, connection: socket.socket, request: bytes) -> None:
        _, _, body = request.partition(b"\r\n\r\n")
        entries = json.loads(body)["Entries"]
        size = sum(entry_size(e) for e in entries)
        self.calls.append(size)
        if len(entries) > 10 or size > LIMIT:
            self.refusals.append(f"{len(entries)} entries, {size} bytes")
            self.reply(
                connection,
                400,
                {
                    "__type": "ValidationException",
                    "message": "Total size of the entries in the request is over the limit.",
                },
            )
            return
        out = []
        for entry in entries:
            detail = json.loads(entry["Detail"])
            key = detail.get("webhook", {}).get("id", detail.get("event_id")) + entry["Source"]
            attempt = self.attempts[key] = self.attempts.get(key, 0) + 1
            code = self.refuse(entry, attempt)
            if code:
                out.append({"ErrorCode": code, "ErrorMessage": "-"})
            else:
                self.accepted.append(entry)
                out.append({"EventId": str(uuid.uuid4())})
        failed = sum(1 for e in out if "ErrorCode" in e)
        self.reply(connection, 200, {"FailedEntryCount": failed, "Entries": out})

    @staticmethod
    def reply(connection, status, payload):
        data = json.dumps(payload).encode()
        head = (
            f"HTTP/1.1 {status} X\r\nContent-Type: application/x-amz-json-1.1\r\n"
            f"x-amzn-RequestId: {uuid.uuid4()}\r\nContent-Length: {len(data)}\r\n\r\n"
        )
        connection.sendall(head.encode() + data)

    def published(self):
        return [json.loads(e["Detail"]) for e in self.accepted]


@pytest.fixture
def bridge(aws, cliniko, tmp_path, monkeypatch):
    stack = create_feed_stack()
    subscribed(tmp_path, SUBSCRIBERS, "crm-sync")
    feed_environment(monkeypatch, stack, cliniko, tmp_path)
    strict = StrictEventBridge()
    events = boto3.client("events", endpoint_url=f"http://127.0.0.1:{strict.server.port}")
    real = aws_clients.client
    monkeypatch.setattr(
        aws_clients,
        "client",
        lambda service, config=None: events if service == "events" else real(service, config),
    )
    yield strict
    strict.server.stop()


def test_a_contact_whose_fields_pass_256_kb_is_published_without_them(bridge, cliniko):
    run_feed()
    client = cliniko.client()
    huge = client.create_contact(
        {
            "first_name": "Huge",
            "notes": "é" * 300_000,
            "title": "t" * 50_000,
            "preferred_name": "p" * 50_000,
        }
    )
    later = client.create_contact({"first_name": "Later"})
    result = run_feed()
    assert result["complete"], result
    assert not bridge.refusals
    bodies = {
        (d.get("contact_id") or d["body"]["data"]["contact_id"]): d
        for d in bridge.published()
        if "body" in d
    }
    assert bodies[huge.id]["body"]["data"]["fields_omitted"] == "too_large"
    assert bodies[later.id]["body"]["data"]["contact"]["first_name"] == "Later"
    # Just under: a contact whose delivery is some 240 kB (non-ASCII, escaped as \\uXXXX).
    client.create_contact({"first_name": "Near", "notes": "é" * 40_000})
    result = run_feed()
    assert result["complete"] and not bridge.refusals, (result, bridge.refusals)
    assert max(bridge.calls) <= LIMIT


def test_ten_changes_together_over_256_kb_go_in_several_calls(bridge, cliniko):
    run_feed()
    client = cliniko.client()
    made = [
        client.create_contact({"first_name": f"C{n}", "notes": "n" * 60_000}) for n in range(10)
    ]
    result = run_feed()
    assert result["complete"] and result["changes"] == 10, result
    assert not bridge.refusals and len(bridge.calls) >= 3
    assert {d["body"]["data"]["contact_id"] for d in bridge.published() if "body" in d} == {
        c.id for c in made
    }


def test_entries_refused_are_retried_and_the_cursor_waits_for_them(bridge, cliniko):
    run_feed()
    client = cliniko.client()
    made = [client.create_contact({"first_name": f"C{n}"}) for n in range(6)]
    refused_id = made[3].id

    # Two attempts throttled, then taken: inside the same run.
    bridge.refuse = lambda e, attempt: "ThrottlingException" if attempt <= 2 else None
    result = run_feed()
    assert result["complete"] and result["changes"] == 6, result
    ids = [(e["Source"], e["Detail"]) for e in bridge.accepted]
    assert len(ids) == len(set(ids)) == 12
    bridge.accepted.clear()

    # One contact's delivery refused on every attempt: the run stops, its cursor waits.
    for c in made:
        client.update_contact(c.id, {"city": "Uppsala"})

    def refuse(entry, attempt):
        detail = json.loads(entry["Detail"])
        if "body" in detail and detail["body"]["data"]["contact_id"] == refused_id:
            return "InternalFailure"
        return None

    bridge.refuse = refuse
    first = run_feed()
    assert not first["complete"] and first["error"] == "publish_failed", first
    bridge.refuse = lambda e, attempt: None
    second = run_feed()
    assert second["complete"], second
    deliveries = [d["body"]["data"]["contact_id"] for d in bridge.published() if "body" in d]
    assert sorted(deliveries) == sorted(c.id for c in made), deliveries
    assert len([d for d in bridge.published() if "body" not in d]) == 6
    later = client.create_contact({"first_name": "Later"})
    assert run_feed()["complete"]
    assert later.id in [d["body"]["data"]["contact_id"] for d in bridge.published() if "body" in d]


def test_state_items_stay_small_for_huge_contacts(bridge, cliniko):
    run_feed()
    client = cliniko.client()
    client.create_contact(
        {
            "first_name": "Huge",
            "notes": "n" * 2_000_000,
            "phone_numbers": [
                {"number": f"+6140000{n:04d}", "phone_type": "Mobile"} for n in range(500)
            ],
        }
    )
    assert run_feed()["complete"]
    items = boto3.client("dynamodb").scan(TableName="changefeed-test")["Items"]
    assert max(len(json.dumps(i)) for i in items) < 10_000
