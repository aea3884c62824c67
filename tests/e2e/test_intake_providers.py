"""End to end per provider: a signed sample delivery becomes exactly one Cliniko contact.

A genuine HTTP API v2 event goes into the intake API handler (202, or 303 for a browser
form), the message it queued in SQS (moto) is handed to the worker handler as Lambda's SQS
poller would, and the worker writes to the Cliniko emulator over HTTP. The contact must carry
the fields the source's mapping produced; a second delivery of the same sample (a provider
retry) must not make a second contact.
"""

from __future__ import annotations

import json

import pytest
from cliniko_automations.intake_worker.find_or_create import phone_digits, phones_match

from tests.fixtures.apigw import form_post_event
from tests.integration.intake_worker.e2e_world import (
    PROVIDER_SOURCES,
    IntakePath,
    build_intake_path,
    delivery,
)
from tests.integration.intake_worker.resources import stored_submission
from tests.unit.intake_api import samples

# What each shipped source maps beyond the name, email and phone every sample carries.
EXPECTED = {
    "typeform": {"company_name": "Harbour Medical", "country_code": "AU", "type_code": 1},
    "tally": {
        "company_name": "Harbour Medical",
        "country_code": "NZ",
        "doctor_type": "general_practitioner",
        "type_code": 1,
    },
    "webflow": {"country_code": "GB", "notes": "Website enquiry: Please call me", "type_code": 0},
    "formspree": {"company_name": "Blue Shield Health", "type_code": 2},
    "jotform": {"city": "Sydney", "state": "NSW", "post_code": "2000", "country_code": "AU"},
    "html": {
        "company_name": "Harbour Medical",
        "notes": "Message from the website form: Please call",
        "type_code": 0,
    },
    "json": {
        "company_name": "Partner Physio",
        "country_code": "NZ",
        "doctor_type": "specialist",
        "type_code": 1,
    },
}


@pytest.fixture
def path(aws, cliniko, monkeypatch, tmp_path) -> IntakePath:
    return build_intake_path(cliniko, monkeypatch, tmp_path)


def accepted(answer: dict) -> None:
    if answer["statusCode"] == 303:  # a browser form: redirected to the success page
        assert "submission_id=" in answer["headers"]["Location"]
    else:
        assert answer["statusCode"] == 202, answer
        assert json.loads(answer["body"])["submission_id"]


@pytest.mark.parametrize("provider", list(PROVIDER_SOURCES))
def test_signed_sample_becomes_exactly_one_contact(path: IntakePath, cliniko, provider) -> None:
    accepted(path.post(delivery(provider)))
    [queued] = path.stack.receive(visibility=0)
    submission = stored_submission(path.stack.dynamodb, path.stack.submission_table, queued["Body"])
    assert submission.source == PROVIDER_SOURCES[provider]

    assert path.work() == 1
    [contact] = cliniko.control.contacts()
    assert (contact["first_name"], contact["last_name"]) == (samples.FIRST, samples.LAST)
    assert contact["email"].lower() == samples.EMAIL
    stored_phone = phone_digits(contact["phone_numbers"][0]["number"])
    assert phones_match(stored_phone, phone_digits(samples.PHONE))
    for field, value in EXPECTED[provider].items():
        assert contact[field] == value, field
    # Everything the mapping produced arrived, nothing else was invented.
    for field, value in submission.draft.cliniko_fields().items():
        if field == "phone_numbers":
            sent = [(p["number"], p["phone_type"]) for p in value]
            stored = [(p["number"], p["phone_type"]) for p in contact["phone_numbers"]]
            assert stored == sent
        else:
            assert contact[field] == value, field
    [entry] = path.stack.ledger_items()
    assert entry["contact_id"] == contact["id"]
    assert entry["source"] == submission.source
    assert entry["submission_id"] == submission.submission_id

    # The provider delivers the same submission again: still one contact.
    accepted(path.post(delivery(provider)))
    assert path.work() == 1
    assert len(cliniko.control.contacts()) == 1
    assert path.stack.counts(path.stack.queue_url) == (0, 0)
    assert path.stack.counts(path.stack.dead_letter_queue_url) == (0, 0)


def test_a_senders_key_sent_again_with_other_details_is_another_submission(
    path: IntakePath, cliniko
) -> None:
    # A partner script that sends one Idempotency-Key with every post (a constant, a counter
    # reset by a restart): the second person was answered from the first's outcome, and lost.
    def post(body: bytes) -> None:
        headers = {
            "Content-Type": "application/json",
            "X-Signature": samples.t_v1_signature(body),
            "Idempotency-Key": "order-1",
        }
        accepted(path.post(form_post_event("partner-json", body, headers)))

    post(samples.json_body())
    post(samples.json_body(first_name="Bartholomew", last_name="Quist", email="b@example.net"))
    post(samples.json_body())  # the first again: a redelivery

    assert path.work() == 3
    names = sorted(contact["last_name"] for contact in cliniko.control.contacts())
    assert names == sorted([samples.LAST, "Quist"])
    assert path.stack.counts(path.stack.dead_letter_queue_url) == (0, 0)


