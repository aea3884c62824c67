"""Cliniko's documented rules for a contact's writable fields, in one place.

The fields and choices are openapi.yaml's, written out rather than read from the generated
models at import: loading four model modules (attrs classes then) cost the intake API 69
million instructions (5 % of a minimal handler's cold start) for a list of names. Tests hold every
list below to the generated `ContactWrite`, `DoctorType`, `PhoneType` and `TypeCode` and to
openapi.yaml, so a spec change not made here too fails CI.

The intake validates drafts with them (so a sender gets a 422 before anything is queued) and
the emulator enforces them (so tests meet the same answers Cliniko gives). Messages follow
Cliniko's wording, including its U+2019 apostrophe.
"""

from __future__ import annotations

import functools
import re
import unicodedata
from collections.abc import Mapping
from typing import Any

from cliniko_automations.common.person_keys import TYPED_APOSTROPHES, without_format_characters

MAX_LENGTH = 255
# Every writable field, in the order openapi.yaml lists them.
WRITABLE_FIELD_NAMES: tuple[str, ...] = (
    "title",
    "first_name",
    "last_name",
    "preferred_name",
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
    "country_code",
    "notes",
    "doctor_type",
    "type_code",
    "phone_numbers",
)
WRITABLE_FIELDS = frozenset(WRITABLE_FIELD_NAMES)
# The fields that are not free text: each has its own check below.
CODED_FIELDS = frozenset({"country_code", "doctor_type", "type_code", "phone_numbers"})
STRING_FIELDS = WRITABLE_FIELDS - CODED_FIELDS
# The free-text fields Cliniko does not cut at MAX_LENGTH (a test holds openapi.yaml to it).
UNBOUNDED_STRING_FIELDS = frozenset({"title", "preferred_name", "notes"})
LENGTH_LIMITED_FIELDS = STRING_FIELDS - UNBOUNDED_STRING_FIELDS
# Cliniko documents these two and null to clear; "" only comes back in real data (the spec's
# DoctorType), so a write sending it is refused like any other value (DoctorTypeWrite).
DOCTOR_TYPES = ("general_practitioner", "specialist")
TYPE_NAMES = {0: "Standard", 1: "Doctor", 2: "3rd Party Payer"}
PHONE_TYPES = ("Fax", "Home", "Mobile", "Other", "Work")

# Deliberately loose: something@something.tld, no spaces and no control characters (which no
# Cliniko filter can carry either), and something after the domain's last dot ("a@b.co." is
# refused). What an erasure request may name: a contact's email made before Cliniko's rule
# below, or by staff, is still erasable. Always applied with fullmatch: `$` would let a final
# newline through ("a@b.co\n").
EMAIL_PATTERN = re.compile(r"[^@\s\x00-\x1f\x7f]+@[^@\s\x00-\x1f\x7f]+\.[^@\s\x00-\x1f\x7f.]+")
# Cliniko's own check of a contact's email on create and update, as its API documentation
# gives it (redguava/cliniko-api pull request #314, sections/contacts.md), in Ruby:
# /\A[A-Z0-9!#$%&'\*+-\/=?^_`{\|}~]+@[A-Z0-9.-]+\.[A-Z]{2,63}\z/i (`+-\/` is the range
# `+ , - . /`). ASCII only: an IDN domain, an accented local part, a quoted one, a TLD of one
# letter or of digits get Cliniko's 422. Written without re.I, which would take "ſ" and "K"
# (Kelvin) for letters. Always applied with fullmatch.
CLINIKO_EMAIL_PATTERN = re.compile(
    r"[A-Za-z0-9!#$%&'*+,\-./=?^_`{|}~]+@[A-Za-z0-9.-]+\.[A-Za-z]{2,63}"
)

BLANK = "can’t be blank"
INVALID = "is invalid"
NOT_IN_LIST = "is not included in the list"
TOO_LONG = f"is too long (maximum is {MAX_LENGTH} characters)"


def is_country_code(value: object) -> bool:
    """Whether `value` is a country's code as the spec's write schema takes one: an assigned
    ISO 3166-1 alpha-2 code in capitals (`^[A-Z]{2}$`), not "" and not "au", which Cliniko's
    docs do not say it takes (null clears the country)."""
    return isinstance(value, str) and value == value.upper() and country_name(value) is not None


