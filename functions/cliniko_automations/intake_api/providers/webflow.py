"""Webflow form webhooks: `x-webflow-signature: <hex HMAC-SHA256(secret, "<ts>:<raw body>")>`.

`x-webflow-timestamp` is in milliseconds; deliveries older (or newer) than 5 minutes are
refused. Answers are `payload.data` keyed by field name; `payload.id` is the submission id.
Webhooks made in Webflow's dashboard are unsigned: such a source is refused (fail closed).
"""

from __future__ import annotations

from cliniko_automations.intake_api.errors import BadSignature
from cliniko_automations.intake_api.providers.base import (
    REPLAY_WINDOW_SECONDS,
    Delivery,
    Parsed,
    check_window,
    hex_hmac,
    hex_matches,
    json_object,
    normalise,
    object_at,
    provider_id,
    provider_time,
    timestamp_digits,
)

content_types = frozenset({"application/json"})


def verify(delivery: Delivery, secret: str, now: float) -> None:
    given = delivery.header("x-webflow-signature")
    if not delivery.header("x-webflow-timestamp") or not given:
        raise BadSignature("x-webflow-signature or x-webflow-timestamp header missing")
    timestamp = timestamp_digits(delivery.header("x-webflow-timestamp"))
    if timestamp is None:
        raise BadSignature("x-webflow-timestamp is not milliseconds since the epoch")
    if not hex_matches(hex_hmac(secret, timestamp.encode("ascii") + b":" + delivery.body), given):
        raise BadSignature("signature does not match")
    if abs(now - int(timestamp)) <= REPLAY_WINDOW_SECONDS:
        # Signed, with the time in seconds: a sender imitating Webflow, told what to fix.
        raise BadSignature("x-webflow-timestamp is in seconds; Webflow sends milliseconds")
    check_window(int(timestamp) / 1000, now)


def parse(delivery: Delivery) -> Parsed:
    data = json_object(delivery.body)
    trigger = data.get("triggerType") or "form_submission"
    if trigger != "form_submission":
        # The trigger type is the sender's text: the log gets a fixed reason, not the text.
        return Parsed(answers={}, ignored="other_event")
    payload = object_at(data, "payload")
    fields = object_at(payload, "data")
    return Parsed(
        answers={str(name): normalise(value) for name, value in fields.items()},
        submission_id=provider_id(payload.get("id")),
        submitted_at=provider_time(payload.get("submittedAt")),
    )