def test_a_name_pasted_with_invisible_characters_finds_the_contact_staff_typed(
    path: IntakePath, cliniko
) -> None:
    # A zero-width space or a byte-order mark copied along with a name is invisible to the
    # person and to staff, but kept it made another string to Cliniko's filters: a submission
    # without an email made a second contact beside the one staff typed, and one whose email
    # found the contact was parked as `name_differs` under `overwrite`.
    client = cliniko.client()
    client.create_contact(
        {
            "first_name": samples.FIRST,
            "last_name": samples.LAST,
            "phone_numbers": [{"number": "0412 987 654", "phone_type": "Mobile"}],
        }
    )
    client.create_contact({"first_name": "Ada", "last_name": "Brindle", "email": "ada@example.net"})

    body = samples.json_body(first_name=f"{samples.FIRST}\u200b", email=None)
    headers = {"Content-Type": "application/json", "X-Signature": samples.t_v1_signature(body)}
    accepted(path.post(form_post_event("partner-json", body, headers)))
    body = samples.dumps(
        {
            "submission": {
                "contact_name": "Ada Brindle\ufeff",
                "email": "ada@example.net",
                "insurer": "Blue Shield Health",
            }
        }
    )
    headers = {
        "Content-Type": "application/json",
        "Formspree-Signature": samples.t_v1_signature(body),
    }
    accepted(path.post(form_post_event("insurer-formspree", body, headers)))
    assert path.work() == 2

    staff, ada = sorted(cliniko.control.contacts(), key=lambda c: c["first_name"], reverse=True)
    assert (staff["first_name"], staff["company_name"]) == (samples.FIRST, "Partner Physio")
    assert (ada["last_name"], ada["company_name"]) == ("Brindle", "Blue Shield Health")
    assert path.stack.counts(path.stack.parked_queue_url) == (0, 0)


@pytest.mark.parametrize(
    "typed",
    ["٠٤١٢ ٩٨٧ ٦٥٤", "۰۴۱۲ ۹۸۷ ۶۵۴", "０４１２ ９８７ ６５４", "+６１ ４１２ ９８７ ６５４"],
    ids=["Arabic-Indic", "Persian", "full-width", "full-width international"],
)
def test_a_phone_typed_in_another_scripts_digits_finds_the_contact_staff_typed(
    path: IntakePath, cliniko, typed
) -> None:
    # A phone's Arabic or Persian keyboard, a Japanese IME: the same number as staff's "0412
    # 987 654", but compared digit by digit as typed it was another, and a submission without
    # an email made the person a second contact.
    client = cliniko.client()
    staff_typed = {"number": "0412 987 654", "phone_type": "Mobile"}
    client.create_contact(
        {"first_name": "Ana", "last_name": "Lima", "phone_numbers": [staff_typed]}
    )

    body = samples.json_body(first_name="Ana", last_name="Lima", email=None, mobile=typed)
    headers = {"Content-Type": "application/json", "X-Signature": samples.t_v1_signature(body)}
    accepted(path.post(form_post_event("partner-json", body, headers)))
    assert path.work() == 1

    [contact] = cliniko.control.contacts()
    assert contact["company_name"] == "Partner Physio"  # the submission's, on staff's contact
    # fill_blanks: the number staff typed stays as they typed it.
    assert [p["number"] for p in contact["phone_numbers"]] == [staff_typed["number"]]
    assert path.stack.counts(path.stack.parked_queue_url) == (0, 0)


@pytest.mark.parametrize(
    "typed",
    [
        "\u200b",
        "\ufeff\u200e",
        "\u202e",
        "\u00ad\u2066\u2069",
        "\u3164",  # the Hangul filler, a letter that shows nothing
        "\u206a\u180e",
        "\U000e0041\U000e006e\U000e006e",  # "Ann" in tag characters, which show nothing
    ],
)
def test_a_name_of_invisible_characters_alone_is_no_name(path: IntakePath, typed) -> None:
    # Taken as given, it made a contact whose name staff see as blank.
    body = samples.json_body(first_name=typed, last_name=typed)
    headers = {"Content-Type": "application/json", "X-Signature": samples.t_v1_signature(body)}
    answer = path.post(form_post_event("partner-json", body, headers))
    assert answer["statusCode"] == 422, answer
    assert json.loads(answer["body"])["errors"] == {"first_name": "can’t be blank"}


@pytest.mark.parametrize(
    "key",
    ["k" * 201, "order-1\t2026-12-05", "c" * 255],
    ids=["201 characters", "a tab", "Stripe's 255"],
)
def test_a_senders_long_or_unprintable_key_still_names_the_submission(
    path: IntakePath, cliniko, key
) -> None:
    # Read as no key at all, it gave way to the content hash: the retry of a post whose other
    # fields changed went through as another submission, which README says it is not.
    def post(body: bytes) -> None:
        headers = {
            "Content-Type": "application/json",
            "X-Signature": samples.t_v1_signature(body),
            "Idempotency-Key": key,
        }
        accepted(path.post(form_post_event("partner-json", body, headers)))

    post(samples.json_body(company_name=None))
    post(samples.json_body(company_name="Filled in by the retry"))
    assert path.work() == 2

    [contact] = cliniko.control.contacts()
    assert contact["company_name"] == ""  # the retry was a redelivery: nothing changed
