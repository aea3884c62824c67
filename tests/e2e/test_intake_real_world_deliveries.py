"""Deliveries as Jotform and browsers really send them, not as the minimal samples do.

Written from the providers' documentation and real deliveries, apart from the project's
samples: Jotform posts some twenty form fields besides `rawRequest` (the pretty text, the
sender's IP, its own bookkeeping), with a PHP cURL boundary, and its `rawRequest` carries keys
of its own (`slug`, `event_id`, `jsExecutionTracker`...) and a phone as area and number;
browsers post multipart forms with file inputs (an empty one too) and url-encoded ones with
%20 or `+`, with their fetch metadata headers and a Referer with a path and a query. Each
becomes exactly one contact with the mapped fields; the token in Jotform's URL reaches no log.
"""

from __future__ import annotations

import base64
import json
import os
from urllib.parse import quote, quote_plus

import pytest

from tests.fixtures.apigw import form_post_event
from tests.integration.intake_worker.e2e_world import IntakePath, build_intake_path
from tests.integration.intake_worker.resources import captured_logs
from tests.unit.intake_api import samples

EMAIL = "hana.watanabe@example.org"
PDF = b"%PDF-1.4\n" + bytes(range(256)) * 40  # a small binary attachment
CHROME = {
    "Cache-Control": "max-age=0",
    "sec-ch-ua": '"Chromium";v="131", "Not_A Brand";v="24"',
    "sec-ch-ua-mobile": "?0",
    "Upgrade-Insecure-Requests": "1",
    "Origin": samples.ORIGIN,
    "User-Agent": "Mozilla/5.0 (X11; Linux x86_64) AppleWebKit/537.36 Chrome/131.0.0.0",
    "Accept": "text/html,application/xhtml+xml,application/xml;q=0.9,*/*;q=0.8",
    "Sec-Fetch-Site": "cross-site",
    "Sec-Fetch-Mode": "navigate",
    "Sec-Fetch-User": "?1",
    "Sec-Fetch-Dest": "document",
    "Referer": f"{samples.ORIGIN}/contact/?utm_source=newsletter&utm_medium=email",
    "Accept-Language": "en-AU,en;q=0.9",
}


@pytest.fixture
def path(aws, cliniko, monkeypatch, tmp_path) -> IntakePath:
    return build_intake_path(cliniko, monkeypatch, tmp_path)


def multipart(parts: list[tuple[str, object]], boundary: str, newline: bytes = b"\r\n") -> bytes:
    """Parts as (name, text) or (name, (filename, bytes, content type))."""
    body = b""
    for name, value in parts:
        body += b"--" + boundary.encode() + newline
        disposition = f'Content-Disposition: form-data; name="{name}"'
        if isinstance(value, tuple):
            filename, data, content_type = value
            body += f'{disposition}; filename="{filename}"'.encode() + newline
            body += f"Content-Type: {content_type}".encode() + newline + newline + data
        else:
            body += disposition.encode() + newline + newline + str(value).encode()
        body += newline
    return body + b"--" + boundary.encode() + b"--" + newline


def jotform_delivery(submission_id: str, newline: bytes = b"\r\n") -> dict:
    raw_request = {
        "slug": "submit/241234567890123",
        "jsExecutionTracker": "build-date-1733380000000=>init-started:1733380000100",
        "submitSource": "form",
        "submitDate": "1733380042000",
        "buildDate": "1733380000000",
        "uploadServerUrl": "https://upload.jotform.com/upload",
        "eventObserver": "1",
        "q3_name": {"first": "Hana", "last": "Watanabe"},
        "q4_email": EMAIL,
        "q5_phone": {"area": "0412", "phone": "987 654"},
        "q6_address": {
            "addr_line1": "12/14 Harbour Street",
            "addr_line2": "",
            "city": "Sydney",
            "state": "NSW",
            "postal": "2000",
            "country": "Australia",
        },
        "q7_contactType": "Standard",
        "q8_message": "First line\nsecond line",
        "q9_referral": ["https://www.jotform.com/uploads/clinic/241234567890123/letter.pdf"],
        "event_id": "1733380000100_241234567890123_a1b2c3d",
        "timeToSubmit": "42",
        "validatedNewRequiredFieldIDs": '{"new":1}',
        "path": "/submit/241234567890123",
    }
    # PHP's json_encode, as Jotform's servers write it: "\/" and \u escapes.
    raw_text = json.dumps(raw_request, ensure_ascii=True).replace("/", "\\/")
    fields: list[tuple[str, object]] = [
        ("action", ""),
        ("webhookURL", ""),
        ("username", "clinicjot"),
        ("formID", "241234567890123"),
        ("type", "WEB"),
        ("customParams", ""),
        ("product", "false"),
        ("formTitle", "New Patient Intake"),
        ("customTitle", ""),
        ("submissionID", submission_id),
        ("event", ""),
        ("documentID", ""),
        ("teamID", ""),
        ("subject", ""),
        ("isSilent", "false"),
        ("customBody", ""),
        ("rawRequest", raw_text),
        ("fromTable", ""),
        ("appID", ""),
        ("pretty", f"Name:Hana Watanabe, E-mail:{EMAIL}, Phone Number:(0412) 987 654"),
        ("unread", ""),
        ("parent", ""),
        ("ip", "203.0.113.77"),
    ]
    boundary = "------------------------" + os.urandom(8).hex()  # PHP cURL's
    headers = {
        "Content-Type": f"multipart/form-data; boundary={boundary}",
        "Accept": "*/*",
        "User-Agent": "JotForm",
    }
    body = multipart(fields, boundary, newline)
    return form_post_event(
        "intake-jotform", body, headers, base64=True, query=f"token={quote(samples.TOKEN)}"
    )