def country_name(country_code: str) -> str | None:
    """The ISO 3166-1 name of an alpha-2 code, or None when the code is not assigned."""
    # isascii: pycountry folds case, and U+212A KELVIN SIGN folds to "k" ("\u212aE" as Kenya).
    if len(country_code) != 2 or not (country_code.isascii() and country_code.isalpha()):
        return None
    # Imported on the first country, not at a cold start: most contacts give none.
    import pycountry

    country = pycountry.countries.get(alpha_2=country_code.upper())
    return country.name if country else None


# Names people type that ISO 3166 (pycountry) does not list: its names are official ones
# ("Russian Federation", "Türkiye", "Côte d'Ivoire"), and the UK's nations are no countries of
# it. Keyed as `_alias_key` writes them. Each is here because `pycountry.countries.lookup`
# refuses it (tests/unit/test_rules.py holds them to that), and an unknown country refuses
# the whole submission (422).
COUNTRY_ALIASES = {
    "uk": "GB",
    "britain": "GB",
    "great britain": "GB",
    "england": "GB",
    "scotland": "GB",
    "wales": "GB",
    "northern ireland": "GB",
    "america": "US",
    "russia": "RU",
    "turkey": "TR",
    "turkiye": "TR",
    "holland": "NL",
    "korea": "KR",
    "republic of korea": "KR",
    "ivory coast": "CI",
    "cote d'ivoire": "CI",
    "uae": "AE",
    "macedonia": "MK",
    "swaziland": "SZ",
    "burma": "MM",
    "cape verde": "CV",
    "east timor": "TL",
    "vatican": "VA",
    "vatican city": "VA",
    "palestine": "PS",
    "brunei": "BN",
    "micronesia": "FM",
    "dr congo": "CD",
    "drc": "CD",
    "democratic republic of the congo": "CD",
    "macau": "MO",
    "bosnia": "BA",
    "guinea bissau": "GW",
    "falklands": "FK",
    "reunion": "RE",
    "curacao": "CW",
    "republic of ireland": "IE",
    "eire": "IE",
    "aotearoa": "NZ",
    # Gravity Forms' address field lists these two as written (a typo, a shortening).
    "syria arab republic": "SY",
    "us minor outlying islands": "UM",
    # As people write them.
    "us virgin islands": "VI",
    "pitcairn islands": "PN",
    # WPForms' address field lists these as written.
    "vatican city state": "VA",
    "taiwan, republic of china": "TW",
    "bonaire, saint eustatius and saba": "BQ",
    "ireland (republic of)": "IE",
    "north macedonia (republic of)": "MK",
    "eswatini (kingdom of)": "SZ",
}


def _alias_key(text: str) -> str:
    """A typed country as COUNTRY_ALIASES and a second ISO lookup read it: folded, without
    dots, a leading "the" or an ampersand ("The U.K.", "Trinidad & Tobago", "St Lucia")."""
    key = " ".join(text.casefold().replace(".", "").replace("&", " and ").split())
    key = key.removeprefix("the ")
    return "saint " + key[3:] if key.startswith("st ") else key


# Longer than any name of a country (ISO's longest is 52 characters): read as one, a form's
# 250 KB answer cost half a second of CPU, three times over, in a function of 0.15 vCPU.
MAX_COUNTRY_TEXT = 200


def country_code_for(value: str) -> str | None:
    """An alpha-2 code for a country given by code, alpha-3 code or (common) name, read as a
    person reads it: invisible format characters left out, a typed apostrophe as "'"."""
    text = without_format_characters(value).translate(TYPED_APOSTROPHES).strip()
    if not text or len(text) > MAX_COUNTRY_TEXT:
        return None
    if country_name(text):
        return text.upper()
    import pycountry

    key = _alias_key(text)
    if key in COUNTRY_ALIASES:
        return COUNTRY_ALIASES[key]
    names = [text]
    # The folded form is not looked up as a code when an ampersand made it: a lone "&" folds
    # to "and", Andorra's code ("The U.S.A." still folds to "usa").
    if key != text and (len(key) > 3 or "&" not in text):
        names.append(key)
    for name in names:
        try:
            return pycountry.countries.lookup(name).alpha_2
        except LookupError:
            continue
    return _loose_country_codes().get(loose_country_key(text))


