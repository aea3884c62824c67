"""Jotform webhooks: multipart/form-data with `submissionID` and `rawRequest`, a JSON string
keyed `q<N>_<name>` (compound answers as objects, e.g. {"first": ..., "last": ...}).

Jotform signs nothing: the core checks the source's shared token instead (token_secret).
"""

from __future__ import annotations

from cliniko_automations.intake_api.errors import MalformedBody
from cliniko_automations.intake_api.providers.base import (
    Delivery,
    Parsed,
    json_value,
    normalise,
    provider_id,
)
from cliniko_automations.intake_api.providers.forms import MULTIPART, URLENCODED, parse_form

content_types = frozenset({MULTIPART, URLENCODED})


# Jotform signs nothing: the core checks the source's token_secret instead.
verify = None


def parse(delivery: Delivery) -> Parsed:
    form = parse_form(delivery.body, delivery.content_type)
    raw = form.get("rawRequest")
    if not isinstance(raw, str):
        raise MalformedBody("`rawRequest` is missing")
    answers = json_value(raw, "`rawRequest`")
    if not isinstance(answers, dict):
        raise MalformedBody("`rawRequest` is not a JSON object")
    submission_id = form.get("submissionID")
    return Parsed(
        answers={str(name): normalise(value) for name, value in answers.items()},
        submission_id=provider_id(submission_id) if isinstance(submission_id, str) else None,
    )
