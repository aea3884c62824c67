"""openapi.yaml is a valid OpenAPI 3.1 document that says what the project relies on."""

from __future__ import annotations

import re
from typing import Any

from cliniko_automations.cliniko import rules
from openapi_spec_validator import validate
from openapi_spec_validator.readers import read_from_filename

from .conftest import SPEC_PATH

METHODS = {"get", "put", "post", "delete", "patch", "head", "options", "trace"}


def _operations(spec: dict[str, Any]) -> list[tuple[str, str, dict[str, Any]]]:
    return [
        (path, method, operation)
        for path, item in spec["paths"].items()
        for method, operation in item.items()
        if method in METHODS
    ]


def _resolve(spec: dict[str, Any], node: dict[str, Any]) -> dict[str, Any]:
    while "$ref" in node:
        target: Any = spec
        for part in node["$ref"].removeprefix("#/").split("/"):
            target = target[part]
        node = target
    return node


def test_openapi_spec_validator_accepts_the_document() -> None:
    document, base_uri = read_from_filename(str(SPEC_PATH))
    validate(document, base_uri=base_uri)
    assert document["openapi"].startswith("3.1.")


def test_every_operation_has_an_operation_id_a_summary_and_a_declared_tag(spec) -> None:
    declared_tags = {tag["name"] for tag in spec["tags"]}
    operation_ids = []
    for path, method, operation in _operations(spec):
        where = f"{method.upper()} {path}"
        assert operation.get("operationId"), where
        assert operation.get("summary"), where
        assert operation.get("tags"), where
        assert set(operation["tags"]) <= declared_tags, where
        operation_ids.append(operation["operationId"])
    assert len(operation_ids) == len(set(operation_ids))


def test_the_documented_operations_are_all_there(spec) -> None:
    found = {(method, path) for path, method, _ in _operations(spec)}
    assert found == {
        ("get", "/contacts"),
        ("post", "/contacts"),
        ("get", "/contacts/{id}"),
        ("put", "/contacts/{id}"),
        ("patch", "/contacts/{id}"),
        ("delete", "/contacts/{id}"),
        ("post", "/contacts/{id}/archive"),
    }


def test_servers_take_the_shard_and_auth_is_basic(spec) -> None:
    (server,) = spec["servers"]
    assert server["url"] == "https://api.{shard}.cliniko.com/v1"
    assert server["variables"]["shard"]["default"] == "au1"
    assert spec["security"] == [{"basicAuth": []}]
    assert spec["components"]["securitySchemes"]["basicAuth"] == {
        **spec["components"]["securitySchemes"]["basicAuth"],
        "type": "http",
        "scheme": "basic",
    }


def test_list_parameters(spec) -> None:
    parameters = {p["name"]: p for p in spec["paths"]["/contacts"]["get"]["parameters"]}
    assert set(parameters) == {"page", "per_page", "sort", "q[]"}
    per_page = parameters["per_page"]["schema"]
    assert (per_page["minimum"], per_page["maximum"]) == (1, 100)
    q = parameters["q[]"]
    assert q["in"] == "query"
    assert (q["style"], q["explode"]) == ("form", True)
    assert q["schema"] == {"type": "array", "items": {"type": "string"}}


def test_create_answers_201_with_a_location(spec) -> None:
    created = spec["paths"]["/contacts"]["post"]["responses"]["201"]
    assert created["headers"]["Location"]["schema"]["format"] == "uri"
    assert created["content"]["application/json"]["schema"] == {
        "$ref": "#/components/schemas/Contact"
    }


def test_delete_is_described_as_the_archive_it_is(spec) -> None:
    delete = spec["paths"]["/contacts/{id}"]["delete"]
    assert delete["deprecated"] is True
    assert "archive" in delete["summary"].lower()
    assert "does **not** delete" in delete["description"]
    assert "no hard delete" in delete["description"]
    assert set(delete["responses"]) >= {"204", "404"}
    assert "content" not in delete["responses"]["204"]
    archive = spec["paths"]["/contacts/{id}/archive"]["post"]
    assert "content" not in archive["responses"]["204"]


