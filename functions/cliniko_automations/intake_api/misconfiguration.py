"""Which refusal is the operator's to fix: a secret a form source names that cannot be read
(the provider is answered 503 and retries), named with where form_sources.yaml names it."""

from __future__ import annotations

from cliniko_automations.common.misconfiguration import Misconfiguration, diagnose
from cliniko_automations.intake_api.errors import IntakeError, ServiceUnavailable
from cliniko_automations.intake_api.settings import ApiSettings
from cliniko_automations.intake_api.wiring import form_sources


def secret_misconfiguration(exc: IntakeError) -> Misconfiguration | None:
    if not isinstance(exc, ServiceUnavailable) or exc.__cause__ is None:
        return None
    name = getattr(exc.__cause__, "name", None)
    sources = form_sources(ApiSettings.from_env())
    where = ", ".join(w for w, n in sources.secret_references() if n == name) or None
    return diagnose(exc.__cause__, where=f"form_sources.yaml {where}" if where else None)
