"""The emulator's spec validation: the jsonschema-rs fast path never hides a violation."""

from __future__ import annotations

import copy
import json

import pytest
from cliniko_emulator.store import ContactStore, render_contact
from cliniko_emulator.validation import SpecValidator, make_request, make_response
from werkzeug.datastructures import Headers

BASE = "https://api.au1.cliniko.com/v1"


def contact() -> dict:
    store = ContactStore()
    record = store.create(
        "au1",
        {"first_name": "A", "email": "a@example.com", "country_code": "AU", "type_code": 1,
         "doctor_type": "specialist", "phone_numbers": [{"number": "1", "phone_type": "Home"}]},
    )  # fmt: skip
    return render_contact(record, BASE)


def broken(path: list, value, drop: bool = False) -> dict:
    body = copy.deepcopy(contact())
    target = body
    for part in path[:-1]:
        target = target[part]
    if drop:
        del target[path[-1]]
    else:
        target[path[-1]] = value
    return body


CONTACT_BODIES = [
    contact(),
    broken(["id"], 1390712996921091568),  # ids as numbers are allowed by the spec
    broken(["id"], 1.5),
    broken(["id"], "12ab"),
    broken(["created_at"], "yesterday"),
    broken(["created_at"], None, drop=True),
    broken(["links"], None, drop=True),
    broken(["links", "self"], "not a uri"),
    broken(["doctor_type"], ""),
    broken(["doctor_type"], "surgeon"),
    broken(["type_code"], 5),
    broken(["type"], "Doctor"),
    broken(["type"], "Vet"),
    broken(["phone_numbers"], None),
    broken(["phone_numbers", 0, "phone_type"], "Pager"),
    broken(["phone_numbers", 0, "number"], None, drop=True),
    broken(["email"], None),
    broken(["email"], 5),
    broken(["archived_at"], "2024-01-01T00:00:00Z"),
    broken(["archived_at"], "2024-13-01T00:00:00Z"),
]


@pytest.fixture(scope="module")
def validators() -> tuple[SpecValidator, SpecValidator]:
    return SpecValidator(fast=True), SpecValidator(fast=False)


def errors(validator: SpecValidator, status: int, body: object, path: str = "/v1/contacts/1"):
    request = make_request(
        shard="au1", method="GET", path=path, query=[], headers={"Authorization": "Basic eDo="},
        content_type="", body=b"",
    )  # fmt: skip
    headers = Headers({"Content-Type": "application/json"})
    response = make_response(status, headers, json.dumps(body).encode())
    return validator.response_errors(request, response)


@pytest.mark.parametrize("index", range(len(CONTACT_BODIES)))
def test_fast_path_agrees_with_openapi_core(validators, index: int) -> None:
    fast, slow = validators
    body = CONTACT_BODIES[index]
    assert fast.available and slow.available
    assert errors(fast, 200, body) == errors(slow, 200, body)
    page = {
        "contacts": [contact(), body],
        "total_entries": 2,
        "links": {"self": BASE + "/contacts"},
    }
    assert errors(fast, 200, page, "/v1/contacts") == errors(slow, 200, page, "/v1/contacts")


def test_known_bad_bodies_are_reported(validators) -> None:
    fast, _ = validators
    assert errors(fast, 200, contact()) == []
    assert errors(fast, 200, broken(["type_code"], 5))
    assert errors(fast, 400, {"nope": 1}, "/v1/contacts")
    assert errors(fast, 400, {"message": 1}, "/v1/contacts")
    bad_422 = {"message": "Validation Failed", "errors": {"a": ["list"]}}
    request = make_request(
        shard="au1", method="POST", path="/v1/contacts", query=[], headers={},
        content_type="application/json", body=b"{}",
    )  # fmt: skip
    response = make_response(
        422, Headers({"Content-Type": "application/json"}), json.dumps(bad_422).encode()
    )
    assert fast.response_errors(request, response)
    assert errors(
        fast, 200, {"contacts": [], "total_entries": -1, "links": {"self": BASE}}, "/v1/contacts"
    )


REQUESTS = [
    ("GET", "/v1/contacts", [("per_page", "100"), ("q[]", "email:=a@b.co")], b""),
    ("GET", "/v1/contacts", [("per_page", "101")], b""),
    ("GET", "/v1/contacts", [("page", "0")], b""),
    ("GET", "/v1/contacts", [("page", "x")], b""),
    ("POST", "/v1/contacts", [], b'{"first_name": "A", "country_code": "AU"}'),
    ("POST", "/v1/contacts", [], b'{"first_name": "A", "country_code": "au"}'),
    ("POST", "/v1/contacts", [], json.dumps({"first_name": "x" * 256}).encode()),
    ("PATCH", "/v1/contacts/1", [], b'{"phone_numbers": [{"number": "1"}]}'),
    ("PATCH", "/v1/contacts/1", [], b'{"type_code": 3}'),
    ("PUT", "/v1/contacts/1", [], b'{"doctor_type": null, "email": null}'),
    ("GET", "/v1/contacts/12ab", [], b""),
]


@pytest.mark.parametrize(("method", "path", "query", "body"), REQUESTS)
def test_fast_path_agrees_on_requests(validators, method, path, query, body) -> None:
    fast, slow = validators

    def check(validator: SpecValidator) -> list[str]:
        request = make_request(
            shard="au1", method=method, path=path, query=query,
            headers={"Authorization": "Basic eDo=", "Content-Type": "application/json"},
            content_type="application/json" if body else "", body=body,
        )  # fmt: skip
        return validator.request_errors(request)

    assert check(fast) == check(slow)
