"""An email Cliniko's documented rule refuses is refused by the intake (422), not accepted
(202) and then dead-lettered by Cliniko's 422, where no replay can mend it.

The rule: Cliniko's own API documentation repository, redguava/cliniko-api, branch
`email-regex` (pull request #314, "This will help third parties validate email addresses in
patients and contacts prior to sending the request to Cliniko"), sections/contacts.md, under
both Create Contact and Update Contact:

    `email`, if supplied, is validated using the following RegEx in Ruby:
    /\\A[A-Z0-9!#$%&'\\*+-\\/=?^_`{\\|}~]+@[A-Z0-9.-]+\\.[A-Z]{2,63}\\z/i

(In Ruby, `+-\\/` inside the class is the range `+` to `/`: `+ , - . /`.) The emulator
follows it too (its own check, character by character).
"""

from __future__ import annotations

import json
import re

import pytest

from tests.fixtures.apigw import form_post_event
from tests.integration.intake_worker.e2e_world import IntakePath, build_intake_path
from tests.unit.intake_api import samples

CLINIKO_EMAIL = re.compile(r"[A-Za-z0-9!#$%&'*+,\-./=?^_`{|}~]+@[A-Za-z0-9.-]+\.[A-Za-z]{2,63}")

REFUSED_BY_CLINIKO = {
    "idn_domain": "jane@exämple.de",
    "unicode_local_part": "jäne@example.de",
    "numeric_tld": "jane@example.123",
    "one_letter_tld": "jane@example.c",
    "underscore_in_domain": "jane@ex_ample.com",
    "quoted_local_part": '"jane"@example.com',
}


@pytest.fixture
def path(aws, cliniko, monkeypatch, tmp_path) -> IntakePath:
    return build_intake_path(cliniko, monkeypatch, tmp_path)


@pytest.mark.parametrize("email", list(REFUSED_BY_CLINIKO.values()), ids=list(REFUSED_BY_CLINIKO))
def test_an_email_cliniko_refuses_is_a_422_to_its_sender(path: IntakePath, cliniko, email) -> None:
    assert not CLINIKO_EMAIL.fullmatch(email)  # Cliniko's documented rule refuses it
    body = samples.json_body(email=email)
    headers = {"Content-Type": "application/json", "X-Signature": samples.t_v1_signature(body)}
    answer = path.post(form_post_event("partner-json", body, headers))

    if answer["statusCode"] == 202:  # what happens today: accepted, then lost
        path.work()
        letters = path.stack.drain(path.stack.dead_letter_queue_url)
        reasons = [m["MessageAttributes"]["failure_reason"]["StringValue"] for m in letters]
        writes = [
            (e["method"], e["status"])
            for e in cliniko.control.requests()
            if e["method"] in ("POST", "PATCH", "PUT")
        ]
        pytest.fail(
            f"answered 202; Cliniko answered {writes}; dead letters: {reasons}; "
            f"contacts made: {len(cliniko.control.contacts())}"
        )
    assert answer["statusCode"] == 422, answer
    assert json.loads(answer["body"])["errors"] == {"email": "is invalid"}
    assert path.stack.counts(path.stack.queue_url) == (0, 0)


@pytest.mark.parametrize(
    "email",
    ["a+b@example.com", "o'brien@example.co.uk", "a,b@example.com", "a.b-c@sub.ex-ample.io"],
)
def test_an_email_cliniko_takes_is_still_taken(path: IntakePath, cliniko, email) -> None:
    assert CLINIKO_EMAIL.fullmatch(email)
    body = samples.json_body(email=email)
    headers = {"Content-Type": "application/json", "X-Signature": samples.t_v1_signature(body)}
    assert path.post(form_post_event("partner-json", body, headers))["statusCode"] == 202
    assert path.work() == 1
    [contact] = cliniko.control.contacts()
    assert contact["email"] == email
