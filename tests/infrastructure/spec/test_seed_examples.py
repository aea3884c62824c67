"""The seed's example bodies validate against openapi.yaml, as schemas and as HTTP exchanges."""

from __future__ import annotations

import base64
import json
import random
import re

import pytest
from openapi_core import OpenAPI
from openapi_core.exceptions import OpenAPIError
from openapi_core.testing import MockRequest, MockResponse
from openapi_core.validation.request.exceptions import SecurityValidationError

from .conftest import SPEC_PATH, load_seed_example

HOST = "https://api.au1.cliniko.com"
# Basic auth: the key is the user name, the password is empty.
AUTH = {"Authorization": "Basic " + base64.b64encode(b"MS0xtestkey-au1:").decode()}

# (seed example, component schema)
SCHEMA_CASES = [
    ("list_response", "ContactList"),
    ("get_response", "Contact"),
    ("create_response", "Contact"),
    ("update_response", "Contact"),
    ("create_request", "ContactWrite"),
    ("update_request", "ContactWrite"),
]


@pytest.fixture(scope="module")
def openapi() -> OpenAPI:
    return OpenAPI.from_file_path(str(SPEC_PATH))


@pytest.mark.parametrize(("example", "component"), SCHEMA_CASES)
def test_seed_example_validates_against_its_schema(schema_validator, example, component) -> None:
    errors = list(schema_validator(component).iter_errors(load_seed_example(example)))
    assert errors == []


@pytest.mark.parametrize(
    ("example", "pointer"),
    [
        ("list_response", ("/contacts", "get", "200", "content")),
        ("get_response", ("/contacts/{id}", "get", "200", "content")),
        ("create_response", ("/contacts", "post", "201", "content")),
        ("create_request", ("/contacts", "post", None, "requestBody")),
        ("update_request", ("/contacts/{id}", "put", None, "requestBody")),
        ("update_response", ("/contacts/{id}", "put", "200", "content")),
    ],
)
def test_spec_carries_the_seed_examples_verbatim(spec, example, pointer) -> None:
    path, method, status, where = pointer
    operation = spec["paths"][path][method]
    body = operation["requestBody"] if where == "requestBody" else operation["responses"][status]
    if "$ref" in body:  # a shared response (the update's, PUT's and PATCH's)
        body = spec["components"]["responses"][body["$ref"].rsplit("/", 1)[-1]]
    value = body["content"]["application/json"]["examples"]["seed"]["value"]
    assert value == load_seed_example(example)


def test_list_exchange_validates(openapi) -> None:
    request = MockRequest(
        HOST,
        "get",
        "/v1/contacts",
        args={"page": "1", "per_page": "100", "q[]": ["id:=1"]},
        headers=AUTH,
    )
    body = json.dumps(load_seed_example("list_response")).encode()
    openapi.validate_response(request, MockResponse(body, status_code=200))


def test_get_exchange_validates(openapi) -> None:
    request = MockRequest(HOST, "get", "/v1/contacts/1", headers=AUTH)
    openapi.validate_request(request)
    body = json.dumps(load_seed_example("get_response")).encode()
    openapi.validate_response(request, MockResponse(body, status_code=200))


def test_create_exchange_validates(openapi) -> None:
    request = MockRequest(
        HOST,
        "post",
        "/v1/contacts",
        headers=AUTH,
        data=json.dumps(load_seed_example("create_request")).encode(),
    )
    openapi.validate_request(request)
    response = MockResponse(
        json.dumps(load_seed_example("create_response")).encode(),
        status_code=201,
        headers={"Location": "http://api.cliniko.com/contacts/1"},
    )
    openapi.validate_response(request, response)


@pytest.mark.parametrize("method", ["put", "patch"])
def test_update_exchange_validates(openapi, method) -> None:
    # The seed documents PUT; PATCH, today's update, takes and answers the same bodies.
    request = MockRequest(
        HOST,
        method,
        "/v1/contacts/12",
        headers=AUTH,
        data=json.dumps(load_seed_example("update_request")).encode(),
    )
    openapi.validate_request(request)
    body = json.dumps(load_seed_example("update_response")).encode()
    openapi.validate_response(request, MockResponse(body, status_code=200))


@pytest.mark.parametrize(
    ("method", "path"), [("delete", "/v1/contacts/1"), ("post", "/v1/contacts/1/archive")]
)
def test_archive_exchanges_answer_204_without_a_body(openapi, method, path) -> None:
    # The seed: "A status code of 204 no content will be returned if successful".
    request = MockRequest(HOST, method, path, headers=AUTH)
    openapi.validate_request(request)
    openapi.validate_response(request, MockResponse(b"", status_code=204, content_type=None))


# The error bodies the reference documents, as Cliniko words them (U+2019 apostrophe, a null
# message beside a string one).
REFUSED_FILTER = {"message": "notes is not filterable"}
VALIDATION_FAILED = {
    "message": "Validation Failed",
    "errors": {"first_name": "can\u2019t be blank", "last_name": None},
}


