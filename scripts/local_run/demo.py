"""Sample submissions from several providers, signed as each provider signs, plus the curl that
the banner prints. Made-up people only."""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import shlex
import time
import uuid
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlencode

import httpx

from . import defaults


@dataclass
class Delivery:
    label: str
    source: str
    body: bytes
    headers: dict[str, str]


def _hmac(secret: str, message: bytes) -> bytes:
    return hmac.new(secret.encode(), message, hashlib.sha256).digest()


def _t_v1(secret: str, body: bytes) -> str:
    stamp = str(int(time.time()))
    return f"t={stamp},v1={_hmac(secret, stamp.encode() + b'.' + body).hex()}"


def json_delivery(secret: str, person: dict[str, Any] | None = None) -> Delivery:
    body = json.dumps(
        person
        or {
            "first_name": "Ada",
            "last_name": "Lovelace",
            "email": "ada.lovelace@example.com",
            "mobile": "+61 400 000 001",
            "company_name": "Analytical Physio",
            "country": "AU",
            "type_code": 1,
            "doctor_type": "specialist",
        }
    ).encode()
    return Delivery(
        "own script (json, X-Signature)",
        "partner-json",
        body,
        {
            "Content-Type": "application/json",
            "X-Signature": _t_v1(secret, body),
            "Idempotency-Key": str(uuid.uuid4()),
        },
    )


def typeform_delivery(secret: str) -> Delivery:
    def answer(kind: str, ref: str, value: Any) -> dict[str, Any]:
        return {"type": kind, kind: value, "field": {"id": f"id-{ref}", "ref": ref, "type": kind}}

    body = json.dumps(
        {
            "event_id": f"01H{uuid.uuid4().hex[:20].upper()}",
            "event_type": "form_response",
            "form_response": {
                "form_id": "lT4Z3j",
                "token": uuid.uuid4().hex,
                "submitted_at": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
                "hidden": {},
                "answers": [
                    answer("text", "referrer_name", "Grace Hopper"),
                    answer("email", "referrer_email", "grace.hopper@example.com"),
                    answer("phone_number", "referrer_phone", "+61 400 000 002"),
                    answer("text", "practice_name", "Harbour Medical"),
                    answer("text", "practice_country", "Australia"),
                    answer("choice", "referrer_role", {"label": "General practitioner"}),
                    answer("text", "referral_reason", "Knee rehabilitation"),
                ],
            },
        }
    ).encode()
    signature = "sha256=" + base64.b64encode(_hmac(secret, body)).decode()
    return Delivery(
        "Typeform",
        "referral-typeform",
        body,
        {"Content-Type": "application/json", "Typeform-Signature": signature},
    )


def tally_delivery(secret: str) -> Delivery:
    def field(key: str, value: Any, kind: str = "INPUT_TEXT", **extra: Any) -> dict[str, Any]:
        return {"key": key, "label": key, "type": kind, "value": value, **extra}

    body = json.dumps(
        {
            "eventId": str(uuid.uuid4()),
            "eventType": "FORM_RESPONSE",
            "createdAt": time.strftime("%Y-%m-%dT%H:%M:%S.000Z", time.gmtime()),
            "data": {
                "responseId": uuid.uuid4().hex[:6],
                "formId": "VwbNEw",
                "fields": [
                    field("question_first_name", "Katherine"),
                    field("question_last_name", "Johnson"),
                    field("question_email", "katherine.johnson@example.com", "INPUT_EMAIL"),
                    field("question_phone", "+64 21 000 003", "INPUT_PHONE_NUMBER"),
                    field("question_practice", "Kiwi Family Practice"),
                    field(
                        "question_country",
                        ["opt-nz"],
                        "DROPDOWN",
                        options=[
                            {"id": "opt-au", "text": "Australia"},
                            {"id": "opt-nz", "text": "New Zealand"},
                        ],
                    ),
                ],
            },
        }
    ).encode()
    signature = base64.b64encode(_hmac(secret, body)).decode()
    return Delivery(
        "Tally",
        "gp-referral-tally",
        body,
        {"Content-Type": "application/json", "Tally-Signature": signature},
    )


