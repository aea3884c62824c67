"""Two invocations of the change feed polling one account at once, real threads, moto and the
emulator over HTTP. Lambda hands the same `aws_request_id` to every delivery of one
asynchronous invocation (its retries, and the duplicates its eventually consistent queue may
deliver): the account's lease must still admit one of them only."""

from __future__ import annotations

import contextlib
import threading
from typing import Any

import pytest
from cliniko_automations.changefeed import handler

from tests.fixtures.emulator import before_each_answer
from tests.integration.changefeed.stack import (
    SCHEDULED_EVENT,
    context,
    create_feed_stack,
    feed_environment,
)


@pytest.fixture
def stack(aws, cliniko, tmp_path, monkeypatch):
    created = create_feed_stack()
    feed_environment(monkeypatch, created, cliniko, tmp_path)
    return created


def hold_listings_until_both_arrive(emulator: Any, monkeypatch: Any) -> None:
    """Each GET /contacts listing waits (up to 5 s) for a second one: two runs read together."""
    arrived = threading.Barrier(2, timeout=5)

    def hold(method: str, body: bytes) -> None:
        if method == "GET" and not arrived.broken:
            with contextlib.suppress(threading.BrokenBarrierError):
                arrived.wait()

    before_each_answer(emulator, monkeypatch, hold)


@pytest.mark.parametrize("same_request_id", [False, True])
def test_two_deliveries_of_one_invocation_poll_an_account_once(
    stack, cliniko, emulator, monkeypatch, same_request_id
):
    handler.lambda_handler(SCHEDULED_EVENT, context())  # the cursor starts now
    client = cliniko.client()
    created = [
        str(client.create_contact({"first_name": f"P{n}", "last_name": "X"}).id) for n in range(3)
    ]
    hold_listings_until_both_arrive(emulator, monkeypatch)
    contexts = [context(), context()]
    if same_request_id:
        contexts[1].aws_request_id = contexts[0].aws_request_id
    results: list[dict[str, Any]] = []

    def poll(ctx: Any) -> None:
        results.append(handler.lambda_handler(SCHEDULED_EVENT, ctx))

    threads = [threading.Thread(target=poll, args=(ctx,)) for ctx in contexts]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(60)

    errors = sorted(str(r["accounts"][0]["error"]) for r in results)
    events = stack.drain()
    published = [e["detail"]["contact_id"] for e in events]
    # Without the fix (same request id): both runs poll, errors == ['None', 'None'], and every
    # change goes on the bus twice (same event ids, each publication signed anew).
    assert sorted(published) == sorted(created), (errors, published)
    assert "another_run_is_polling" in errors, errors
