"""Plain HTML forms posted by a browser: url-encoded (multipart when the form has files).

A browser keeps no secret, so there is nothing to verify here: the core checks the origin,
the honeypot and the captcha from the source's `html` options.
"""

from __future__ import annotations

from cliniko_automations.intake_api.providers.base import Delivery, Parsed
from cliniko_automations.intake_api.providers.forms import MULTIPART, URLENCODED, parse_form

content_types = frozenset({URLENCODED, MULTIPART})


# A browser keeps no secret: the core checks origin, honeypot and captcha instead.
verify = None


def parse(delivery: Delivery) -> Parsed:
    return Parsed(answers=dict(parse_form(delivery.body, delivery.content_type)))
