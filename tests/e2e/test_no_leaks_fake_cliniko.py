"""A Cliniko answering off the spec with a distinctive name, notes and address
(leak_search.MARKERS) where names, numbers, lists and date-times belong, or a listing that is
not JSON, has a total in words or a next page elsewhere: the change feed at DEBUG writes none
of them to a log line, an event, a table, queue or secret, or its answer (or what an unhandled
error would carry to Lambda's own log).
"""

from __future__ import annotations

import json
import socket
from typing import Any

from cliniko_automations.changefeed import handler

from tests.e2e.leak_search import leaks, stored_leaks
from tests.e2e.test_no_leaks_at_debug import DEBUG_ENV, captured_lines, everything_at_debug
from tests.integration.changefeed.stack import (
    SCHEDULED_EVENT,
    context,
    create_feed_stack,
    feed_environment,
)
from tests.integration.changefeed.test_cliniko_source import listed
from tests.integration.common.test_http_transport import ScriptedServer, answer

CONTACT = {
    "id": 1001,
    "first_name": "Zephyrine",
    "last_name": "Quillfeather",
    "email": "zq@example.org",
    "notes": "Qx7marker",
    "address_1": "Brindlewood",
    "created_at": "2026-01-05T09:00:00Z",
    "updated_at": "2026-01-05T09:00:00Z",
    "archived_at": None,
    "phone_numbers": [],
    "links": {"self": "https://api.au1.cliniko.com/v1/contacts/1001"},
}
# What is wrong with the contact listed (each one updated a minute after the last).
OFF_THE_SPEC: dict[str, dict[str, Any]] = {
    "as-documented": {},
    "name-an-object": {"first_name": {"x": "Zephyrine Quillfeather"}},
    "phones-a-string": {"phone_numbers": "Qx7marker Zephyrine"},
    "phone-a-number-of-a-marked-type": {
        "phone_numbers": [{"number": 5, "phone_type": "Qx7marker"}]
    },
    "birth-date-words": {"date_of_birth": "Qx7marker Zephyrine"},
    "type-code-unknown": {"type_code": "Qx7marker"},
    "doctor-type-unknown": {"doctor_type": "Qx7marker"},
    "created-at-words": {"created_at": "Qx7marker Zephyrine"},
    "updated-at-without-zone": {"updated_at": "2026-01-05T09:00:00"},
    "id-a-name": {"id": "Zephyrine Quillfeather"},
    "country-unknown": {"country": "Qx7marker"},
    "country-a-number": {"country": 5, "country_code": "Qx7marker"},
    "title-a-list": {"title": ["Zephyrine"]},
    "archived-at-a-name": {"archived_at": "Zephyrine"},
    "links-a-name": {"links": "Zephyrine"},
}
# Listings off the spec as a whole.
LISTINGS = {
    "not-json": b'{"contacts": [{"first_name": "Zephyrine Quillfeather"',
    "total-in-words": json.dumps(
        {"contacts": [], "total_entries": "Zephyrine", "links": {}}
    ).encode(),
    "next-page-elsewhere": json.dumps(
        {"contacts": [CONTACT], "total_entries": 1, "links": {"next": "https://x/Zephyrine?page=2"}}
    ).encode(),
}


def listings() -> dict[str, bytes]:
    """label -> the listing Cliniko answers with, each case in turn."""
    bodies = {}
    for minute, (label, wrong) in enumerate(OFF_THE_SPEC.items()):
        bodies[label] = listed(
            {**CONTACT, "updated_at": f"2026-01-05T09:{minute:02d}:00Z", **wrong}
        )
    return {**bodies, **LISTINGS}


def test_no_marker_cliniko_answers_off_the_spec_reaches_a_log_event_store_or_answer(
    aws, cliniko, tmp_path, monkeypatch, capfd
):
    for name, value in DEBUG_ENV.items():
        monkeypatch.setenv(name, value)
    stack = create_feed_stack()
    feed_environment(monkeypatch, stack, cliniko, tmp_path)
    listing = {"now": b""}

    def script(connection: socket.socket, request: bytes) -> None:
        answer(listing["now"], "Content-Type: application/json")(connection, request)

    server = ScriptedServer(script)
    monkeypatch.setenv("CLINIKO_BASE_URL", f"http://127.0.0.1:{server.port}/{{shard}}/v1")
    monkeypatch.setenv("BACKFILL_FROM", "2026-01-05T08:59:00Z")
    capfd.readouterr()

    outcomes: dict[str, Any] = {}
    try:
        with everything_at_debug() as (captured, stdout):
            for label, body in listings().items():
                listing["now"] = body
                try:
                    outcomes[label] = handler.lambda_handler(SCHEDULED_EVENT, context())
                except Exception as error:  # Lambda's runtime logs str(error) and the stack
                    outcomes[label] = f"unhandled {type(error).__name__}: {error}"
            printed = capfd.readouterr()
    finally:
        server.stop()

    # The paths really ran: the contact as documented was published.
    assert outcomes["as-documented"]["accounts"][0]["events"] == 1, outcomes["as-documented"]
    hits = [
        *leaks("logged", captured_lines(captured, stdout, printed)),
        *leaks("published", stack.drain()),
        *(hit for label, out in outcomes.items() for hit in leaks(f"answered {label}", [out])),
        *stored_leaks(),
    ]
    assert not hits, "\n".join(hits[:5])
