"""Two submissions of one person at once, one with their email and one without (a partner's
system that had only their name and mobile): the worker knows the first by the email and the
second by the name and phone. Worked one after the other, the second finds the contact the
first made (its name and phone) and updates it; at once, the second must not look the person up
while the first is creating their contact, find nobody, and make them twice.

The whole path (intake API, SQS, two workers: one in a thread, one in the test's), moto, and
the emulator over HTTP, which holds the first worker's create until the second has had its
chance to look.
"""

from __future__ import annotations

import threading
from typing import Any

import pytest

from tests.e2e.test_erasure_meets_an_update_in_flight import run_worker
from tests.e2e.test_erasure_reaches_submissions import answered_id, world  # noqa: F401
from tests.fixtures.apigw import form_post_event
from tests.fixtures.emulator import before_each_answer
from tests.integration.erasure import stack as erasure
from tests.unit.intake_api import samples

erasure_stack = erasure.erasure_stack  # the fixture (the world's environment needs it)


def partner_post(key: str, **overrides: Any) -> dict[str, Any]:
    body = samples.json_body(**overrides)
    headers = {
        "Content-Type": "application/json",
        "X-Signature": samples.t_v1_signature(body),
        "Idempotency-Key": key,
    }
    return form_post_event("partner-json", body, headers)


def contacts(cliniko: Any) -> list[dict[str, Any]]:
    return [
        c for c in cliniko.control.contacts(include_archived=True) if c["last_name"] == samples.LAST
    ]


@pytest.mark.parametrize("lag", [0, 1.5], ids=["listed-at-once", "listed-late"])
@pytest.mark.parametrize("at_once", [False, True], ids=["one-after-the-other", "at-once"])
def test_a_person_sent_with_and_without_their_email_is_one_contact(
    world,  # noqa: F811
    erasure_stack,
    cliniko,
    emulator,
    monkeypatch,
    at_once,
    lag,
):
    # `lag`: Cliniko's lists show a new contact that long after its create (its docs do not
    # promise at once): the second, looking the person up by name and phone within it, found
    # nobody and made them twice.
    cliniko.control.set_behaviour(list_lag_seconds=lag)
    if lag:  # the tests' worker lets go at once (resources.py), as no list lags by default
        monkeypatch.setenv("CREATED_SEARCH_SETTLES_SECONDS", "3")
    path = world
    answered_id(path.post(partner_post("order-with-email")))
    if not at_once:
        path.work()
        answered_id(path.post(partner_post("order-without-email", email=None)))
        path.work()
        assert len(contacts(cliniko)) == 1
        return

    # The first worker's create waits at the emulator (before it takes effect) until the
    # second worker sends its own create, or 3 s have passed (the second then waited for the
    # first: it must be let through, within the second's 5 s wait for a claim).
    release = threading.Event()
    creates: list[bytes] = []
    lock = threading.Lock()

    def hold_the_first_create(method: str, body: bytes) -> None:
        if method != "POST" or b'"first_name"' not in body:
            return
        with lock:
            creates.append(body)
            first = len(creates) == 1
        if first:
            release.wait(3)
        else:
            release.set()

    before_each_answer(emulator, monkeypatch, hold_the_first_create)
    errors: list[BaseException] = []
    thread = run_worker(path, errors)
    try:
        for _ in range(300):  # the first worker is holding its create
            if creates:
                break
            threading.Event().wait(0.01)
        assert creates, "the first worker never sent its create"
        answered_id(path.post(partner_post("order-without-email", email=None)))
        path.work()
    finally:
        release.set()
        thread.join(60)
    assert not errors, errors
    path.work()  # anything handed back (a claim waited out) comes round again

    made = contacts(cliniko)
    assert len(made) == 1, [(c["id"], c["email"]) for c in made]
