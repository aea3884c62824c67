"""An erasure that completes while the intake worker's update of the same contact is on its
way to Cliniko (sent after the worker's last tombstone check: waiting on the shared budget or
on Cliniko's retries). The update must not write the person back into the record the erasure
reported scrubbed: the erasure waits out the worker's claim on the contact's identity before
it scrubs, or answers `submission_in_progress` and is sent again.

Real threads: the worker handler in one, scripts/erasure.py (local mode) in the test's; moto;
the emulator over HTTP, whose answer to the worker's PATCH is held until the erasure returns.
"""

from __future__ import annotations

import json
import threading
from typing import Any

import pytest

from tests.e2e.test_erasure_cli import load_cli
from tests.e2e.test_erasure_reaches_submissions import answered_id, world  # noqa: F401
from tests.fixtures.apigw import form_post_event
from tests.fixtures.emulator import before_each_answer
from tests.integration.erasure import stack as erasure
from tests.integration.intake_worker.e2e_world import delivery
from tests.unit.intake_api import samples

erasure_stack = erasure.erasure_stack  # the fixture


def hold_the_workers_update(
    emulator: Any, monkeypatch: Any
) -> tuple[threading.Event, threading.Event]:
    """The first PATCH/PUT that is not the erasure's scrub waits at the emulator (before it
    takes effect) until `release` is set; `arrived` says it is waiting."""
    arrived, release = threading.Event(), threading.Event()
    held: list[bytes] = []

    def hold(method: str, body: bytes) -> None:
        scrub = json.loads(body or b"{}").get("first_name") == "Erased"
        if method in ("PATCH", "PUT") and not held and not scrub:
            held.append(body)
            arrived.set()
            release.wait(60)

    before_each_answer(emulator, monkeypatch, hold)
    return arrived, release


def run_worker(path: Any, errors: list[BaseException]) -> threading.Thread:
    def work() -> None:
        try:
            path.work(rounds=1)
        except BaseException as exc:
            errors.append(exc)

    thread = threading.Thread(target=work, name="intake-worker")
    thread.start()
    return thread


BLANK_AT_FIRST = (
    *("title", "preferred_name", "company_name", "occupation", "provider_number"),
    *("address_1", "address_2", "address_3", "city", "state", "post_code", "notes"),
)
PERSONAL_FROM_FORM = ("phone_numbers", "company_name", "provider_number", "occupation")


def json_without_email() -> dict[str, Any]:
    """The partner's signed JSON post of the person with no email: the worker knows them by
    name and phone (its claim is the name's, not the email's)."""
    body = samples.json_body(email=None, occupation="Physiotherapist")
    headers = {
        "Content-Type": "application/json",
        "X-Signature": samples.t_v1_signature(body),
        "Idempotency-Key": "partner-order-no-email-1",
    }
    return form_post_event("partner-json", body, headers)


CASES = [
    # (erasure by, the worker's submission, the emulator's archived_get)
    ("contact_id", "typeform", "visible"),
    ("contact_id", "typeform", "hidden"),
    ("email", "typeform", "visible"),
    ("email", "json-no-email", "visible"),
    ("email", "json-no-email", "hidden"),
]


@pytest.mark.parametrize(("by", "submission", "archived_get"), CASES)
def test_an_update_in_flight_does_not_write_the_person_back_after_their_erasure(
    world,  # noqa: F811
    erasure_stack,
    cliniko,
    emulator,
    capsys,
    monkeypatch,
    by,
    submission,
    archived_get,
):
    path = world
    cliniko.control.set_behaviour(archived_get=archived_get)
    # The person's contact: staff typed name and email only. Their referral (Typeform,
    # fill_blanks) brings a phone, a practice and a provider number: an update.
    contact_id = erasure_stack.seed(
        first_name=samples.FIRST,
        last_name=samples.LAST,
        email=samples.EMAIL,
        **dict.fromkeys(BLANK_AT_FIRST),
        phone_numbers=[{"number": samples.PHONE, "phone_type": "Mobile"}]
        if submission == "json-no-email"
        else [],
    )
    event = delivery("typeform") if submission == "typeform" else json_without_email()
    answered_id(path.post(event))

    arrived, release = hold_the_workers_update(emulator, monkeypatch)
    errors: list[BaseException] = []
    worker = run_worker(path, errors)
    try:
        assert arrived.wait(30), "the worker never sent its update"
        target = ["--contact-id", contact_id] if by == "contact_id" else ["--email", samples.EMAIL]
        request_id = f"race-{by}-{submission}-{archived_get}"
        argv = [
            "request",
            *target,
            "--reason",
            "GDPR art. 17, ticket 77",
            "--request-id",
            request_id,
        ]
        capsys.readouterr()
        code = load_cli().main(argv)
        out = capsys.readouterr().out
    finally:
        release.set()
        worker.join(60)
    assert not errors, errors
    if code != 0:
        # Not done (a worker held the person): sent again with its id once the worker is gone.
        assert "submission_in_progress" in out, out
        code = load_cli().main(argv)
        out = capsys.readouterr().out
    assert code == 0 and f"Request {request_id}: completed (erased)" in out, out
    # The erasure reported the contact scrubbed, archived and verified: nothing personal may
    # be in it afterwards.
    stored = erasure_stack.contact(contact_id)
    assert stored["archived_at"] and stored["first_name"] == "Erased"
    leaked = sorted(k for k in PERSONAL_FROM_FORM if stored.get(k))
    assert not leaked, f"written back after the erasure reported done: {leaked}"
