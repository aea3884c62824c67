"""Two erasure requests (different request ids: two operators) for the same person at once.

Real threads: both through the API handler; moto; the emulator over HTTP. Both look the
contact up while it is still active; the first scrub's PATCH is held until the second
request's PATCH arrives, and the second's is then held until the first request has answered
(scrubbed, archived and verified). The person ends fully erased either way: neither request
should report `failed`.
"""

from __future__ import annotations

import json
import threading
from typing import Any

import pytest

from tests.e2e.test_erasure_api import EMAIL, erasure, post
from tests.fixtures.emulator import before_each_answer
from tests.integration.erasure import stack
from tests.integration.erasure.stack import assert_scrubbed_and_archived

erasure_stack = stack.erasure_stack  # the fixture


def interleave(emulator: Any, monkeypatch: Any, first_done: threading.Event) -> None:
    """The first scrub waits until the second has arrived (both requests have looked the
    contact up), and the second until the first request has answered."""
    patches: list[str] = []
    lock = threading.Lock()
    second_arrived = threading.Event()

    def hold(method: str, body: bytes) -> None:
        if method in ("PATCH", "PUT"):
            with lock:
                number = len(patches)
                patches.append(method)
            if number == 0:
                second_arrived.wait(30)
            elif number == 1:
                second_arrived.set()
                first_done.wait(30)

    before_each_answer(emulator, monkeypatch, hold)


@pytest.mark.parametrize("archived_get", ["visible", "hidden"])
@pytest.mark.parametrize("by", ["email", "contact_id"])
def test_two_erasures_of_one_person_at_once_both_complete(
    erasure_stack, cliniko, emulator, monkeypatch, archived_get, by
):
    cliniko.control.set_behaviour(archived_get=archived_get)
    contact_id = erasure_stack.seed()
    target = {"email": EMAIL} if by == "email" else {"contact_id": contact_id}
    answers: dict[str, tuple[int, dict[str, Any]]] = {}
    order: list[str] = []
    first_done = threading.Event()
    interleave(emulator, monkeypatch, first_done)

    def erase(request_id: str) -> None:
        try:
            answers[request_id] = post(erasure(request_id=request_id, **target))
        finally:
            order.append(request_id)
            first_done.set()

    threads = [threading.Thread(target=erase, args=(rid,)) for rid in ("op-a", "op-b")]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(90)

    assert_scrubbed_and_archived(erasure_stack, contact_id)
    later = order[1]
    status, body = answers[later]
    assert status == 200, json.dumps(body, indent=1)
    assert body["status"] == "completed", json.dumps(body, indent=1)
    assert body["result"] == "erased"


@pytest.mark.parametrize("archived_get", ["visible", "hidden"])
def test_an_erasure_finishes_a_contact_the_cleanup_archived_after_its_lookup(
    erasure_stack, cliniko, emulator, monkeypatch, archived_get
):
    """The scheduled cleanup archives the contact between the erasure's lookup and its scrub."""
    cliniko.control.set_behaviour(archived_get=archived_get)
    contact_id = erasure_stack.seed()
    held: list[str] = []

    def archive_first(method: str, body: bytes) -> None:
        if method in ("PATCH", "PUT") and not held:
            held.append(method)
            cliniko.client().archive_contact(contact_id)  # the cleanup's archive, first

    before_each_answer(emulator, monkeypatch, archive_first)
    status, body = post(erasure(request_id="after-cleanup", email=EMAIL))

    assert status == 200, json.dumps(body, indent=1)
    assert body["result"] == "erased"
    assert_scrubbed_and_archived(erasure_stack, contact_id)
