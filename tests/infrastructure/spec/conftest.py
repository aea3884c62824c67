"""Fixtures of the spec tests: openapi.yaml, the seed's example bodies, schema validators."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
import yaml
from jsonschema import Draft202012Validator
from openapi_schema_validator import OAS31Validator, oas31_format_checker
from referencing import Registry, Resource
from referencing.jsonschema import DRAFT202012

ROOT = Path(__file__).resolve().parents[3]
SPEC_PATH = ROOT / "openapi.yaml"
SEED_EXAMPLES = ROOT / "tests" / "data" / "seed_examples"
SPEC_URI = "urn:cliniko-contacts:openapi"


def load_seed_example(name: str) -> Any:
    return json.loads((SEED_EXAMPLES / f"{name}.json").read_text(encoding="utf-8"))


@pytest.fixture(scope="session")
def spec() -> dict[str, Any]:
    return yaml.safe_load(SPEC_PATH.read_text(encoding="utf-8"))


@pytest.fixture(scope="session")
def schema_validator(spec: dict[str, Any]) -> Callable[[str], Draft202012Validator]:
    """A validator of one component schema, with the OpenAPI 3.1 dialect and format checks."""
    registry = Registry().with_resource(
        SPEC_URI, Resource.from_contents(spec, default_specification=DRAFT202012)
    )

    def validator(component: str) -> Draft202012Validator:
        schema = {"$ref": f"{SPEC_URI}#/components/schemas/{component}"}
        return OAS31Validator(schema, registry=registry, format_checker=oas31_format_checker)

    return validator
