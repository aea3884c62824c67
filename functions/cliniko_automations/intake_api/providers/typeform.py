"""Typeform webhooks: `Typeform-Signature: sha256=<base64 HMAC-SHA256(secret, raw body)>`.

Answers are keyed by `field.ref` (stable; labels get edited), hidden fields by their names.
The response token identifies the submission across redeliveries (event_id as a fallback).
Partial responses are acknowledged and dropped: a 404/410 would disable the webhook.
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
PARTIAL = "form_response_partial"


def verify(delivery: Delivery, secret: str, now: float) -> None:
    given = delivery.header("typeform-signature")
    if not given:
        raise BadSignature("Typeform-Signature header missing")
    if not matches("sha256=" + b64_hmac(secret, delivery.body), given):
        raise BadSignature("signature does not match")


def parse(delivery: Delivery) -> Parsed:
    data = json_object(delivery.body)
    # A delivery that names no event type (left out, or null) is a response, as Tally's and
    # Webflow's: answered 200 and dropped, it would be lost.
    event_type = data.get("event_type") or "form_response"
    if event_type != "form_response":
        # The event type is the sender's text: the log gets a fixed reason, not the text.
        return Parsed(
            answers={}, ignored="partial_response" if event_type == PARTIAL else "other_event"
        )
    response = object_at(data, "form_response")
    answers: dict[str, Answer] = {}
    hidden = response.get("hidden") or {}
    if not isinstance(hidden, dict):
        raise MalformedBody("`form_response.hidden` is not an object")
    for name, value in hidden.items():
        answers[str(name)] = normalise(value)
    # `answers` left out or null (every question skipped, the person named by hidden fields)
    # is no answer, as a null event type is a response.
    for answer in list_at(response, "answers") if response.get("answers") is not None else []:
        if not isinstance(answer, dict) or not isinstance(answer.get("field"), dict):
            raise MalformedBody("an answer is not {type, field, value}")
        ref = answer["field"].get("ref") or answer["field"].get("id")
        if not isinstance(ref, str):
            raise MalformedBody("an answer's field has no ref")
        answers[ref] = _value(answer)
    return Parsed(
        answers=answers,
        submission_id=provider_id(response.get("token")) or provider_id(data.get("event_id")),
        submitted_at=provider_time(response.get("submitted_at")),
    )


def _value(answer: dict[str, Any]) -> Answer:
    # The value sits under the key the answer's type names: {"type": "email", "email": ...}.
    kind = answer.get("type")
    value = answer.get(kind) if isinstance(kind, str) else None
    if kind == "choice" and isinstance(value, dict):
        return normalise(value.get("label") or value.get("other"))
    if kind == "choices" and isinstance(value, dict):
        labels = value.get("labels")
        if not isinstance(labels, list):  # a careless sender's single label, or nothing
            labels = [labels] if labels else []
        other = value.get("other")
        return normalise([*labels, other] if other else labels)
    return normalise(value)
