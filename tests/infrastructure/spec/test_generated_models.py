"""The generated cliniko_client models parse the seed's bodies and carry the intended types."""

from __future__ import annotations

import json
import types
import typing

from cliniko_client.models import (
    Contact,
    ContactLinks,
    ContactList,
    ContactType,
    ContactWrite,
    DoctorType,
    DoctorTypeWrite,
    PhoneNumber,
    PhoneNumberWrite,
    PhoneType,
    TypeCode,
)
from cliniko_client.types import UNSET, Unset

from .conftest import load_seed_example

LONG_ID = "1390712996921091568"  # 19 digits: more than a float keeps exactly


def _hints(model: type) -> dict[str, typing.Any]:
    # The models import their nested models only under TYPE_CHECKING.
    nested = {"ContactLinks": ContactLinks, "PhoneNumber": PhoneNumber}
    return typing.get_type_hints(model, localns=nested | {"PhoneNumberWrite": PhoneNumberWrite})


def _members(annotation: typing.Any) -> set[typing.Any]:
    assert isinstance(annotation, types.UnionType | typing._UnionGenericAlias)  # type: ignore[attr-defined]
    return set(typing.get_args(annotation))


def test_get_example_parses() -> None:
    contact = Contact.from_dict(load_seed_example("get_response"))
    assert contact.id == 1
    assert contact.first_name == "Darrell"
    assert contact.doctor_type is None
    assert contact.deleted_at is None
    assert contact.archived_at is UNSET
    assert contact.type_ is ContactType.DOCTOR
    assert contact.type_code is TypeCode.DOCTOR
    assert contact.created_at.isoformat() == "2016-07-25T18:52:09+00:00"
    assert not isinstance(contact.links, Unset)
    assert contact.links.self_ == "http://api.cliniko.com/v1/contacts/1"
    assert isinstance(contact.phone_numbers, list)
    assert [(p.number, p.phone_type) for p in contact.phone_numbers] == [
        ("0987654321", PhoneType.MOBILE),
        ("1234567890", PhoneType.HOME),
    ]


def test_a_contact_without_its_own_link_parses() -> None:
    # No code reads a contact's `links.self`: a Cliniko that left it out must lose nothing.
    body = load_seed_example("get_response")
    del body["links"]
    contact = Contact.from_dict(body)
    assert (contact.id, contact.links) == (1, UNSET)


def test_create_example_parses() -> None:
    contact = Contact.from_dict(load_seed_example("create_response"))
    assert contact.id == 12
    assert contact.country_code == "AU"
    assert contact.country == "Australia"
    assert contact.doctor_type is None
    assert contact.phone_numbers == []
    assert contact.type_code is TypeCode.STANDARD


def test_list_example_parses() -> None:
    page = ContactList.from_dict(load_seed_example("list_response"))
    assert page.total_entries == 1
    assert [contact.last_name for contact in page.contacts] == ["Bode"]
    # Not in the seed's list item: left unset, not invented.
    assert page.contacts[0].doctor_type is UNSET
    assert page.links.self_ == "https://api.au1.cliniko.com/v1/contacts?page=1"
    assert page.links.next_ is UNSET
    assert page.links.previous is UNSET


def test_list_links_next_is_read_when_present() -> None:
    body = load_seed_example("list_response")
    body["links"]["next"] = "https://api.au1.cliniko.com/v1/contacts?page=2"
    page = ContactList.from_dict(body)
    assert page.links.next_ == "https://api.au1.cliniko.com/v1/contacts?page=2"


def test_a_19_digit_string_id_survives_unchanged() -> None:
    body = load_seed_example("get_response") | {"id": LONG_ID}
    contact = Contact.from_dict(body)
    assert contact.id == LONG_ID
    assert contact.to_dict()["id"] == LONG_ID


def test_a_19_digit_number_id_stays_exact() -> None:
    # json gives Python ints of any size; the runtime turns them into strings.
    raw = json.dumps(load_seed_example("get_response")).replace('"id": 1,', f'"id": {LONG_ID},')
    contact = Contact.from_dict(json.loads(raw))
    assert str(contact.id) == LONG_ID


def test_doctor_type_values() -> None:
    base = load_seed_example("get_response")
    assert Contact.from_dict(base | {"doctor_type": None}).doctor_type is None
    assert Contact.from_dict(base | {"doctor_type": "specialist"}).doctor_type is (
        DoctorType.SPECIALIST
    )
    # Real data holds "": parsed as the documented BLANK member, not a crash, not a raw str.
    blank = Contact.from_dict(base | {"doctor_type": ""}).doctor_type
    assert blank is DoctorType.BLANK
    assert blank == ""
    assert Contact.from_dict(base | {"doctor_type": ""}).to_dict()["doctor_type"] == ""


def test_doctor_type_is_typed_as_optional_nullable_enum() -> None:
    assert _members(_hints(Contact)["doctor_type"]) == {DoctorType, type(None), Unset}
    # A write names one of the documented values or null: no BLANK member to send.
    assert _members(_hints(ContactWrite)["doctor_type"]) == {DoctorTypeWrite, type(None), Unset}
    assert {kind.value for kind in DoctorTypeWrite} == {"general_practitioner", "specialist"}


def test_id_is_typed_int_or_str() -> None:
    assert _members(_hints(Contact)["id"]) == {int, str}


def test_write_model_round_trips_the_seed_request_and_sends_nulls() -> None:
    request = load_seed_example("create_request")
    assert ContactWrite.from_dict(request).to_dict() == request
    clear = ContactWrite(doctor_type=None, email=None, phone_numbers=None)
    assert clear.to_dict() == {"doctor_type": None, "email": None, "phone_numbers": None}
    assert ContactWrite().to_dict() == {}
    write_fields = set(_hints(ContactWrite)) - {"additional_properties"}
    assert not write_fields & {"id", "created_at", "updated_at", "country", "type_", "links"}


def test_values_cliniko_may_add_to_its_response_choices_are_kept_not_refused() -> None:
    # The spec lists the documented choices (and the emulator is held to them), but a value
    # Cliniko adds later must not make a contact unreadable: each choice is a nullable union,
    # whose parser keeps a value it does not know as it came.
    body = load_seed_example("get_response") | {
        "doctor_type": "dentist",
        "type_code": 3,
        "type": "Referrer",
        "phone_numbers": [{"number": "0400 000 000", "phone_type": "Pager"}],
    }
    contact = Contact.from_dict(body)
    assert (contact.doctor_type, contact.type_code, contact.type_) == ("dentist", 3, "Referrer")
    assert isinstance(contact.phone_numbers, list)
    assert contact.phone_numbers[0].phone_type == "Pager"
    written = contact.to_dict()  # as the change feed and an erasure's proof read a contact
    assert {name: written[name] for name in ("doctor_type", "type_code", "type")} == {
        "doctor_type": "dentist",
        "type_code": 3,
        "type": "Referrer",
    }
    assert written["phone_numbers"] == body["phone_numbers"]
