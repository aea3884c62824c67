"""What Cliniko accepts in a contact write, written from Cliniko's documentation.

The emulator is the tests' stand-in for Cliniko, so it must be able to disagree with our
client: this module shares nothing with `functions/` or `generated_client/` (a test walks the
emulator's imports). Its sources, cited below as:

- [contacts]: Cliniko's contacts API documentation (the seed page: fields in the example
  bodies, `country_code` as ISO 3166-1, `doctor_type` values and null to clear);
- [sheet]: `shared/reference/cliniko-api.md`, the project's summary of Cliniko's public
  documentation, OpenAPI file and issue tracker (field table: types, nullability, which
  fields are writable, maximum lengths; the 422 body and its U+2019 apostrophe);
- [rails]: Cliniko is a Rails application; where its messages are not documented, Rails'
  default validation messages are used.

Where none of them settles a question, the answer is the one our production code chose, so
that the existing tests keep meaning what they meant; each such place says so, with the
production module it copies the *behaviour* (never the code) of. A test
(`tests/unit/emulator/test_rules_agree.py`) compares the two implementations, so a change on
either side that makes them disagree shows up as a failing test instead of passing silently.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import pycountry

# -- the contact's attributes [sheet: "Fields"] ------------------------------------------------

MAX_LENGTH = 255  # [sheet]: names, company, occupation, provider number, email, address
LENGTH_LIMITED_FIELDS: frozenset[str] = frozenset(
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
# [sheet]: "`title`, `preferred_name` unbounded"; `notes` "unbounded".
UNBOUNDED_STRING_FIELDS: frozenset[str] = frozenset({"title", "preferred_name", "notes"})
STRING_FIELDS: frozenset[str] = LENGTH_LIMITED_FIELDS | UNBOUNDED_STRING_FIELDS
WRITABLE_FIELDS: frozenset[str] = STRING_FIELDS | {
    "country_code",
    "doctor_type",
    "type_code",
    "phone_numbers",
}
TIMESTAMP_FIELDS = ("created_at", "updated_at", "archived_at", "deleted_at")
# [sheet]: not writable; [contacts]: "setting the contact's country must be done using the
# country_code parameter", so `country` (and `type`, which follows `type_code`) are derived.
READ_ONLY_FIELDS: frozenset[str] = frozenset({"id", *TIMESTAMP_FIELDS, "country", "type", "links"})
# Every attribute a contact has as a column: what a sort may name (see filters.SORTABLE).
# The nested `phone_numbers` and the `links` object are not columns.
COLUMN_FIELDS: frozenset[str] = (WRITABLE_FIELDS | READ_ONLY_FIELDS) - {"phone_numbers", "links"}

# [contacts]: "may be the string value general_practitioner or specialist. To clear the value,
# set it to null". [sheet]: "real data also shows `""`": in what Cliniko returns, which says
# nothing of a write sending it, so a write's "" is refused (null clears).
DOCTOR_TYPES = ("general_practitioner", "specialist")
# [sheet]: "integer enum 0, 1, 2 | 0 Standard, 1 Doctor, 2 3rd Party Payer".
TYPE_NAMES: dict[int, str] = {0: "Standard", 1: "Doctor", 2: "3rd Party Payer"}
# [sheet]: "`phone_type` one of Mobile, Home, Work, Other, Fax".
PHONE_TYPES = ("Mobile", "Home", "Work", "Other", "Fax")

# [sheet] "Which fields are required on create is not documented", but the one 422 body
# Cliniko documents (and the answer to a body sent without a JSON Content-Type) is
# `{"first_name": "can’t be blank"}`: a create needs a first name, an update does not
# (an erasure scrub blanks it).
REQUIRED_ON_CREATE = ("first_name",)

# -- messages: [sheet] for "can’t be blank" (U+2019), [rails] for the rest ---------------------

BLANK = "can\u2019t be blank"
INVALID = "is invalid"
NOT_IN_LIST = "is not included in the list"
TOO_LONG = f"is too long (maximum is {MAX_LENGTH} characters)"


def country_name(country_code: str) -> str | None:
    """The ISO 3166-1 name [contacts] of an alpha-2 code, or None when it is not assigned.

    Either case is read here; a write takes only capitals (`_country_code_ok`), as the spec's
    write schema (`^[A-Z]{2}$`) and production (`cliniko/rules.py` `is_country_code`) do.
    """
    if len(country_code) != 2 or not country_code.isascii() or not country_code.isalpha():
        return None
    country = pycountry.countries.get(alpha_2=country_code.upper())
    return country.name if country is not None else None


def email_is_valid(email: str) -> bool:
    """Cliniko "validates the shape" of an email [sheet], with the rule its documentation
    repository gives for contacts (redguava/cliniko-api pull request #314,
    sections/contacts.md, Create and Update Contact), in Ruby:
    `/\\A[A-Z0-9!#$%&'\\*+-\\/=?^_`{\\|}~]+@[A-Z0-9.-]+\\.[A-Z]{2,63}\\z/i`.

    Inside its class `+-\\/` is a range, `+ , - . /`. Checked character by character here
    (no regex shared with production): ASCII letters and digits and those symbols before the
    one `@`, letters, digits, `.` and `-` after it, and a last label of 2 to 63 letters.
    """
    local, at, domain = email.partition("@")
    if not at or not local or not domain:
        return False
    if any(not _ascii_alnum(char) and char not in _LOCAL_SYMBOLS for char in local):
        return False
    head, dot, tld = domain.rpartition(".")
    if not dot or not head or not 2 <= len(tld) <= 63:
        return False
    if any(not _ascii_alnum(char) and char not in ".-" for char in head):
        return False
    return all(char.isascii() and char.isalpha() for char in tld)


_LOCAL_SYMBOLS = frozenset("!#$%&'*+,-./=?^_`{|}~")


