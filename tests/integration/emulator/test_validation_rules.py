"""422 answers in Cliniko's shape, and the field semantics of writes."""

from __future__ import annotations

import httpx
import pytest


@pytest.mark.parametrize(
    ("body", "errors"),
    [
        ({}, {"first_name": "can’t be blank"}),
        ({"first_name": "   "}, {"first_name": "can’t be blank"}),
        ({"first_name": "A", "email": "not-an-email"}, {"email": "is invalid"}),
        (
            {"first_name": "A", "city": "x" * 256},
            {"city": "is too long (maximum is 255 characters)"},
        ),
        (
            {"first_name": "A", "country_code": "XX"},
            {"country_code": "is not included in the list"},
        ),
        (
            {"first_name": "A", "doctor_type": "surgeon"},
            {"doctor_type": "is not included in the list"},
        ),
        # Cliniko documents null, not "", to clear it; "" is only in what it returns.
        ({"first_name": "A", "doctor_type": ""}, {"doctor_type": "is not included in the list"}),
        ({"first_name": "A", "type_code": 7}, {"type_code": "is not included in the list"}),
        (
            {"first_name": "A", "phone_numbers": [{"number": "1", "phone_type": "Pager"}]},
            {"phone_numbers": "phone_type is not included in the list"},
        ),
        (
            {"first_name": "A", "phone_numbers": [{"number": " ", "phone_type": "Home"}]},
            {"phone_numbers": "number can’t be blank"},
        ),
    ],
)
def test_create_validation_errors(http: httpx.Client, cliniko, body: dict, errors: dict) -> None:
    cliniko.allow_invalid_requests()  # several of these bodies break the spec's write schema
    response = http.post("/contacts", json=body)
    assert response.status_code == 422
    assert response.json() == {"message": "Validation Failed", "errors": errors}
    assert cliniko.control.contacts() == []


def test_update_validation_leaves_the_contact_unchanged(http: httpx.Client) -> None:
    contact = http.post("/contacts", json={"first_name": "A", "email": "a@example.com"}).json()
    response = http.patch(f"/contacts/{contact['id']}", json={"email": "bad", "first_name": "B"})
    assert response.status_code == 422
    assert response.json()["errors"] == {"email": "is invalid"}
    assert http.get(f"/contacts/{contact['id']}").json() == contact


def test_update_may_blank_first_name(http: httpx.Client) -> None:
    # Only a create requires first_name; an erasure scrub blanks it.
    contact = http.post("/contacts", json={"first_name": "A", "email": "a@example.com"}).json()
    scrub = {f: "" for f in ("first_name", "last_name", "email", "notes", "address_1")}
    response = http.patch(f"/contacts/{contact['id']}", json={**scrub, "phone_numbers": []})
    assert response.status_code == 200
    body = response.json()
    assert all(body[f] == "" for f in scrub) and body["phone_numbers"] == []


def test_country_type_and_doctor_type_follow_their_codes(http: httpx.Client) -> None:
    contact = http.post(
        "/contacts",
        json={"first_name": "A", "country_code": "GB", "type_code": 1, "doctor_type": "specialist"},
    ).json()
    assert contact["country"] == "United Kingdom" and contact["type"] == "Doctor"
    updated = http.put(
        f"/contacts/{contact['id']}",
        json={"country_code": "EE", "country": "France", "type_code": 2, "doctor_type": None},
    ).json()
    assert updated["country_code"] == "EE" and updated["country"] == "Estonia"
    assert updated["type"] == "3rd Party Payer" and updated["doctor_type"] is None
    cleared = http.patch(f"/contacts/{contact['id']}", json={"country_code": None}).json()
    assert cleared["country_code"] == "" and cleared["country"] == ""


def test_null_strings_come_back_blank(http: httpx.Client) -> None:
    contact = http.post(
        "/contacts", json={"first_name": "A", "last_name": None, "notes": None}
    ).json()
    assert contact["last_name"] == "" and contact["notes"] == ""


def test_updated_at_moves_only_on_change(http: httpx.Client, cliniko) -> None:
    contact = http.post("/contacts", json={"first_name": "A"}).json()
    same = http.patch(f"/contacts/{contact['id']}", json={"first_name": "A"}).json()
    assert same["updated_at"] == contact["updated_at"]


def test_archived_contact_by_id_visible_or_hidden(http: httpx.Client, cliniko) -> None:
    contact = http.post("/contacts", json={"first_name": "A"}).json()
    assert http.post(f"/contacts/{contact['id']}/archive").status_code == 204
    assert http.post(f"/contacts/{contact['id']}/archive").status_code == 204  # idempotent
    assert http.get(f"/contacts/{contact['id']}").json()["archived_at"] is not None
    assert http.patch(f"/contacts/{contact['id']}", json={"notes": ""}).status_code == 200
    cliniko.control.set_behaviour(archived_get="hidden")
    assert http.get(f"/contacts/{contact['id']}").status_code == 404
    assert http.delete(f"/contacts/{contact['id']}").status_code == 404
    shown = http.get(f"/contacts/{contact['id']}", params={"q[]": "archived_at:*"})
    assert shown.status_code == 200


def test_archive_and_delete_of_unknown_ids(http: httpx.Client) -> None:
    assert http.post("/contacts/42/archive").status_code == 404
    assert http.delete("/contacts/42").status_code == 404
    assert http.patch("/contacts/42", json={"first_name": "x"}).status_code == 404
    assert http.put("/contacts/42", json={"first_name": "x"}).json() == {"message": "Not found"}
