"""A mapped write body -> a ContactDraft, or every field Cliniko would reject (a 422).

Cliniko's own rules (shared with the emulator) decide shapes, lengths, enums and country
codes; the source adds its required fields. Every submission is checked as a create, since
the worker creates when no contact matches.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from pydantic import ValidationError

from cliniko_automations.cliniko import rules
from cliniko_automations.intake.config import FormSource
from cliniko_automations.intake.submission import ContactDraft
from cliniko_automations.intake_api.errors import FieldsInvalid


def validate_draft(fields: Mapping[str, Any], source: FormSource) -> ContactDraft:
    errors = rules.validate_contact_fields(fields, creating=True)
    for name in source.required:
        value = fields.get(name)
        if value is None or value == "" or value == [] or value == ():
            errors.setdefault(name, rules.BLANK)
    if errors:
        raise FieldsInvalid(errors)
    try:
        return ContactDraft.model_validate(fields)
    except ValidationError as exc:
        # The rules above should already have caught this; name the fields, never the values.
        raise FieldsInvalid(
            {str(error["loc"][0]): rules.INVALID for error in exc.errors(include_input=False)}
        ) from None
