"""Cliniko's documented rules for a contact's writable fields, in one place.

The intake validates drafts with them (so a sender gets a 422 before anything is queued) and
the emulator enforces them (so tests meet the same answers Cliniko gives). Messages follow
Cliniko's wording, including its U+2019 apostrophe.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Any

import pycountry

MAX_LENGTH = 255
LENGTH_LIMITED_FIELDS = frozenset(
    {
        "first_name",
        "last_name",
        "company_name",
        "occupation",
        "provider_number",
        "email",
        "address_1",
        "address_2",
        "address_3",
        "city",
        "state",
        "post_code",
    }
)
UNBOUNDED_STRING_FIELDS = frozenset({"title", "preferred_name", "notes"})
STRING_FIELDS = LENGTH_LIMITED_FIELDS | UNBOUNDED_STRING_FIELDS
DOCTOR_TYPES = ("general_practitioner", "specialist")
TYPE_NAMES = {0: "Standard", 1: "Doctor", 2: "3rd Party Payer"}
PHONE_TYPES = ("Mobile", "Home", "Work", "Other", "Fax")
WRITABLE_FIELDS = STRING_FIELDS | {"country_code", "doctor_type", "type_code", "phone_numbers"}

# Deliberately loose, like Cliniko's own check: something@something.tld, no spaces.
EMAIL_PATTERN = re.compile(r"^[^@\s]+@[^@\s]+\.[^@\s]+$")

BLANK = "can’t be blank"
INVALID = "is invalid"
NOT_IN_LIST = "is not included in the list"
TOO_LONG = f"is too long (maximum is {MAX_LENGTH} characters)"


def country_name(country_code: str) -> str | None:
    """The ISO 3166-1 name of an alpha-2 code, or None when the code is not assigned."""
    if len(country_code) != 2 or not country_code.isalpha():
        return None
    country = pycountry.countries.get(alpha_2=country_code.upper())
    return country.name if country else None


def country_code_for(value: str) -> str | None:
    """An alpha-2 code for a country given by code, alpha-3 code or (common) name."""
    text = value.strip()
    if not text:
        return None
    if country_name(text):
        return text.upper()
    try:
        return pycountry.countries.lookup(text).alpha_2
    except LookupError:
        return None


def validate_contact_fields(fields: Mapping[str, Any], *, creating: bool) -> dict[str, str]:
    """Cliniko's per-field errors for a write body; empty when Cliniko would accept it."""
    errors: dict[str, str] = {}
    if creating and not (fields.get("first_name") or "").strip():
        errors["first_name"] = BLANK
    for name in STRING_FIELDS & fields.keys():
        value = fields[name]
        if value is None:
            continue
        if not isinstance(value, str):
            errors[name] = INVALID
        elif name in LENGTH_LIMITED_FIELDS and len(value) > MAX_LENGTH:
            errors[name] = TOO_LONG
    email = fields.get("email")
    if isinstance(email, str) and email and not EMAIL_PATTERN.match(email):
        errors.setdefault("email", INVALID)
    code = fields.get("country_code")
    if code not in (None, "") and (not isinstance(code, str) or country_name(code) is None):
        errors["country_code"] = NOT_IN_LIST
    doctor_type = fields.get("doctor_type")
    if doctor_type not in (None, "") and doctor_type not in DOCTOR_TYPES:
        errors["doctor_type"] = NOT_IN_LIST
    type_code = fields.get("type_code")
    if type_code is not None and (isinstance(type_code, bool) or type_code not in TYPE_NAMES):
        errors["type_code"] = NOT_IN_LIST
    phones = fields.get("phone_numbers")
    if phones is not None:
        problem = _phone_numbers_problem(phones)
        if problem:
            errors["phone_numbers"] = problem
    return errors


def _phone_numbers_problem(phones: Any) -> str | None:
    if not isinstance(phones, list):
        return INVALID
    for phone in phones:
        if not isinstance(phone, Mapping) or not isinstance(phone.get("number"), str):
            return INVALID
        if not phone["number"].strip():
            return "number " + BLANK
        if phone.get("phone_type") not in PHONE_TYPES:
            return "phone_type " + NOT_IN_LIST
    return None
