"""One adapter module per provider, each with `content_types`, `verify` and `parse`."""

from __future__ import annotations

from types import MappingProxyType

from cliniko_automations.intake_api.providers import (
    formspree,
    html,
    jotform,
    json_api,
    tally,
    typeform,
    webflow,
)
from cliniko_automations.intake_api.providers.base import Adapter

ADAPTERS: MappingProxyType[str, Adapter] = MappingProxyType(
    {
        "typeform": typeform,
        "tally": tally,
        "webflow": webflow,
        "formspree": formspree,
        "jotform": jotform,
        "html": html,
        "json": json_api,
    }
)