def test_documented_error_bodies_validate(openapi, schema_validator) -> None:
    assert list(schema_validator("ErrorMessage").iter_errors(REFUSED_FILTER)) == []
    assert list(schema_validator("ValidationError").iter_errors(VALIDATION_FAILED)) == []
    listing = MockRequest(HOST, "get", "/v1/contacts", args={"q[]": ["notes:=x"]}, headers=AUTH)
    refused = json.dumps(REFUSED_FILTER).encode()
    openapi.validate_response(listing, MockResponse(refused, status_code=400))
    create = MockRequest(
        HOST, "post", "/v1/contacts", headers=AUTH, data=json.dumps({"first_name": ""}).encode()
    )
    failed = json.dumps(VALIDATION_FAILED, ensure_ascii=False).encode()
    openapi.validate_response(create, MockResponse(failed, status_code=422))
    throttled = MockResponse(
        b"", status_code=429, content_type=None, headers={"X-RateLimit-Reset": "1763924400"}
    )
    openapi.validate_response(listing, throttled)


def test_validation_errors_are_strings_not_lists(schema_validator) -> None:
    listed = VALIDATION_FAILED | {"errors": {"first_name": ["can\u2019t be blank"]}}
    assert list(schema_validator("ValidationError").iter_errors(listed)) != []


def test_requests_without_basic_auth_fail_validation(openapi) -> None:
    with pytest.raises(SecurityValidationError):
        openapi.validate_request(MockRequest(HOST, "get", "/v1/contacts/1"))


def test_ids_in_paths_are_decimal(openapi) -> None:
    for good in ("1", str(2**63 - 1), "0" + "9" * 18):
        openapi.validate_request(MockRequest(HOST, "get", f"/v1/contacts/{good}", headers=AUTH))
    # Past int64's maximum (nineteen digits reach 9999999999999999999) no Cliniko id can be.
    for bad in ("1.5", str(2**63), "9" * 19, "1" * 20):
        with pytest.raises(OpenAPIError):
            openapi.validate_request(MockRequest(HOST, "get", f"/v1/contacts/{bad}", headers=AUTH))


def test_the_id_pattern_stops_at_int64s_maximum(spec) -> None:
    # The pattern spells out 9223372036854775807 digit by digit; held here to the number.
    digits = spec["components"]["schemas"]["ContactIdDigits"]["pattern"]
    shared = spec["components"]["parameters"]["ContactId"]["schema"]
    assert shared == {"$ref": "#/components/schemas/ContactIdDigits"}
    limit = 2**63 - 1
    edges = [0, 1, 10**18 - 1, 10**18, limit - 1, limit, limit + 1, 10**19 - 1, 10**19]
    rng = random.Random(63)
    samples = edges + [rng.randrange(10**19) for _ in range(2000)]
    samples += [limit + rng.randrange(-(10**k), 10**k) for k in range(1, 19) for _ in range(50)]
    for number in samples:
        assert bool(re.search(digits, str(number))) is (number <= limit), number
    assert re.search(digits, str(limit).zfill(19)) and not re.search(digits, "-1")


def test_todays_contacts_validate(schema_validator) -> None:
    contact = load_seed_example("get_response") | {
        "id": "1390712996921091568",
        "doctor_type": "",  # real data: Cliniko's other "not set"
        "archived_at": "2024-03-01T10:00:00Z",
        "country_code": None,
        "phone_numbers": [
            {"number": "0400 000 000", "phone_type": "Mobile", "normalized_number": "61400000000"}
        ],
    }
    assert list(schema_validator("Contact").iter_errors(contact)) == []


@pytest.mark.parametrize(
    ("component", "change"),
    [
        ("Contact", {"id": 1.5}),
        ("Contact", {"id": "12a"}),
        ("Contact", {"id": None}),
        ("Contact", {"id": str(2**63)}),
        ("Contact", {"id": 2**63}),
        ("Contact", {"doctor_type": "surgeon"}),
        ("Contact", {"type_code": 3}),
        ("Contact", {"created_at": "yesterday"}),
        ("Contact", {"links": {}}),
        ("Contact", {"phone_numbers": [{"phone_type": "Mobile"}]}),
        ("ContactList", {"links": {"self": "https://x.example/contacts", "next": None}}),
        ("ContactList", {"total_entries": -1}),
        ("ContactWrite", {"country_code": "au"}),
        ("ContactWrite", {"country_code": "AUS"}),
        ("ContactWrite", {"first_name": "x" * 256}),
        ("ContactWrite", {"email": "x" * 256}),
        ("ContactWrite", {"phone_numbers": [{"number": "1", "phone_type": "Pager"}]}),
        ("ContactWrite", {"phone_numbers": [{"number": "1"}]}),
        ("ContactWrite", {"type_code": "1"}),
        ("ContactWrite", {"doctor_type": "surgeon"}),
        # Cliniko documents two values and null to clear; "" is only in what it returns.
        ("ContactWrite", {"doctor_type": ""}),
    ],
)
def test_schemas_reject_what_cliniko_does_not_send_or_take(
    schema_validator, component, change
) -> None:
    base = {
        "Contact": "get_response",
        "ContactList": "list_response",
        "ContactWrite": "create_request",
    }[component]
    body = load_seed_example(base) | change
    assert list(schema_validator(component).iter_errors(body)) != []


def test_write_schema_takes_nulls_to_clear(schema_validator) -> None:
    body = {
        "first_name": "x" * 255,
        "doctor_type": None,
        "country_code": None,
        "type_code": 2,
        "phone_numbers": [{"number": "0400 000 000", "phone_type": "Fax"}],
    }
    assert list(schema_validator("ContactWrite").iter_errors(body)) == []
