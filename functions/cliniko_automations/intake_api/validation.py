"""A mapped write body -> a ContactDraft, or every field Cliniko would reject (a 422).

Cliniko's own rules (shared with the emulator) decide shapes, lengths, enums and country
codes; the source adds its required fields. Every submission is checked as a create, since
the worker creates when no contact matches.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Any

from cliniko_automations.cliniko import rules
from cliniko_automations.intake.config import FormSource
from cliniko_automations.intake.submission import ContactDraft, DraftInvalid
from cliniko_automations.intake_api.errors import FieldsInvalid
from cliniko_automations.intake_api.mapping import MULTI_LINE_FIELDS

# Left in a one-line field once its line breaks are spaces (mapping.one_line): what no form
# means to send, and what no Cliniko filter can carry (the worker looks a person up by email
# and by name). A NUL, which a database's text cannot hold, in any field.
CONTROL_CHARACTERS = re.compile("[\x00-\x1f\x7f-\x9f]")
NUL = "\x00"
CONTROL_CHARACTER = "must not contain control characters"


# Fields whose answer must be one of Cliniko's choices (a country, a doctor type, a contact
# type), read from a form's label through the source's `values` or by name.
CHOICE_FIELDS = ("country_code", "doctor_type", "type_code")


def without_unmatched_choices(
    fields: Mapping[str, Any], source: FormSource
) -> tuple[dict[str, Any], tuple[str, ...]]:
    """`fields` without the optional choice fields whose answer is none of Cliniko's choices
    (a Typeform "Other", a label edited in the form builder, a country nobody lists), and
    their names. For a provider's delivery: a 422 is never delivered again, and the referral
    would be lost for a field the clinic did not require; a browser's person is shown the
    field to correct instead. The source's default for such a field stands in for it."""
    kept = dict(fields)
    left_out = []
    for name in CHOICE_FIELDS:
        # A required one is left out only when a default stands in for it, as for no answer.
        if name in kept and (name not in source.required or name in source.defaults):
            errors = rules.validate_contact_fields({name: kept[name]}, creating=False)
            if errors.get(name) == rules.NOT_IN_LIST:
                del kept[name]
                left_out.append(name)
                if name in source.defaults:  # what the source says when the form does not
                    kept[name] = source.defaults[name]
    return kept, tuple(left_out)


# For a field of mapping.ONE_VALUE_TARGETS whose answer came several times, differently.
GIVEN_DIFFERENTLY = "was given more than once, with different values: give one"
# More numbers than anyone has. Each is kept as up to five keyed hashes with the stored
# submission (the worker's lookup without an email, an erasure's purge), all in one DynamoDB
# item of 400 KB at most: some 1,300 numbers overfilled it, and the store's refusal was
# answered 503 on every one of the sender's retries.
MAX_PHONE_NUMBERS = 20
TOO_MANY_NUMBERS = f"is too long (maximum is {MAX_PHONE_NUMBERS} numbers)"


def validate_draft(
    fields: Mapping[str, Any], source: FormSource, given_differently: tuple[str, ...] = ()
) -> ContactDraft:
    errors = rules.validate_contact_fields(fields, creating=True)
    phones = fields.get("phone_numbers")
    if isinstance(phones, list) and len(phones) > MAX_PHONE_NUMBERS:
        errors.setdefault("phone_numbers", TOO_MANY_NUMBERS)
    # Said for what it is: the values joined were refused as they stand (an email), or not.
    errors.update(dict.fromkeys(given_differently, GIVEN_DIFFERENTLY))
    for name, value in fields.items():
        if name not in errors and _holds_control_characters(name, value):
            errors[name] = CONTROL_CHARACTER
    for name in source.required:
        value = fields.get(name)
        if value is None or value == "" or value == [] or value == ():
            errors.setdefault(name, rules.BLANK)
    if errors:
        raise FieldsInvalid(errors)
    try:
        return ContactDraft.from_fields(fields)
    except DraftInvalid as exc:
        # What the rules above allow but a draft cannot hold (phone_numbers given as null);
        # named by field, never by value.
        raise FieldsInvalid(dict.fromkeys(exc.fields, rules.INVALID)) from None


def _holds_control_characters(name: str, value: Any) -> bool:
    if name == "phone_numbers" and isinstance(value, list):
        numbers = [p.get("number") for p in value if isinstance(p, Mapping)]
        return any(isinstance(n, str) and CONTROL_CHARACTERS.search(n) for n in numbers)
    if not isinstance(value, str):
        return False
    if name in MULTI_LINE_FIELDS:
        return NUL in value
    return CONTROL_CHARACTERS.search(value) is not None
