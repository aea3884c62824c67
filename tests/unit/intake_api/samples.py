"""Provider deliveries for tests, signed the way each provider documents (computed here with
hmac directly, independent of the code under test)."""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import time
from typing import Any

SECRET = "whsec_test_0123456789abcdef"
TOKEN = "jotform-token-abcdef0123456789"
CAPTCHA_SECRET = "captcha-secret-test"

# Values that must never appear in a log line.
NAME = "Marguerite Okonkwo-Lindqvist"
FIRST, LAST = "Marguerite", "Okonkwo-Lindqvist"
EMAIL = "marguerite.okonkwo@example.org"
PHONE = "+61 412 987 654"

ORIGIN = "https://www.example-clinic.com.au"
SUCCESS_URL = "https://www.example-clinic.com.au/contact/thanks"
ERROR_URL = "https://www.example-clinic.com.au/contact/problem"


def _hmac(secret: str, message: bytes) -> bytes:
    return hmac.new(secret.encode(), message, hashlib.sha256).digest()


def typeform_signature(body: bytes, secret: str = SECRET) -> str:
    return "sha256=" + base64.b64encode(_hmac(secret, body)).decode()


def tally_signature(body: bytes, secret: str = SECRET) -> str:
    return base64.b64encode(_hmac(secret, body)).decode()


def webflow_headers(body: bytes, secret: str = SECRET, at: float | None = None) -> dict[str, str]:
    millis = str(int((time.time() if at is None else at) * 1000))
    signature = _hmac(secret, f"{millis}:".encode() + body).hex()
    return {"x-webflow-timestamp": millis, "x-webflow-signature": signature}


def t_v1_signature(body: bytes, secret: str = SECRET, at: float | None = None) -> str:
    stamp = str(int(time.time() if at is None else at))
    return f"t={stamp},v1={_hmac(secret, f'{stamp}.'.encode() + body).hex()}"


def dumps(data: Any) -> bytes:
    return json.dumps(data).encode()


def typeform_body(
    *,
    event_type: str = "form_response",
    response_token: str = "tf-response-token-1",  # noqa: S107 (a response id)
    name: str = NAME,
    email: str = EMAIL,
    country: str = "Australia",
) -> bytes:
    def answer(kind: str, ref: str, value: Any) -> dict[str, Any]:
        return {"type": kind, kind: value, "field": {"id": f"id-{ref}", "ref": ref, "type": kind}}

    return dumps(
        {
            "event_id": "01HTYPEFORMEVENT",
            "event_type": event_type,
            "form_response": {
                "form_id": "lT4Z3j",
                "token": response_token,
                "submitted_at": "2026-11-23T10:00:00Z",
                "hidden": {"utm_source": "newsletter"},
                "answers": [
                    answer("text", "referrer_name", name),
                    answer("email", "referrer_email", email),
                    answer("phone_number", "referrer_phone", PHONE),
                    answer("text", "practice_name", "Harbour Medical"),
                    answer("text", "practice_country", country),
                    answer("choice", "referrer_role", {"label": "General practitioner"}),
                    answer("text", "referral_reason", "Lower back pain"),
                ],
            },
        }
    )


def tally_body(*, email: str = EMAIL) -> bytes:
    return dumps(
        {
            "eventId": "a4cb511e-d513-4fa5-baee-b815d718dfd1",
            "eventType": "FORM_RESPONSE",
            "createdAt": "2026-11-23T10:00:00.000Z",
            "data": {
                "responseId": "2wgx4n",
                "submissionId": "2wgx4n",
                "formId": "VwbNEw",
                "fields": [
                    {
                        "key": "question_first_name",
                        "label": "First",
                        "type": "INPUT_TEXT",
                        "value": FIRST,
                    },
                    {
                        "key": "question_last_name",
                        "label": "Last",
                        "type": "INPUT_TEXT",
                        "value": LAST,
                    },
                    {
                        "key": "question_email",
                        "label": "Email",
                        "type": "INPUT_EMAIL",
                        "value": email,
                    },
                    {
                        "key": "question_phone",
                        "label": "Phone",
                        "type": "INPUT_PHONE_NUMBER",
                        "value": PHONE,
                    },
                    {
                        "key": "question_practice",
                        "label": "Practice",
                        "type": "INPUT_TEXT",
                        "value": "Harbour Medical",
                    },
                    {
                        "key": "question_country",
                        "label": "Country",
                        "type": "DROPDOWN",
                        "value": ["opt-nz"],
                        "options": [
                            {"id": "opt-au", "text": "Australia"},
                            {"id": "opt-nz", "text": "New Zealand"},
                        ],
                    },
                ],
            },
        }
    )


