"""Hostile and careless deliveries to the intake API, at DEBUG (with the event logged): a name,
notes, an address and a company (leak_search.MARKERS) reach no log line, metric, queue message,
table or secret but the submission store, whichever way they come.

They come in every part of a delivery: well-formed; as a field's name; as an email; with
control characters; in Latin-1 or broken UTF-8; in the Content-Type, the Origin, the success
URL, the Idempotency-Key, the signature header and the source's name; too long; twice; as JSON
of the wrong types, not JSON, with a key twice or unknown; in a body that is not base64; in a
Typeform answer that fails validation. Then the worker handles what was accepted.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import Any

from tests.e2e.leak_search import leaks, stored_leaks
from tests.e2e.test_no_leaks_at_debug import DEBUG_ENV, captured_lines, everything_at_debug
from tests.fixtures.apigw import form_post_event
from tests.integration.intake_worker.e2e_world import build_intake_path
from tests.unit.intake_api import samples

HTML_SOURCE = "website-contact-html"
FORM = (
    "name=Zephyrine+Quillfeather&email=zq%40example.org&organisation=Quillcorp"
    "&message=notes+Qx7marker+Brindlewood"
)
MARKED_JSON = {
    "first_name": "Zephyrine",
    "last_name": "Quillfeather",
    "notes": "Qx7marker",
    "address_1": "12 Brindlewood Lane",
    "company_name": "Quillcorp",
    "email": "zq6@example.org",
}
TYPEFORM = samples.typeform_body(name="Zephyrine Quillfeather", email="Qx7marker")


def html(body: bytes | str, headers: Mapping[str, str] | None = None) -> dict[str, Any]:
    raw = body.encode() if isinstance(body, str) else body
    sent = {"Content-Type": "application/x-www-form-urlencoded", "Origin": samples.ORIGIN}
    return form_post_event(HTML_SOURCE, raw, {**sent, **(headers or {})}, base64=True)


def signed_json(
    data: Any = None, *, raw: bytes | None = None, headers: Mapping[str, str] | None = None
) -> dict[str, Any]:
    body = raw if raw is not None else json.dumps(data).encode()
    sent = {"Content-Type": "application/json", "X-Signature": samples.t_v1_signature(body)}
    return form_post_event("partner-json", body, {**sent, **(headers or {})})


def not_base64() -> dict[str, Any]:
    event = html(FORM)
    event["body"] = "Zephyrine Quillfeather Qx7marker!!"
    return event


def deliveries() -> dict[str, tuple[int, dict[str, Any]]]:
    """label -> (what the API answers, the delivery), signed now."""
    return {
        "html": (303, html(FORM)),
        "html-field-name": (303, html(FORM + "&Zephyrine+Quillfeather+Qx7marker=1")),
        "html-name-as-email": (
            303,
            html("name=Zephyrine+Quillfeather&email=Zephyrine+Quillfeather&message=Qx7marker"),
        ),
        "html-control-characters": (
            303,
            html("name=Zephyrine%01Quillfeather&email=zq2%40example.org&organisation=Quillcorp%02"),
        ),
        "html-latin1-charset-named": (
            303,
            html(
                b"name=Zephyrine+Quillfeather&email=zq3%40example.org&message=Qx7marker\xff\xfe",
                {"Content-Type": "application/x-www-form-urlencoded; charset=Qx7marker"},
            ),
        ),
        "html-broken-utf8": (303, html(b"name=Zephyrine+Quillfeather\xff&message=Qx7marker")),
        "html-content-type": (
            303,
            html(FORM, {"Content-Type": "text/plain; Zephyrine=Quillfeather"}),
        ),
        "html-origin": (403, html(FORM, {"Origin": "https://zephyrine-quillfeather.example"})),
        "html-success-url": (303, html(FORM + "&_success_url=https://Qx7marker.example/Zephyrine")),
        "html-long-name": (
            303,
            html("name=Zephyrine+" + "Quillfeather" * 50 + "&email=zq4%40example.org"),
        ),
        "html-long-company": (
            303,
            html(
                "name=Zephyrine+Quillfeather&email=zq5%40example.org&organisation="
                + "Quillcorp" * 40
            ),
        ),
        "html-field-twice": (303, html(FORM + "&name=Zephyrine+Quillfeather+Qx7marker")),
        "html-not-base64": (400, not_base64()),
        "json": (
            202,
            signed_json(
                MARKED_JSON, headers={"Idempotency-Key": "Zephyrine-Quillfeather-Qx7marker"}
            ),
        ),
        # Taken: the objects and lists read as text, the choices matching none left out.
        "json-wrong-types": (
            202,
            signed_json(
                {
                    "first_name": {"Zephyrine": "Quillfeather"},
                    "last_name": ["Qx7marker"],
                    "address_1": 12,
                    "notes": {"a": "Brindlewood"},
                    "type_code": "Quillcorp",
                    "doctor_type": "Zephyrine",
                    "country": "Qx7marker",
                    "email": "zq7@example.org",
                }
            ),
        ),
        "json-not-json": (
            400,
            signed_json(raw=b'{"first_name": "Zephyrine Quillfeather", "notes": Qx7marker}'),
        ),
        "json-key-twice": (
            400,
            signed_json(raw=b'{"first_name": "Zephyrine", "first_name": "Quillfeather"}'),
        ),
        "json-unknown-field": (
            202,
            signed_json({"first_name": "Zephyrine", "Quillfeather Qx7marker": "Brindlewood"}),
        ),
        "json-signature-header": (
            401,
            form_post_event(
                "partner-json",
                b'{"first_name": "Zephyrine Quillfeather"}',
                {"Content-Type": "application/json", "X-Signature": "t=Zephyrine,v1=Quillfeather"},
            ),
        ),
        "source-name": (
            404,
            form_post_event(
                "Zephyrine Quillfeather Qx7marker", b"{}", {"Content-Type": "application/json"}
            ),
        ),
        "typeform-invalid": (
            422,
            form_post_event(
                "referral-typeform",
                TYPEFORM,
                {
                    "Content-Type": "application/json",
                    "Typeform-Signature": samples.typeform_signature(TYPEFORM),
                },
            ),
        ),
    }


ACCEPTED = 6  # html, html-field-name, html-success-url, html-field-twice, json, json-unknown


def test_no_marker_of_a_hostile_delivery_reaches_a_log_or_a_store_but_the_submissions(
    aws, cliniko, monkeypatch, tmp_path, capfd
):
    for name, value in DEBUG_ENV.items():
        monkeypatch.setenv(name, value)
    monkeypatch.setenv("POWERTOOLS_LOGGER_LOG_EVENT", "true")
    path = build_intake_path(cliniko, monkeypatch, tmp_path)
    capfd.readouterr()

    with everything_at_debug() as (handler, stdout):
        sent = deliveries()
        answers = {label: path.post(event) for label, (_, event) in sent.items()}
        handled = path.work(rounds=20)
        printed = capfd.readouterr()

    # The paths really ran: each delivery got the answer it should, the worker made contacts.
    statuses = {label: answer["statusCode"] for label, answer in answers.items()}
    assert statuses == {label: status for label, (status, _) in sent.items()}
    assert handled >= ACCEPTED
    hits = [
        *leaks("logged", captured_lines(handler, stdout, printed)),
        *stored_leaks(path.stack.submission_table),
    ]
    assert not hits, "\n".join(hits[:5])
