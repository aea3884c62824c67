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

from tests.unit.intake_api import samples

SOURCES = load_form_sources().sources
# JSON's values: its numbers are finite (the loader refuses NaN and Infinity, which
# test_hostile_input.py holds it to).
JSON_VALUES = st.recursive(
    st.none()
    | st.booleans()
    | st.integers()
    | st.floats(allow_nan=False, allow_infinity=False)
    | st.text(max_size=20),
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


# Each provider's real payload shape, to change leaves of: random JSON alone rarely gets past a
# parser's first check, and a bug deeper in (a Tally option lookup once raised on a nested
# answer) waits behind it.
SAMPLE_PAYLOADS = {
    "typeform": lambda: json.loads(samples.typeform_body()),
    "tally": lambda: json.loads(samples.tally_body()),
    "webflow": lambda: json.loads(samples.webflow_body()),
    "formspree": lambda: json.loads(samples.formspree_body()),
    "jotform": samples.jotform_raw_request,
}
SOURCE_OF = {config.provider: name for name, config in sorted(SOURCES.items())}


def _delivery(provider: str, payload: object) -> Delivery:
    if provider == "jotform":
        body, content_type = samples.multipart(
            {"formID": "1", "submissionID": "5", "rawRequest": json.dumps(payload)}
        )
        return Delivery(body, {}, {}, content_type)
    return Delivery(json.dumps(payload).encode(), {}, {}, "application/json")


@settings(max_examples=1000, deadline=None)
@given(
    provider=st.sampled_from(sorted(SAMPLE_PAYLOADS)),
    replacements=st.lists(st.tuples(st.integers(0, 199), JSON_VALUES), min_size=1, max_size=6),
)
def test_a_provider_payload_with_any_values_maps_to_a_draft_or_a_refusal(provider, replacements):
    payload = samples.with_values(SAMPLE_PAYLOADS[provider](), replacements)
    config = SOURCES[SOURCE_OF[provider]]
    try:
        parsed = ADAPTERS[provider].parse(_delivery(provider, payload))
        if not parsed.ignored:
            validate_draft(map_answers(parsed.answers, config), config)
    except (MalformedBody, FieldsInvalid) as exc:
        assert str(exc)