def test_error_responses(spec) -> None:
    for path, method, operation in _operations(spec):
        responses = operation["responses"]
        where = f"{method.upper()} {path}"
        assert {"400", "401", "403", "429", "500", "502", "503", "504"} <= set(responses), where
        if method in {"put", "patch"} or (method, path) == ("post", "/contacts"):
            assert "422" in responses, where
        if "{id}" in path:
            assert "404" in responses, where

    components = spec["components"]
    throttled = components["responses"]["TooManyRequests"]["headers"]
    reset = _resolve(spec, throttled["X-RateLimit-Reset"])
    assert reset["required"] is True
    assert reset["schema"]["type"] == "integer"
    assert _resolve(spec, throttled["Retry-After"])["required"] is False

    validation = components["schemas"]["ValidationError"]
    assert validation["properties"]["errors"]["additionalProperties"] == {
        "type": ["string", "null"]
    }
    assert components["schemas"]["ErrorMessage"]["required"] == ["message"]


def test_list_links_next_and_previous_are_optional_and_never_null(spec) -> None:
    links = spec["components"]["schemas"]["ContactListLinks"]
    assert links["required"] == ["self"]
    for name in ("next", "previous"):
        assert links["properties"][name]["type"] == "string"


def test_write_schema_matches_the_shared_field_rules(spec) -> None:
    schemas = spec["components"]["schemas"]
    write = schemas["ContactWrite"]["properties"]
    read = schemas["Contact"]["properties"]
    assert set(write) == rules.WRITABLE_FIELDS
    assert set(write) < set(read)
    read_only = {name for name, field in read.items() if field.get("readOnly")}
    assert read_only == {
        "id",
        "created_at",
        "updated_at",
        "archived_at",
        "deleted_at",
        "country",
        "type",
        "links",
    }
    assert not read_only & set(write)
    limited = {name for name, field in write.items() if field.get("maxLength") == rules.MAX_LENGTH}
    assert limited == rules.LENGTH_LIMITED_FIELDS
    assert not any("maxLength" in write[name] for name in rules.UNBOUNDED_STRING_FIELDS)
    assert write["country_code"]["pattern"] == "^[A-Z]{2}$"
    # What the intake sends is what the spec takes: a code the pattern refuses ("", "au") went
    # to Cliniko, which the spec says refuses it (an unassigned "XX" the pattern cannot tell).
    pattern = re.compile(write["country_code"]["pattern"])
    for code in ["", "AU", "au", "Au", "NZ", "XX", "AUS", "A", " AU", "É1"]:
        assert not rules.is_country_code(code) or pattern.search(code), code
        assert rules.is_country_code(code) == (bool(pattern.search(code)) and code != "XX"), code
    assert set(schemas["PhoneType"]["enum"]) == set(rules.PHONE_TYPES)
    assert schemas["TypeCode"]["enum"] == sorted(rules.TYPE_NAMES)
    assert schemas["ContactType"]["enum"] == list(rules.TYPE_NAMES.values())
    # Documented values plus the blank that real data holds (see DoctorType's description).
    assert schemas["DoctorType"]["enum"] == [*rules.DOCTOR_TYPES, ""]
    # Writes take the documented values only (null clears).
    assert schemas["DoctorTypeWrite"]["enum"] == list(rules.DOCTOR_TYPES)
    assert write["doctor_type"]["anyOf"][0] == {"$ref": "#/components/schemas/DoctorTypeWrite"}
    assert schemas["PhoneNumberWrite"]["required"] == ["number", "phone_type"]
    assert set(schemas["PhoneNumberWrite"]["properties"]) == {"number", "phone_type"}


def test_contact_has_every_field_of_the_seed_and_the_reference(spec) -> None:
    read = spec["components"]["schemas"]["Contact"]
    seed_fields = {
        "id", "created_at", "updated_at", "address_1", "address_2", "address_3", "city",
        "company_name", "country_code", "deleted_at", "doctor_type", "email", "first_name",
        "last_name", "notes", "occupation", "phone_numbers", "post_code", "preferred_name",
        "provider_number", "state", "title", "country", "type", "type_code", "links",
    }  # fmt: skip
    assert set(read["properties"]) == seed_fields | {"archived_at"}
    # Not `links`: no code reads a contact's own link, and a Cliniko that left it out loses nothing.
    assert read["required"] == ["id", "created_at", "updated_at"]
    phone = spec["components"]["schemas"]["PhoneNumber"]["properties"]
    assert set(phone) == {"number", "phone_type", "normalized_number"}
    assert phone["normalized_number"]["readOnly"] is True
