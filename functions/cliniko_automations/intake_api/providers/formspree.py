"""Formspree webhooks: `Formspree-Signature: t=<unix>,v1=<hex HMAC-SHA256(secret, "<t>.<body>")>`.

The answers are the `submission` object (the body itself when there is none: the payload's
shape is partly undocumented). Formspree gives no reliable id, so the content hash stands in.
"""

from __future__ import annotations

from cliniko_automations.intake_api.providers.base import (
    Delivery,
    Parsed,
    json_object,
    normalise,
    verify_t_v1,
)

content_types = frozenset({"application/json"})


def verify(delivery: Delivery, secret: str, now: float) -> None:
    verify_t_v1(delivery.header("formspree-signature"), delivery.body, secret, now)


def parse(delivery: Delivery) -> Parsed:
    data = json_object(delivery.body)
    fields = data["submission"] if isinstance(data.get("submission"), dict) else data
    return Parsed(answers={str(name): normalise(value) for name, value in fields.items()})
