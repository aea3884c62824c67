"""A mapped write body -> a ContactDraft, or every field Cliniko would reject (a 422).

Cliniko's own rules (shared with the emulator) decide shapes, lengths, enums and country
codes; the source adds its required fields. Every submission is checked as a create, since
the worker creates when no contact matches.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from cliniko_automations.cliniko import rules
from cliniko_automations.intake.config import FormSource
from cliniko_automations.intake.submission import ContactDraft, DraftInvalid
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
        return ContactDraft.from_fields(fields)
    except DraftInvalid as exc:
        # What the rules above allow but a draft cannot hold (a created contact's doctor_type
        # cleared with ""); named by field, never by value.
        raise FieldsInvalid(dict.fromkeys(exc.fields, rules.INVALID)) from None