@pytest.mark.parametrize("newline", [b"\r\n", b"\n"], ids=["crlf", "lf"])
def test_a_jotform_delivery_as_jotform_sends_it(path: IntakePath, cliniko, newline) -> None:
    with captured_logs("intake") as logs:
        for _ in range(2):  # Jotform delivers it again: still one contact
            answer = path.post(jotform_delivery("5912345678901234567", newline))
            assert answer["statusCode"] == 202, answer
            path.work()
    [contact] = cliniko.control.contacts()
    assert (contact["first_name"], contact["last_name"], contact["email"]) == (
        "Hana",
        "Watanabe",
        EMAIL,
    )
    assert [(p["number"], p["phone_type"]) for p in contact["phone_numbers"]] == [
        ("0412 987 654", "Mobile")
    ]
    assert (contact["address_1"], contact["address_2"]) == ("12/14 Harbour Street", "")
    assert (contact["city"], contact["state"], contact["post_code"]) == ("Sydney", "NSW", "2000")
    assert (contact["country_code"], contact["type_code"]) == ("AU", 0)
    assert not [line for line in logs.lines if samples.TOKEN in line or "token=" in line]


def browser_form(fields: list[tuple[str, str]], space: str) -> bytes:
    pairs = (f"{quote_plus(k)}={quote_plus(v)}" for k, v in fields)
    return "&".join(pairs).replace("+", space).encode()


FORM = [
    ("name", "Hana Watanabe"),
    ("email", EMAIL),
    ("phone", "0412 987 654"),
    ("organisation", "Harbour Medical"),
    ("message", "Please call\r\nafter 3pm"),
    ("website", ""),
]


@pytest.mark.parametrize(
    "encoding", ["urlencoded+", "urlencoded%20", "multipart-files", "multipart-empty-file"]
)
def test_a_browser_form_post_as_browsers_send_it(path: IntakePath, cliniko, encoding) -> None:
    if encoding.startswith("urlencoded"):
        body = browser_form(FORM, encoding.removeprefix("urlencoded"))
        content_type = "application/x-www-form-urlencoded"
    else:
        boundary = "----WebKitFormBoundaryq8Zk3mW1uTf0VbYx"
        # An unfilled file input is posted too: no file name, no bytes.
        attachment = ("referral letter.pdf", PDF, "application/pdf")
        if encoding == "multipart-empty-file":
            attachment = ("", b"", "application/octet-stream")
        parts: list[tuple[str, object]] = [*FORM[:3], ("attachment", attachment), *FORM[3:]]
        body = multipart(parts, boundary)
        content_type = f"multipart/form-data; boundary={boundary}"
    # HTTP APIs hand these bodies to Lambda base64-encoded.
    event = form_post_event(
        "website-contact-html", body, {**CHROME, "Content-Type": content_type}, base64=True
    )
    assert base64.b64decode(event["body"]) == body
    answer = path.post(event)
    assert answer["statusCode"] == 303, answer
    assert "/contact/thanks?submission_id=" in answer["headers"]["Location"]
    assert path.work() == 1
    [contact] = cliniko.control.contacts()
    assert (contact["first_name"], contact["last_name"], contact["email"]) == (
        "Hana",
        "Watanabe",
        EMAIL,
    )
    assert contact["company_name"] == "Harbour Medical"
    assert contact["notes"] == "Message from the website form: Please call\r\nafter 3pm"