def _ascii_alnum(char: str) -> bool:
    return char.isascii() and char.isalnum()


def validate_contact_fields(fields: Mapping[str, Any], *, creating: bool) -> dict[str, str]:
    """Cliniko's 422 `errors` for a write body (field -> one message); empty when accepted.

    `fields` is raw JSON: a value of the wrong JSON type is an error, never an exception.
    Unknown and read-only keys are not checked here (Rails ignores them; see store.apply_write).
    The wrong-type answers are not documented: a string field given a non-string is
    "is invalid", an enum given a value of another type "is not included in the list"
    (production's choice, `cliniko/rules.py`); JSON `true` is not `type_code` 1.
    """
    errors: dict[str, str] = {}
    for name in sorted(STRING_FIELDS & fields.keys()):
        problem = _string_problem(name, fields[name])
        if problem:
            errors[name] = problem
    if creating:
        for name in REQUIRED_ON_CREATE:
            value = fields.get(name)
            # Rails' `presence`: nil, "" and whitespace-only are all blank.
            blank = value is None or (isinstance(value, str) and not value.strip())
            if blank and name not in errors:
                errors[name] = BLANK
    if "country_code" in fields and not _country_code_ok(fields["country_code"]):
        errors["country_code"] = NOT_IN_LIST
    if "doctor_type" in fields and not _one_of(fields["doctor_type"], (None, *DOCTOR_TYPES)):
        errors["doctor_type"] = NOT_IN_LIST
    if "type_code" in fields and not _one_of(fields["type_code"], (None, *TYPE_NAMES)):
        errors["type_code"] = NOT_IN_LIST
    if fields.get("phone_numbers") is not None:
        problem = _phone_numbers_problem(fields["phone_numbers"])
        if problem:
            errors["phone_numbers"] = problem
    return errors


def _string_problem(name: str, value: Any) -> str | None:
    if value is None:  # [sheet]: every string field is nullable; stored and shown as ""
        return None
    if not isinstance(value, str):
        return INVALID
    # Rails counts characters, not bytes. An over-long value that is also a malformed email
    # gets the length message: Cliniko shows one message per field and which one it picks is
    # not documented; this is production's order (`cliniko/rules.py`).
    if name in LENGTH_LIMITED_FIELDS and len(value) > MAX_LENGTH:
        return TOO_LONG
    if name == "email" and value and not email_is_valid(value):
        return INVALID
    return None


def _country_code_ok(code: Any) -> bool:
    # [sheet]: nullable (null clears it); "ISO 3166-1 alpha-2 (`AU`)", as openapi.yaml's write
    # schema reads it (`^[A-Z]{2}$`): not "" and not "au" (production's reading too).
    if code is None:
        return True
    return isinstance(code, str) and code == code.upper() and country_name(code) is not None


def _one_of(value: Any, allowed: tuple[Any, ...]) -> bool:
    # Same JSON type and value: `true` is not 1, `1.0` is not 1, an object is never hashed.
    return any(type(value) is type(option) and value == option for option in allowed)


def _phone_numbers_problem(phones: Any) -> str | None:
    """One message for the whole list, prefixed with the item's attribute (Rails' nested
    attribute errors); the prefixed wording is production's choice, not documented."""
    if not isinstance(phones, list):
        return INVALID
    for phone in phones:
        if not isinstance(phone, Mapping) or not isinstance(phone.get("number"), str):
            return INVALID
        if not phone["number"].strip():
            return "number " + BLANK
        if not _one_of(phone.get("phone_type"), PHONE_TYPES):
            return "phone_type " + NOT_IN_LIST
    return None
