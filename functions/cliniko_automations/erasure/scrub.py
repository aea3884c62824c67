"""What erasing a contact writes, and how to tell an erased contact from one that is not.

Cliniko's API cannot delete a contact (DELETE only archives, and the archived record keeps its
name, email and phones), so an honest erasure blanks every personal field first, then
archives, then reads the contact back to prove both happened.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from typing import Any

from cliniko_client.models.contact_write import ContactWrite

from cliniko_automations.cliniko.rules import is_archived, is_blank

# Cliniko insists on a first name (a contact without one fails validation), so the scrubbed
# contact keeps this neutral placeholder: it says what happened and identifies nobody.
PLACEHOLDER_FIRST_NAME = "Erased"
# type_code (Standard / Doctor / 3rd Party Payer) is a category, not personal data: it stays.
KEPT_FIELDS = frozenset({"type_code"})
# A string Cliniko clears with null rather than "": "" is no ISO country code (a 422).
CLEARED_WITH_NULL = frozenset({"country_code"})


def _erased_value(name: str, annotation: str) -> Any:
    """The value that erases a writable field, by its type in the generated model: strings
    become "" (Cliniko returns blanks as ""), lists (the phone numbers) an empty list, and
    the rest (enums such as doctor_type) null, which is how Cliniko clears them."""
    if name == "first_name":
        return PLACEHOLDER_FIRST_NAME
    kinds = {kind.strip() for kind in annotation.split("|")}
    if any(kind.startswith("list[") for kind in kinds):
        return []
    if "str" in kinds and name not in CLEARED_WITH_NULL:
        return ""
    return None


# Every writable personal field of a contact (the spec's `ContactWrite`) and the value that
# erases it.
SCRUBBED_VALUES: dict[str, Any] = {
    field.name: _erased_value(field.name, str(field.type))
    for field in dataclasses.fields(ContactWrite)
    if field.name != "additional_properties" and field.name not in KEPT_FIELDS
}
# What the scrub writes instead of a blank Cliniko refuses: which fields it requires on an
# update is not documented (its one documented 422 is a blank first name), and a refused field
# refuses the whole write. Like the first name's, these say what happened and identify nobody;
# the email's is a reserved domain's (RFC 2606), in the shape Cliniko validates.
PLACEHOLDER_EMAIL = "erased@example.invalid"


def placeholder(name: str) -> str | None:
    """The placeholder for a field Cliniko will not have blank, None when it has none (a
    list, an enum: there is nothing neutral to put there)."""
    if name == "email":
        return PLACEHOLDER_EMAIL
    if SCRUBBED_VALUES.get(name) == "":
        return PLACEHOLDER_FIRST_NAME
    return None


# Read-only fields that still carry personal data: `country` follows country_code.
DERIVED_PERSONAL_FIELDS = ("country",)
PERSONAL_FIELDS = (*SCRUBBED_VALUES, *DERIVED_PERSONAL_FIELDS)

HONEST_NOTE = (
    "Cliniko keeps an archived record of each contact (its API has no way to remove one); "
    "that record now holds no personal data: every personal field is blank, and the first name "
    f"(and any other field Cliniko will not have blank) a placeholder such as "
    f"'{PLACEHOLDER_FIRST_NAME}'."
)


def fields_to_scrub(fields: Mapping[str, Any], *, absent_is_blank: bool = True) -> list[str]:
    """Names of the personal fields that still hold something other than the erased value.

    `absent_is_blank=False`: a field the contact was read without counts as one to scrub. The
    seed's GET /contacts items carry no doctor_type (its GET /contacts/:id does), so a list
    item says nothing of it: deciding from one that nothing needs writing would leave it. (A
    read back after the scrub, which sent null, the documented way to clear it, may take an
    absent field as blank.)"""
    names = []
    for name, target in SCRUBBED_VALUES.items():
        if name not in fields and not absent_is_blank:
            # The seed's contact carries `country` (the name) for country_code: a blank name
            # is a blank code; a filled one is reported below.
            if name != "country_code" or "country" not in fields:
                names.append(name)
            continue
        value = fields.get(name)
        if name == "first_name":
            if value not in (PLACEHOLDER_FIRST_NAME, "", None):
                names.append(name)
        elif not is_blank(value) and value not in (target, placeholder(name)):
            names.append(name)
    # `country` is read-only and follows country_code; report it with its source field.
    if not is_blank(fields.get("country")) and "country_code" not in names:
        names.append("country_code")
    return names


def is_scrubbed(fields: Mapping[str, Any]) -> bool:
    """Whether a contact holds what the scrub writes, archived yet or not: the placeholder
    first name, and every other personal field blank or its placeholder. The change feed marks
    its events `erased` by this. The placeholder name is asked for, not taken as blank when
    absent: a contact read without its name has not thereby been erased."""
    return fields.get("first_name") == PLACEHOLDER_FIRST_NAME and not fields_to_scrub(fields)


def is_erased(fields: Mapping[str, Any]) -> bool:
    return not fields_to_scrub(fields) and is_archived(fields)
