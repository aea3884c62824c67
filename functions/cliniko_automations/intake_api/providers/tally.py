"""Tally webhooks: `Tally-Signature: <base64 HMAC-SHA256(secret, raw body)>`.

Answers are keyed by the field `key`; choice answers carry option ids, resolved to their text
through the field's `options`. The response id identifies the submission (eventId fallback).
"""

from __future__ import annotations

from typing import Any

from cliniko_automations.intake_api.errors import BadSignature, MalformedBody
from cliniko_automations.intake_api.providers.base import (
    Answer,
    Delivery,
    Parsed,
    b64_hmac,
    json_object,
    list_at,
    matches,
    normalise,
    object_at,
    provider_id,
    provider_time,
)

content_types = frozenset({"application/json"})


def verify(delivery: Delivery, secret: str, now: float) -> None:
    given = delivery.header("tally-signature")
    if not given:
        raise BadSignature("Tally-Signature header missing")
    if not matches(b64_hmac(secret, delivery.body), given):
        raise BadSignature("signature does not match")


def parse(delivery: Delivery) -> Parsed:
    data = json_object(delivery.body)
    # A delivery that names no event type (left out, or null) is a response, as Typeform's and
    # Webflow's: answered 200 and dropped, it would be lost, since Tally does not resend.
    event_type = data.get("eventType") or "FORM_RESPONSE"
    if event_type != "FORM_RESPONSE":
        # The event type is the sender's text: the log gets a fixed reason, not the text.
        return Parsed(answers={}, ignored="other_event")
    response = object_at(data, "data")
    answers: dict[str, Answer] = {}
    for item in list_at(response, "fields"):
        if not isinstance(item, dict) or not isinstance(item.get("key"), str):
            raise MalformedBody("a field is not {key, value}")
        answers[item["key"]] = _value(item)
    return Parsed(
        answers=answers,
        submission_id=provider_id(response.get("responseId")) or provider_id(data.get("eventId")),
        submitted_at=provider_time(response.get("createdAt") or data.get("createdAt")),
    )


def _value(item: dict[str, Any]) -> Answer:
    value = item.get("value")
    options = item.get("options")
    if isinstance(options, list):
        # Option ids are strings; anything else in a payload (a matrix's nested answers) is
        # text to keep, never a key to look up.
        text = {
            option["id"]: option.get("text")
            for option in options
            if isinstance(option, dict) and isinstance(option.get("id"), str)
        }
        if isinstance(value, list):
            return normalise(
                [
                    text.get(choice, choice) if isinstance(choice, str) else choice
                    for choice in value
                ]
            )
        if isinstance(value, str) and value in text:
            return normalise(text[value])
    return normalise(value)
