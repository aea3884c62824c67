"""The submission's JSON: the content hash a redelivery is recognised by stays what it was
when the draft was a pydantic model, and what the store holds reads back the same."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest
from cliniko_automations.intake.submission import (
    ContactDraft,
    DraftInvalid,
    PhoneNumber,
    QueuedSubmission,
    Submission,
)
from cliniko_automations.intake_api.accept import idempotency_key
from hypothesis import given, settings
from hypothesis import strategies as st
from pydantic import TypeAdapter, ValidationError

AWKWARD = ContactDraft(
    first_name='Zoë "Q"\\',
    last_name="Ng\u2028\x1f\x7f\n\t",
    email="a@b.co",
    type_code=1,
    phone_numbers=(PhoneNumber(number="0400 000 000", phone_type="Work"),),
    notes="😀 <b>&amp;</b>",
)


def test_the_content_hash_is_the_one_the_pydantic_model_gave():
    # Computed with the pydantic ContactDraft (model_dump_json(exclude_none=True)) before it
    # became a dataclass: a provider's redelivery across that deploy keeps its key.
    assert idempotency_key("s", None, AWKWARD) == (
        "s:sha256:f79197a219dd8e4e8da4b9412415b5097f7ecd8a7058f622b75bdc41d34a9ba0"
    )


TEXT = st.none() | st.text(st.characters(exclude_categories=["Cs"]), max_size=30)


@settings(max_examples=200, deadline=None)
@given(
    first=TEXT,
    notes=TEXT,
    type_code=st.sampled_from([None, 0, 1, 2]),
    numbers=st.lists(st.text(st.characters(exclude_categories=["Cs"]), max_size=10), max_size=2),
)
def test_canonical_json_is_pydantics_for_any_text(first, notes, type_code, numbers):
    draft = ContactDraft(
        first_name=first,
        notes=notes,
        type_code=type_code,
        phone_numbers=tuple(PhoneNumber(number=n) for n in numbers),
    )
    pydantics = TypeAdapter(ContactDraft).dump_json(draft, exclude_none=True).decode("utf-8")
    assert draft.canonical_json() == pydantics


def test_a_stored_submission_reads_back_equal_and_is_validated():
    submission = Submission(
        submission_id="id-1",
        idempotency_key="s:1",
        source="s",
        provider="typeform",
        account="main",
        received_at=datetime(2026, 12, 2, 1, 2, 3, 456789, tzinfo=UTC),
        draft=AWKWARD,
        submitted_at=datetime(2026, 12, 2, 1, 0, tzinfo=UTC),
    )
    text = submission.to_json()
    assert '"received_at":"2026-12-02T01:02:03.456789Z"' in text
    assert Submission.from_json(text) == submission
    assert text == TypeAdapter(Submission).dump_json(submission).decode("utf-8")
    with pytest.raises(ValidationError):
        Submission.from_json(text.replace('"type_code":1', '"type_code":7'))
    with pytest.raises(ValidationError):
        Submission.from_json(text.replace('"source":"s"', '"source":"s","extra":1'))


def test_a_queue_message_is_ids_only_and_checked_when_read():
    message = QueuedSubmission(submission_id="id-1", source="s")
    assert message.to_json() == '{"submission_id":"id-1","source":"s"}'
    assert QueuedSubmission.from_json(message.to_json()) == message
    for bad in ('{"submission_id":"","source":"s"}', '{"submission_id":"x"}', "[]", "{"):
        with pytest.raises(ValidationError):
            QueuedSubmission.from_json(bad)


@pytest.mark.parametrize(
    ("fields", "invalid"),
    [
        ({"first_name": "A", "doctor_type": ""}, ["doctor_type"]),
        ({"first_name": "A", "type_code": True}, ["type_code"]),
        ({"first_name": 3}, ["first_name"]),
        ({"first_name": "A", "nickname": "x"}, ["nickname"]),
        ({"first_name": "A", "phone_numbers": [{"number": "1", "kind": "x"}]}, ["phone_numbers"]),
        ({"first_name": "A", "phone_numbers": None}, ["phone_numbers"]),
    ],
)
def test_a_draft_names_every_field_it_cannot_hold(fields, invalid):
    with pytest.raises(DraftInvalid) as caught:
        ContactDraft.from_fields(fields)
    assert caught.value.fields == invalid


def test_a_draft_holds_what_the_rules_let_through():
    draft = ContactDraft.from_fields(
        {"first_name": "A", "type_code": 2, "phone_numbers": [{"number": "1"}]}
    )
    assert draft.phone_numbers == (PhoneNumber(number="1", phone_type="Mobile"),)
    assert draft.cliniko_fields() == {
        "first_name": "A",
        "type_code": 2,
        "phone_numbers": [{"number": "1", "phone_type": "Mobile"}],
    }