def loose_country_key(name: str, *, without_brackets: bool = False) -> str:
    """A country's name read loosely: without accents, hyphens, commas, dots, brackets or
    "the" ("Congo (Democratic Republic of the)", WPForms', "Congo, Democratic Republic of the",
    Gravity Forms', "congo democratic republic of" as ISO's "Congo, The Democratic Republic of
    the"; "Sao Tome"). `without_brackets` drops what is in brackets too: ISO's
    "Falkland Islands (Malvinas)" as the "Falkland Islands" form builders list. Only ISO's
    names are read so: a typed "Congo (Kinshasa)" is not taken for Congo."""
    decomposed = unicodedata.normalize("NFKD", name.casefold())
    text = "".join(char for char in decomposed if not unicodedata.combining(char))
    if without_brackets:
        text = re.sub(r"\([^()]*\)", " ", text)
    words = re.sub(r"[(),.\-]", " ", text).split()
    return " ".join(word for word in words if word != "the")


@functools.cache
def _loose_country_codes() -> dict[str, str]:
    import pycountry

    codes: dict[str, str] = {}
    for country in pycountry.countries:
        for attribute in ("name", "official_name", "common_name"):
            if name := getattr(country, attribute, None):
                for without_brackets in (False, True):
                    key = loose_country_key(name, without_brackets=without_brackets)
                    codes.setdefault(key, country.alpha_2)
    return codes


def contact_fields(contact: Any) -> dict[str, Any]:
    """A contact as a JSON-shaped dict (the generated model's to_dict, or a plain mapping)."""
    if isinstance(contact, Mapping):
        return dict(contact)
    fields: dict[str, Any] = contact.to_dict()
    return fields


def is_blank(value: Any) -> bool:
    """Whether a field's value is blank as Cliniko gives it: null, an empty string or list."""
    return value is None or value == "" or value == [] or value == ()


def is_archived(contact: Mapping[str, Any]) -> bool:
    """Whether a contact (its fields as Cliniko sent them) is archived: `archived_at` set, or
    `deleted_at`, the only mark the contacts page of Cliniko's docs shows (its legacy DELETE
    archives)."""
    return any(contact.get(mark) not in (None, "") for mark in ("archived_at", "deleted_at"))


def validate_contact_fields(fields: Mapping[str, Any], *, creating: bool) -> dict[str, str]:
    """Cliniko's per-field errors for a write body; empty when Cliniko would accept it.

    `fields` may be raw JSON: a value of the wrong type is an error, never an exception.
    """
    errors: dict[str, str] = {}
    for name in STRING_FIELDS & fields.keys():
        value = fields[name]
        if value is None:
            continue
        if not isinstance(value, str):
            errors[name] = INVALID
        elif name in LENGTH_LIMITED_FIELDS and len(value) > MAX_LENGTH:
            errors[name] = TOO_LONG
    first_name = fields.get("first_name")
    if creating and "first_name" not in errors and not (first_name or "").strip():
        errors["first_name"] = BLANK
    email = fields.get("email")
    if "email" not in errors and email and not CLINIKO_EMAIL_PATTERN.fullmatch(email):
        errors["email"] = INVALID
    code = fields.get("country_code")
    if code is not None and not is_country_code(code):
        errors["country_code"] = NOT_IN_LIST
    doctor_type = fields.get("doctor_type")
    if doctor_type is not None and not _is_one_of(doctor_type, DOCTOR_TYPES):
        errors["doctor_type"] = NOT_IN_LIST
    type_code = fields.get("type_code")
    if type_code is not None and not _is_one_of(type_code, tuple(TYPE_NAMES)):
        errors["type_code"] = NOT_IN_LIST
    phones = fields.get("phone_numbers")
    if phones is not None:
        problem = phone_numbers_problem(phones)
        if problem:
            errors["phone_numbers"] = problem
    return errors


def _is_one_of(value: Any, allowed: tuple[Any, ...]) -> bool:
    # Exact type match: JSON true is not type_code 1, and an object is never hashed.
    return any(type(value) is type(option) and value == option for option in allowed)


def phone_numbers_problem(phones: Any) -> str | None:
    """What is wrong with a `phone_numbers` list (Cliniko's wording), or None."""
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
