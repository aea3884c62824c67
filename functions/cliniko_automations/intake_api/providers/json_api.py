"""The project's own JSON for clinics' scripts and servers.

Body: a flat JSON object of answers keyed by the names the source maps (nested objects are
compound answers). Signature: `X-Signature: t=<unix>,v1=<hex HMAC-SHA256(secret, "<t>.<raw
body>")>` (Formspree's shape), 5-minute window. `Idempotency-Key` names the submission, with
a hash of the person beside it (a key sent again for another person is another submission,
accept.idempotency_key); without it the content hash does.

Gravity Forms' and WPForms' webhooks may post their Request Format "FORM" instead: the same
flat answers, url-encoded (repeated keys for a checkbox's choices).
"""

from __future__ import annotations

from cliniko_automations.intake_api.providers.base import (
    Answer,
    Delivery,
    Parsed,
    json_object,
    normalise,
    sender_key,
    verify_t_v1,
)
from cliniko_automations.intake_api.providers.forms import URLENCODED, media_type, parse_form

content_types = frozenset({"application/json", URLENCODED})


def verify(delivery: Delivery, secret: str, now: float) -> None:
    verify_t_v1(delivery.header("x-signature"), delivery.body, secret, now)


def parse(delivery: Delivery) -> Parsed:
    answers: dict[str, Answer]
    if media_type(delivery.content_type) == URLENCODED:
        answers = dict(parse_form(delivery.body, delivery.content_type))
    else:
        answers = {
            str(name): normalise(value) for name, value in json_object(delivery.body).items()
        }
    return Parsed(
        answers=answers,
        submission_id=sender_key(delivery.header("idempotency-key")),
    )
