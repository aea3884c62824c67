"""An empty --email/--contact-id is refused by the CLI as the API refuses it (not dropped, which
loses the cross-check of the other), and an email holding U+FFFD (broken bytes, replaced) is
refused rather than searched for and closed as "no record found"."""

from __future__ import annotations

import pytest

from tests.e2e.test_erasure_api import erasure, post
from tests.e2e.test_erasure_cli import load_cli
from tests.integration.erasure import stack
from tests.integration.erasure.stack import PERSONAL

erasure_stack = stack.erasure_stack  # the fixture


@pytest.mark.parametrize("empty", ["email", "contact-id"])
def test_an_empty_identifier_is_refused_by_the_cli_as_by_the_api(erasure_stack, capsys, empty):
    other = erasure_stack.seed(email="someone.else@example.com", first_name="Hortensia")
    given = {"contact-id": other, "email": "someone.else@example.com", empty: ""}
    before = len(erasure_stack.log())

    code = load_cli().main(
        [
            "request",
            "--contact-id",
            given["contact-id"],
            "--email",
            given["email"],
            "--reason",
            "GDPR art. 17",
            "--request-id",
            f"cli-empty-{empty}",
        ]
    )
    out = capsys.readouterr().out
    status, body = post(
        erasure(
            request_id=f"api-empty-{empty}", contact_id=given["contact-id"], email=given["email"]
        )
    )

    assert status == 422, body
    assert code == 2, out
    assert "Refused (HTTP 422)" in out
    assert erasure_stack.log()[before:] == []
    assert erasure_stack.contact(other)["first_name"] == "Hortensia"


def test_an_email_with_broken_bytes_is_refused_not_closed_as_no_record_found(erasure_stack, capsys):
    erasure_stack.seed()
    email = PERSONAL["email"]
    # A lone surrogate in the JSON body (the loader repairs it to U+FFFD), and U+FFFD itself.
    status, body = post(
        '{"request_id": "broken-1", "reason": "GDPR art. 17", "email": "\\ud800' + email + '"}'
    )
    assert status == 422 and "email" in body["errors"], body
    status, body = post(erasure(request_id="broken-2", email="\ufffd" + email))
    assert status == 422 and "email" in body["errors"], body
    code = load_cli().main(
        [
            "request",
            "--email",
            "\ufffd" + email,
            "--reason",
            "GDPR art. 17",
            "--request-id",
            "broken-3",
        ]
    )
    assert code == 2, capsys.readouterr().out
    assert erasure_stack.audit_items() == []


@pytest.mark.parametrize("route", ["status", "extension"])
def test_a_path_that_is_no_request_id_is_not_echoed(erasure_stack, route):
    from tests.e2e.test_erasure_api import extend, get

    typed = "grizelda.thistlewaite+ortho@example.com"
    status, body = get(typed) if route == "status" else extend(typed, '{"reason": "ticket 9"}')
    assert status == 404, body
    assert "grizelda" not in body["message"].lower(), body
