"""The same contact, refused (or accepted) by both the client's rules and the emulator over HTTP.

The intake refuses a submission with the client's rules (`cliniko_automations.cliniko.rules`)
before queueing it; the emulator answers with its own rules, written from Cliniko's
documentation. Here each invalid contact must be refused by both with the same fields named,
the emulator's 422 in Cliniko's documented shape (`{"message": "Validation Failed", "errors":
{field: string}}`), and the client must hand those fields on as a `ValidationFailed`.
"""

from __future__ import annotations

from typing import Any

import httpx
import pytest
from cliniko_automations.cliniko import errors
from cliniko_automations.cliniko.rules import validate_contact_fields as client_rules

from tests.unit.cliniko.fake_clock import FakeClock

INVALID_CONTACTS: list[dict[str, Any]] = [
    {"first_name": ""},
    {"first_name": "  ", "last_name": "Snow"},
    {"first_name": "A", "email": "not-an-email"},
    {"first_name": "A", "email": "a@example"},
    {"first_name": "A", "email": "a b@example.com"},
    {"first_name": "A", "last_name": "é" * 256},
    {"first_name": "A", "email": "x" * 250 + "@b.com"},
    {"first_name": "A", "country_code": "XX"},
    {"first_name": "A", "country_code": "AUS"},
    {"first_name": "A", "doctor_type": "surgeon"},
    # Cliniko documents null, not "", to clear it.
    {"first_name": "A", "doctor_type": ""},
    {"first_name": "A", "type_code": 7},
    {"first_name": "", "email": "a@b", "city": "x" * 256, "country_code": "ZZ", "type_code": 3},
]
# Refused, but the client refuses the phone list before sending (its model cannot build it),
# so only the raw HTTP path meets the emulator's answer.
INVALID_PHONES: list[dict[str, Any]] = [
    {"first_name": "A", "phone_numbers": [{"number": "1", "phone_type": "Pager"}]},
    {"first_name": "A", "phone_numbers": [{"number": " ", "phone_type": "Home"}]},
]
# At the edges of the rules, accepted by both.
VALID_CONTACTS: list[dict[str, Any]] = [
    {"first_name": "é" * 255, "email": "a+tag@example.com"},
    {"first_name": "A", "notes": "x" * 5000, "title": "x" * 300, "preferred_name": "x" * 300},
    {"first_name": "A", "email": "", "last_name": None, "doctor_type": None, "type_code": 2},
    {"first_name": "A", "doctor_type": None, "country_code": "NZ", "email": "a@b..co"},
]
ENUM_FIELDS = ("country_code", "doctor_type", "type_code")


def assert_documented_422(response: httpx.Response) -> dict[str, str]:
    """Cliniko's 422: exactly a message and a field -> string map; returns the map."""
    assert response.status_code == 422
    assert response.headers["Content-Type"].startswith("application/json")
    body = response.json()
    assert set(body) == {"message", "errors"}
    assert body["message"] == "Validation Failed"
    assert body["errors"] and all(isinstance(text, str) for text in body["errors"].values())
    return body["errors"]


@pytest.mark.parametrize("contact", INVALID_CONTACTS + INVALID_PHONES)
def test_an_invalid_contact_is_refused_by_both_alike(http: httpx.Client, cliniko, contact) -> None:
    cliniko.allow_invalid_requests()  # several of these bodies break the spec's write schema
    expected = client_rules(contact, creating=True)
    assert expected, "the client's rules accept this contact"

    emulator = assert_documented_422(http.post("/contacts", json=contact))

    assert emulator == expected
    assert cliniko.control.contacts() == []


@pytest.mark.parametrize("contact", INVALID_CONTACTS)
def test_the_client_hands_on_the_emulators_refusal(cliniko, contact: dict[str, Any]) -> None:
    cliniko.allow_invalid_requests()
    client = cliniko.client(clock=FakeClock())

    with pytest.raises(errors.ValidationFailed) as refused:
        client.create_contact(contact)

    assert refused.value.status_code == 422  # the emulator's answer, not a local refusal
    assert refused.value.errors == client_rules(contact, creating=True)


def test_an_update_is_refused_alike_and_changes_nothing(http: httpx.Client, cliniko) -> None:
    cliniko.allow_invalid_requests()  # type_code 9 breaks the spec's write schema
    created = http.post("/contacts", json={"first_name": "A", "email": "a@example.com"}).json()
    change = {"first_name": "", "email": "a@example", "type_code": 9}
    expected = client_rules(change, creating=False)

    emulator = assert_documented_422(http.patch(f"/contacts/{created['id']}", json=change))

    assert (
        emulator == expected == {"email": "is invalid", "type_code": "is not included in the list"}
    )
    assert http.get(f"/contacts/{created['id']}").json() == created


@pytest.mark.parametrize("contact", VALID_CONTACTS)
def test_a_contact_at_the_edges_is_accepted_by_both(http: httpx.Client, contact) -> None:
    assert client_rules(contact, creating=True) == {}

    response = http.post("/contacts", json=contact)

    assert response.status_code == 201, response.text
    stored = response.json()
    strings = {name: value for name, value in contact.items() if name not in ENUM_FIELDS}
    assert {name: stored[name] for name in strings} == {
        name: value or "" for name, value in strings.items()
    }
