"""Whatever arrives, the core answers with one of its own refusals: never an exception that
would become a 500. Property-based over the parsers and the mapping."""

from __future__ import annotations

import json

from cliniko_automations.intake.config import load_form_sources
from cliniko_automations.intake_api.errors import FieldsInvalid, MalformedBody
from cliniko_automations.intake_api.mapping import map_answers
from cliniko_automations.intake_api.providers import ADAPTERS
from cliniko_automations.intake_api.providers.base import Delivery, Parsed
from cliniko_automations.intake_api.validation import validate_draft
from hypothesis import given, settings
from hypothesis import strategies as st

SOURCES = load_form_sources().sources
JSON_VALUES = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(max_size=20),
    lambda children: (
        st.lists(children, max_size=4) | st.dictionaries(st.text(max_size=10), children, max_size=4)
    ),
    max_leaves=20,
)
CONTENT_TYPES = {
    "typeform": "application/json",
    "tally": "application/json",
    "webflow": "application/json",
    "formspree": "application/json",
    "json": "application/json",
    "jotform": "multipart/form-data; boundary=b",
    "html": "application/x-www-form-urlencoded",
}


def _parse(provider: str, body: bytes) -> Parsed | None:
    delivery = Delivery(body, {}, {}, CONTENT_TYPES[provider])
    try:
        return ADAPTERS[provider].parse(delivery)
    except MalformedBody:
        return None


@settings(max_examples=100, deadline=None)
@given(provider=st.sampled_from(sorted(ADAPTERS)), body=st.binary(max_size=200))
def test_any_bytes_parse_or_are_malformed(provider, body):
    _parse(provider, body)


@settings(max_examples=100, deadline=None)
@given(provider=st.sampled_from(sorted(ADAPTERS)), data=JSON_VALUES)
def test_any_json_parses_or_is_malformed(provider, data):
    _parse(provider, json.dumps(data).encode())


@settings(max_examples=120, deadline=None)
@given(
    source=st.sampled_from(sorted(SOURCES)),
    answers=st.dictionaries(st.text(max_size=12), JSON_VALUES, max_size=6),
    mapped_ids=st.lists(JSON_VALUES, max_size=8),
)
def test_any_answers_map_to_a_draft_or_a_422(source, answers, mapped_ids):
    config = SOURCES[source]
    # Put arbitrary values under the ids the source really maps, not only under random keys.
    for rule, value in zip(config.fields, mapped_ids, strict=False):
        answers[rule.from_] = value
    normalised = _parse("json", json.dumps(answers).encode())
    assert normalised is not None
    try:
        validate_draft(map_answers(normalised.answers, config), config)
    except FieldsInvalid as exc:
        assert exc.errors