def webflow_delivery(secret: str) -> Delivery:
    body = json.dumps(
        {
            "triggerType": "form_submission",
            "payload": {
                "name": "Contact Form",
                "siteId": "65427cf400e02b306eaa049c",
                "data": {
                    "Full Name": "Alan Turing",
                    "Email": "alan.turing@example.com",
                    "Phone": "+44 7700 900004",
                    "Company": "Bletchley Osteopathy",
                    "Country": "GB",
                    "Message": "Please add us as a referrer",
                },
                "submittedAt": time.strftime("%Y-%m-%dT%H:%M:%S.000Z", time.gmtime()),
                "id": uuid.uuid4().hex[:24],
                "formId": "65429eadebe8a9f3a30f62d0",
            },
        }
    ).encode()
    millis = str(int(time.time() * 1000))
    signature = _hmac(secret, millis.encode() + b":" + body).hex()
    return Delivery(
        "Webflow",
        "website-webflow",
        body,
        {
            "Content-Type": "application/json",
            "x-webflow-timestamp": millis,
            "x-webflow-signature": signature,
        },
    )


def html_delivery(origin: str, source: str, captcha_field: str | None = None) -> Delivery:
    fields = {
        "name": "Mary Jackson",
        "email": "mary.jackson@example.com",
        "phone": "+61 400 000 005",
        "organisation": "Langley Podiatry",
        "message": "Hello from the website form",
        "website": "",
    }
    if captcha_field:
        fields[captcha_field] = defaults.CAPTCHA_TEST_TOKEN
    body = urlencode(fields).encode()
    return Delivery(
        "plain HTML form (browser post)",
        source,
        body,
        {"Content-Type": "application/x-www-form-urlencoded", "Origin": origin},
    )


def deliveries(system: Any) -> list[Delivery]:
    from cliniko_automations.intake.config import load_form_sources

    sources = load_form_sources(system.form_sources_file).sources

    def secret(source: str) -> str:
        return system.secrets[sources[source].signing_secret]

    return [
        json_delivery(secret("partner-json")),
        typeform_delivery(secret("referral-typeform")),
        tally_delivery(secret("gp-referral-tally")),
        webflow_delivery(secret("website-webflow")),
        html_delivery(system.site.url, defaults.HTML_SOURCE, system.captcha_field),
    ]


def send(api_url: str, delivery: Delivery) -> httpx.Response:
    return httpx.post(
        f"{api_url}/forms/{delivery.source}",
        content=delivery.body,
        headers=delivery.headers,
        timeout=30,
        follow_redirects=False,
    )


def curl(api_url: str, delivery: Delivery) -> str:
    """A ready-to-paste curl for a delivery (signatures with a timestamp stay valid 5 minutes)."""
    parts = ["curl", "-i", "-X", "POST", f"{api_url}/forms/{delivery.source}"]
    for name, value in delivery.headers.items():
        parts += ["-H", f"{name}: {value}"]
    parts += ["--data-binary", delivery.body.decode()]
    return " ".join(shlex.quote(part) for part in parts)


def json_curl_script(api_url: str, secret: str) -> str:
    """A curl that signs its own body when run, so it never goes stale."""
    body = json.dumps(
        {
            "first_name": "Ada",
            "last_name": "Lovelace",
            "email": "ada.lovelace@example.com",
            "mobile": "+61 400 000 001",
            "company_name": "Analytical Physio",
            "country": "AU",
        }
    )
    return (
        f"BODY={shlex.quote(body)}; T=$(date +%s); "
        f"SIG=$(printf '%s' \"$T.$BODY\" | openssl dgst -sha256 -hmac {shlex.quote(secret)} "
        "| sed 's/^.*= //'); "
        f'curl -i -X POST {api_url}/forms/partner-json -H "Content-Type: application/json" '
        '-H "X-Signature: t=$T,v1=$SIG" --data-binary "$BODY"'
    )


def html_curl(api_url: str, origin: str, source: str, captcha_field: str | None = None) -> str:
    captcha = (
        f" --data-urlencode '{captcha_field}={defaults.CAPTCHA_TEST_TOKEN}'"
        if captcha_field
        else ""
    )
    return (
        f"curl -i {api_url}/forms/{source} -H 'Origin: {origin}' "
        "--data-urlencode 'name=Ada Lovelace' --data-urlencode 'email=ada.lovelace@example.com' "
        "--data-urlencode 'organisation=Analytical Physio'" + captcha
    )