def webflow_body(*, email: str = EMAIL) -> bytes:
    return dumps(
        {
            "triggerType": "form_submission",
            "payload": {
                "name": "Contact Form",
                "siteId": "65427cf400e02b306eaa049c",
                "data": {
                    "Full Name": NAME,
                    "Email": email,
                    "Phone": PHONE,
                    "Country": "GB",
                    "Message": "Please call me",
                },
                "submittedAt": "2026-11-23T10:00:00.000Z",
                "id": "6321a9a5c1b0a5d1d0b1b0a1",
                "formId": "65429eadebe8a9f3a30f62d0",
            },
        }
    )


def formspree_body(*, email: str = EMAIL) -> bytes:
    return dumps(
        {
            "form": "xyzzyabc",
            "submission": {
                "contact_name": NAME,
                "email": email,
                "phone": PHONE,
                "insurer": "Blue Shield Health",
                "_date": "2026-11-23T10:00:00Z",
            },
        }
    )


def json_body(**overrides: Any) -> bytes:
    data = {
        "first_name": FIRST,
        "last_name": LAST,
        "email": EMAIL,
        "mobile": PHONE,
        "company_name": "Partner Physio",
        "country": "NZL",
        "type_code": "1",
        "doctor_type": "Specialist",
    }
    data.update(overrides)
    return dumps({key: value for key, value in data.items() if value is not None})


def multipart(
    fields: dict[str, str], boundary: str = "----JotformBoundary7MA4YWxk"
) -> tuple[bytes, str]:
    lines = []
    for name, value in fields.items():
        lines += [f"--{boundary}", f'Content-Disposition: form-data; name="{name}"', "", value]
    lines += [f"--{boundary}--", ""]
    return "\r\n".join(lines).encode(), f"multipart/form-data; boundary={boundary}"


def jotform_raw_request(*, email: str = EMAIL) -> dict[str, Any]:
    """A Jotform submission's `rawRequest`, decoded."""
    return {
        "slug": "submit/230000000000000",
        "q3_name": {"first": FIRST, "last": LAST},
        "q4_email": email,
        "q5_phone": {"full": PHONE},
        "q6_address": {
            "addr_line1": "1 Harbour St",
            "addr_line2": "",
            "city": "Sydney",
            "state": "NSW",
            "postal": "2000",
            "country": "Australia",
        },
        "q7_contactType": "Doctor",
    }


def jotform_body(*, email: str = EMAIL, raw: dict[str, Any] | None = None) -> tuple[bytes, str]:
    raw_request = raw or jotform_raw_request(email=email)
    return multipart(
        {
            "formID": "230000000000000",
            "submissionID": "5712345678901234567",
            "formTitle": "New contact",
            "rawRequest": json.dumps(raw_request),
            "pretty": "Name:Someone",
        }
    )


def with_values(sample: Any, replacements: list[tuple[int, Any]]) -> Any:
    """The sample with some of its leaves (by index in walk order) replaced."""
    leaves: list[tuple[Any, Any]] = []

    def walk(node: Any) -> None:
        items = node.items() if isinstance(node, dict) else enumerate(node)
        for key, value in list(items):
            if isinstance(value, dict | list):
                walk(value)
            else:
                leaves.append((node, key))

    copy = json.loads(json.dumps(sample))
    walk(copy)
    for index, value in replacements:
        if leaves:
            parent, key = leaves[index % len(leaves)]
            parent[key] = value
    return copy
