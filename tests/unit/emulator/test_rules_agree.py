"""The emulator's contact rules and our client's are two implementations that must agree.

The emulator's (`scripts/cliniko_emulator/contact_rules.py`) are written from Cliniko's
documentation; the client's (`cliniko_automations.cliniko.rules`) are what the intake checks a
submission with before queueing it. Where they disagree, either the intake queues contacts
Cliniko will refuse (lost at the worker as a 422) or it refuses contacts Cliniko would take:
each disagreement found is a bug on one side (none is known today).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import yaml
from cliniko_automations.cliniko.rules import validate_contact_fields as client_rules
from cliniko_emulator import contact_rules
from cliniko_emulator.contact_rules import validate_contact_fields as emulator_rules
from hypothesis import example, given, settings
from hypothesis import strategies as st

SPEC_PATH = Path(__file__).resolve().parents[3] / "openapi.yaml"

# Edge values of each kind of field: each is checked alone (a table) and in combinations.
WRONG_TYPE_VALUES = [0, 1, -1, 1.0, True, False, [], ["x"], {}, {"a": 1}]
STRING_VALUES = [None, "", " ", "\t\n", "John", "O’Brien", "Zoë", *("é" * n for n in (255, 256))]
EMAIL_VALUES = [
    "a@b.co",
    "a+tag@example.com",
    "a@b..c",
    "a@b",
    "@b.co",
    "a@.co",
    "a@b.",
    "a@b.co.",
    "a@..co",
    "a@@b.co",
    "a b@c.co",
    "a@b.co ",
    "a@b.co\u00a0",
    "é@ü.de",
    "x" * 250 + "@b.co",
    "x" * 260,
]
COUNTRY_CODE_VALUES = ["", "AU", "au", "Au", "GB", "UK", "XX", "AUS", "A", "É1", " AU"]
DOCTOR_TYPE_VALUES = ["", "specialist", "general_practitioner", "Specialist", "surgeon", " "]
TYPE_CODE_VALUES = [0, 1, 2, 3, -1, "1", 1.0, 2.0, True, False]
PHONE_NUMBERS_VALUES: list[Any] = [
    [],
    [{"number": "0400 000 000", "phone_type": "Mobile"}],
    [{"number": "1", "phone_type": "Pager"}],
    [{"number": "1", "phone_type": "mobile"}],
    [{"number": " ", "phone_type": "Home"}],
    [{"number": 400, "phone_type": "Home"}],
    [{"phone_type": "Home"}],
    [{"number": "1", "phone_type": None}],
    ["0400"],
    "0400",
]
EDGE_VALUES: dict[str, list[Any]] = {
    **{name: STRING_VALUES for name in sorted(contact_rules.STRING_FIELDS)},
    "email": STRING_VALUES + EMAIL_VALUES,
    "country_code": [None, *COUNTRY_CODE_VALUES],
    "doctor_type": [None, *DOCTOR_TYPE_VALUES],
    "type_code": [None, *TYPE_CODE_VALUES],
    "phone_numbers": [None, *PHONE_NUMBERS_VALUES],
}

WRONG_TYPES = st.sampled_from(WRONG_TYPE_VALUES)
NEAR_LIMIT = st.sampled_from([254, 255, 256, 1000]).map(lambda n: "é" * n)
STRINGS = st.one_of(st.sampled_from(STRING_VALUES), NEAR_LIMIT, st.text(max_size=8), WRONG_TYPES)
EMAILS = st.one_of(
    STRINGS,
    st.sampled_from(EMAIL_VALUES),
    st.builds(
        lambda local, domain, tld: f"{local}@{domain}.{tld}",
        st.text(max_size=4),
        st.text(max_size=4),
        st.text(max_size=3),
    ),
)
COUNTRY_CODES = st.one_of(
    st.none(),
    st.sampled_from(COUNTRY_CODE_VALUES),
    st.text(max_size=3),
    WRONG_TYPES,
)
DOCTOR_TYPES = st.one_of(
    st.none(),
    st.sampled_from(DOCTOR_TYPE_VALUES),
    WRONG_TYPES,
)
TYPE_CODES = st.one_of(st.none(), st.sampled_from(TYPE_CODE_VALUES), WRONG_TYPES)
PHONE = st.one_of(
    st.fixed_dictionaries(
        {
            "number": st.one_of(st.sampled_from(["0400 000 000", "", "  ", "+61 2"]), WRONG_TYPES),
            "phone_type": st.one_of(
                st.sampled_from(["Mobile", "Home", "Work", "Other", "Fax", "mobile", "Pager", ""]),
                st.none(),
                WRONG_TYPES,
            ),
        }
    ),
    st.fixed_dictionaries({"phone_type": st.just("Home")}),
    WRONG_TYPES,
)
PHONE_NUMBERS = st.one_of(st.none(), st.lists(PHONE, max_size=3), WRONG_TYPES)

FIELD_VALUES: dict[str, st.SearchStrategy[Any]] = {
    **dict.fromkeys(contact_rules.STRING_FIELDS, STRINGS),
    "email": EMAILS,
    "country_code": COUNTRY_CODES,
    "doctor_type": DOCTOR_TYPES,
    "type_code": TYPE_CODES,
    "phone_numbers": PHONE_NUMBERS,
}
BODIES = st.fixed_dictionaries({}, optional=FIELD_VALUES)


@pytest.mark.parametrize("creating", [True, False], ids=["create", "update"])
@pytest.mark.parametrize("field", sorted(EDGE_VALUES))
def test_each_edge_value_alone_gets_the_same_answer(field: str, creating: bool) -> None:
    disagreements = []
    for value in EDGE_VALUES[field] + WRONG_TYPE_VALUES:
        body = {field: value} if field == "first_name" else {"first_name": "A", field: value}
        emulator, client = (
            emulator_rules(body, creating=creating),
            client_rules(body, creating=creating),
        )
        if emulator != client:
            disagreements.append((value, emulator, client))
    assert disagreements == []


@settings(max_examples=200, deadline=None)
@given(body=BODIES, creating=st.booleans())
@example(body={}, creating=True)
@example(body={"first_name": "A", "last_name": "x" * 256, "email": "x" * 256}, creating=True)
@example(body={"first_name": None, "email": "not an email"}, creating=True)
@example(body={"first_name": "A", "email": ".@İ.é."}, creating=True)  # once found at random
@example(body={"type_code": True, "doctor_type": "", "country_code": "nz"}, creating=False)
def test_both_rules_refuse_and_accept_the_same_bodies(body: dict[str, Any], creating: bool):
    assert emulator_rules(body, creating=creating) == client_rules(body, creating=creating)


@pytest.mark.parametrize("email", ["a@b.co\n", "a@b.co\r\n", "\na@b.co"])
def test_an_email_with_a_line_break_is_refused_by_both(email: str) -> None:
    # Python's `$` matches before a final newline: with it the client's EMAIL_PATTERN let
    # "a@b.co\n" through, which Cliniko (Rails: \A...\z) and the emulator refuse, so the
    # intake queued a contact the worker could not create.
    body = {"email": email}
    for creating in (True, False):
        assert emulator_rules(body, creating=creating) == client_rules(body, creating=creating)
    assert client_rules(body, creating=False) == {"email": "is invalid"}


@pytest.fixture(scope="module")
def spec_schemas() -> dict[str, Any]:
    return yaml.safe_load(SPEC_PATH.read_text(encoding="utf-8"))["components"]["schemas"]


def test_the_emulator_and_openapi_yaml_name_the_same_fields(spec_schemas: dict[str, Any]):
    write = spec_schemas["ContactWrite"]["properties"]
    read = spec_schemas["Contact"]["properties"]
    assert set(write) == contact_rules.WRITABLE_FIELDS
    assert set(read) == contact_rules.WRITABLE_FIELDS | contact_rules.READ_ONLY_FIELDS
    assert {name for name, field in read.items() if field.get("readOnly")} == (
        contact_rules.READ_ONLY_FIELDS
    )
    limited = {name for name, field in write.items() if "maxLength" in field}
    assert limited == contact_rules.LENGTH_LIMITED_FIELDS
    assert {write[name]["maxLength"] for name in limited} == {contact_rules.MAX_LENGTH}
    assert set(spec_schemas["PhoneType"]["enum"]) == set(contact_rules.PHONE_TYPES)
    assert spec_schemas["TypeCode"]["enum"] == sorted(contact_rules.TYPE_NAMES)
    assert spec_schemas["ContactType"]["enum"] == list(contact_rules.TYPE_NAMES.values())
    assert spec_schemas["DoctorType"]["enum"] == [*contact_rules.DOCTOR_TYPES, ""]
    assert spec_schemas["DoctorTypeWrite"]["enum"] == list(contact_rules.DOCTOR_TYPES)
