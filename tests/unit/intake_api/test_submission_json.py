"""The submission's JSON: the content hash a redelivery is recognised by stays what it was
when the draft was a pydantic model, what the store holds reads back the same, and the readers
refuse what pydantic refused (and a few things it took)."""

from __future__ import annotations

import copy
import json
from datetime import UTC, datetime

import pytest
from cliniko_automations.intake.submission import (
    ContactDraft,
    DraftInvalid,
    PhoneNumber,
    QueuedSubmission,
    Submission,
    SubmissionInvalid,
)
from cliniko_automations.intake_api.accept import idempotency_key
from hypothesis import given, settings
from hypothesis import strategies as st
from pydantic import TypeAdapter

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
    assert idempotency_key("s", None, AWKWARD, sender_chosen=False) == (
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


STORED = Submission(
    submission_id="id-1",
    idempotency_key="s:1",
    source="s",
    provider="typeform",
    account="main",
    received_at=datetime(2026, 12, 2, 1, 2, 3, 456789, tzinfo=UTC),
    draft=AWKWARD,
    submitted_at=datetime(2026, 12, 2, 1, 0, tzinfo=UTC),
)


def test_a_stored_submission_reads_back_equal_and_is_checked():
    text = STORED.to_json()
    assert '"received_at":"2026-12-02T01:02:03.456789Z"' in text
    assert Submission.from_json(text) == STORED
    assert Submission.from_json(text.encode()) == STORED
    assert text == TypeAdapter(Submission).dump_json(STORED).decode("utf-8")
    with pytest.raises(SubmissionInvalid) as caught:
        Submission.from_json(text.replace('"type_code":1', '"type_code":7'))
    assert caught.value.problems == [("draft.type_code", "invalid")]


@pytest.mark.parametrize(
    ("text", "problems"),
    [
        ("{", [("body", "must be JSON")]),
        (b"\xff", [("body", "must be JSON")]),
        ("[" * 100_000 + "]" * 100_000, [("body", "must be JSON")]),
        ('["a"]', [("body", "must be a JSON object")]),
        # A key the reader does not know is counted, never named: it could be anyone's text.
        (
            STORED.to_json().replace('"source":"s"', '"source":"s","ana@example.com":1'),
            [("body", "1 unknown field(s)")],
        ),
        (
            STORED.to_json().replace('"title":null', '"ana@example.com":null'),
            [("draft", "1 unknown field(s)")],
        ),
        ('{"draft": "ana@example.com"}', None),
    ],
)
def test_a_stored_submission_that_is_not_one_is_named_without_its_values(text, problems):
    with pytest.raises(SubmissionInvalid) as caught:
        Submission.from_json(text)
    assert "ana@example.com" not in str(caught.value)
    if problems is not None:
        assert caught.value.problems == problems
    else:
        assert ("draft", "must be an object") in caught.value.problems
        assert ("received_at", "is required") in caught.value.problems


# Every field of a stored submission, and of its draft and phone number, set to each of these
# (or left out), read by the reader and by pydantic's TypeAdapter of the same dataclasses:
# what pydantic took is what the reader takes, but for these, on purpose. A time must carry
# its offset (`made_at` compares it with aware times, and a naive one failed the message
# after pydantic took it); a number is not a time (pydantic read it as Unix seconds); and a
# type code is a number, not true or false (pydantic took True for 1).
LEFT_OUT = object()
NUMBERS_AND_LOOSE_TIMES = (0, 1, 7, 1.5, "1", 1764637323, "2026-12-02T01:02:03", "2026-12-02")
VALUES = [LEFT_OUT, None, True, False, "", "x", "Work", "fill_blanks", "specialist", [], {}]
VALUES += [[{"number": "1"}], [{"number": 1}], "2026-12-02T01:02:03Z"]
VALUES += ["2026-12-02T01:02:03+10:00", *NUMBERS_AND_LOOSE_TIMES]
ONLY_PYDANTIC_TOOK = [
    ((name,), value)
    for name in ("received_at", "submitted_at", "first_received_at")
    for value in NUMBERS_AND_LOOSE_TIMES
] + [(("draft", "type_code"), True), (("draft", "type_code"), False)]


def test_the_reader_takes_what_pydantic_took_but_for_loose_times_and_true_codes():
    stored = json.loads(STORED.to_json())
    paths = [(name,) for name in stored] + [("draft", name) for name in stored["draft"]]
    paths += [("draft", "phone_numbers", 0, "number"), ("draft", "phone_numbers", 0, "phone_type")]
    pydantics = TypeAdapter(Submission)
    differ = []
    for path in paths:
        for value in VALUES:
            values = copy.deepcopy(stored)
            parent = values
            for step in path[:-1]:
                parent = parent[step]
            if value is LEFT_OUT:
                del parent[path[-1]]
            else:
                parent[path[-1]] = value
            text = json.dumps(values)
            ours, theirs = read(Submission.from_json, text), read(pydantics.validate_json, text)
            if ours != theirs:
                differ.append((path, value))
                assert ours is None, (path, value)
    assert len(paths) * len(VALUES) > 600
    assert sorted(map(repr, differ)) == sorted(map(repr, ONLY_PYDANTIC_TOOK))


def read(reader, text):
    try:
        return reader(text)
    except ValueError:  # pydantic's ValidationError is one too
        return None


def test_a_queue_message_is_ids_only_and_checked_when_read():
    message = QueuedSubmission(submission_id="id-1", source="s")
    assert message.to_json() == '{"submission_id":"id-1","source":"s"}'
    assert QueuedSubmission.from_json(message.to_json()) == message
    for bad, problems in [
        (
            '{"submission_id":"","source":"s"}',
            [("body", "submission_id is 1-100 characters, source 1-200")],
        ),
        ('{"submission_id":"x"}', [("source", "is required")]),
        ('{"submission_id":"x","source":1}', [("source", "must be a string")]),
        ('{"submission_id":"x","source":"s","draft":{}}', [("body", "1 unknown field(s)")]),
        ("[]", [("body", "must be a JSON object")]),
        ("{", [("body", "must be JSON")]),
    ]:
        with pytest.raises(SubmissionInvalid) as caught:
            QueuedSubmission.from_json(bad)
        assert caught.value.problems == problems


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
