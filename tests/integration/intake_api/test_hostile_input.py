"""Hostile and careless input through the intake's Lambda handler (issue 10): each case below
ended in a 5xx before; each must be a 4xx with a JSON `message`, or accepted, and queue
nothing it refuses. Nothing the sender wrote reaches the log."""

from __future__ import annotations

import hashlib
import hmac
import json

import boto3
import pytest
from cliniko_automations.common.person_keys import email_hash
from cliniko_automations.common.submission_store import DynamoSubmissionStore
from cliniko_automations.erasure.models import ErasureRequest

from tests.fixtures.apigw import form_post_event
from tests.integration.intake_api.conftest import PEPPER
from tests.integration.intake_api.test_api_handler import signed
from tests.unit.intake_api import samples

JSON_SOURCES = [
    "referral-typeform",
    "gp-referral-tally",
    "website-webflow",
    "insurer-formspree",
    "partner-json",
]


def refused(answer: dict, status: int) -> dict:
    assert answer["statusCode"] == status, answer
    body = json.loads(answer["body"])
    assert isinstance(body.get("message"), str) and body["message"]
    return body


@pytest.mark.parametrize("stamp", ["١٧٠٠٠٠٠٠٠٠", "¹²³", "１７００"])
@pytest.mark.parametrize("source", ["insurer-formspree", "partner-json"])
def test_t_v1_timestamp_of_non_ascii_digits_is_401(intake, source, stamp):
    body, headers = signed(source, samples.json_body())
    name = "Formspree-Signature" if source == "insurer-formspree" else "X-Signature"
    headers[name] = f"t={stamp},v1={'0' * 64}"
    refused(intake.post(source, body, headers), 401)
    assert intake.messages() == []


@pytest.mark.parametrize("stamp", ["١٧٠٠٠٠٠٠٠٠٠٠٠", "¹²³"])
def test_webflow_timestamp_of_non_ascii_digits_is_401(intake, stamp):
    body, headers = signed("website-webflow", samples.webflow_body())
    headers["x-webflow-timestamp"] = stamp
    refused(intake.post("website-webflow", body, headers), 401)
    assert intake.messages() == []


def _hmac_hex(message: bytes) -> str:
    return hmac.new(samples.SECRET.encode(), message, hashlib.sha256).hexdigest()


@pytest.mark.parametrize("source", ["insurer-formspree", "partner-json"])
def test_correctly_signed_400_digit_timestamp_is_401(intake, source):
    body = samples.json_body()
    stamp = "9" * 400
    name = "Formspree-Signature" if source == "insurer-formspree" else "X-Signature"
    headers = {
        "Content-Type": "application/json",
        name: f"t={stamp},v1={_hmac_hex(stamp.encode() + b'.' + body)}",
    }
    refused(intake.post(source, body, headers), 401)
    assert intake.messages() == []


def test_correctly_signed_400_digit_webflow_timestamp_is_401(intake):
    body = samples.webflow_body()
    stamp = "9" * 400
    headers = {
        "Content-Type": "application/json",
        "x-webflow-timestamp": stamp,
        "x-webflow-signature": _hmac_hex(stamp.encode() + b":" + body),
    }
    refused(intake.post("website-webflow", body, headers), 401)
    assert intake.messages() == []


@pytest.mark.parametrize("source", JSON_SOURCES)
@pytest.mark.parametrize("depth", [10_000, 100])
def test_json_nested_too_deep_is_400(intake, source, depth):
    body = b"[" * depth + b"]" * depth
    body, headers = signed(source, b'{"deep": ' + body + b"}")
    body_json = refused(intake.post(source, body, headers), 400)
    assert "nested too deeply" in body_json["detail"]
    assert intake.messages() == []


def test_jotform_raw_request_nested_too_deep_is_400(intake):
    body, content_type = samples.multipart(
        {"submissionID": "1", "rawRequest": "[" * 10_000 + "]" * 10_000}
    )
    answer = intake.post(
        "intake-jotform", body, {"Content-Type": content_type}, query={"token": samples.TOKEN}
    )
    refused(answer, 400)
    assert intake.messages() == []


def test_answers_nested_5000_lists_deep_are_400(intake):
    # Python 3.13's C JSON parser reads 5,000 levels; answer normalisation then recursed.
    deep = "[" * 5000 + '"x"' + "]" * 5000
    body = samples.json_body().replace(b'"Partner Physio"', deep.encode())
    body, headers = signed("partner-json", body)
    refused(intake.post("partner-json", body, headers), 400)
    assert intake.messages() == []


@pytest.mark.parametrize(
    ("value", "problem"),
    [
        # What Python's json.dumps (and pandas, for every empty cell) writes: not JSON.
        (b"NaN", "not JSON"),
        (b"Infinity", "not JSON"),
        (b"-Infinity", "not JSON"),
        # JSON, but past a float's range.
        (b"1e400", "holding a number too large"),
        (b"-1e400", "holding a number too large"),
    ],
)
def test_a_number_that_is_not_finite_is_400_not_the_text_nan_or_inf(intake, value, problem):
    body = samples.json_body().replace(b'"Partner Physio"', value)
    assert value in body
    body, headers = signed("partner-json", body)
    answer = refused(intake.post("partner-json", body, headers), 400)
    assert answer["detail"] == f"body is {problem}"
    assert intake.messages() == []


def test_an_object_holding_a_key_twice_is_400(intake):
    # Which of the two emails is the person's? Neither is guessed.
    body = samples.json_body().replace(b'"email":', b'"email": "other@example.com", "email":', 1)
    body, headers = signed("partner-json", body)
    answer = refused(intake.post("partner-json", body, headers), 400)
    assert answer["detail"] == "body is holding a key twice"
    assert intake.messages() == []


@pytest.mark.parametrize("source", JSON_SOURCES)
def test_a_lone_surrogate_is_replaced_and_the_submission_accepted(intake, source):
    # What JavaScript writes for a string cut in the middle of an emoji.
    body = {
        "referral-typeform": samples.typeform_body,
        "gp-referral-tally": samples.tally_body,
        "website-webflow": samples.webflow_body,
        "insurer-formspree": samples.formspree_body,
        "partner-json": samples.json_body,
    }[source]()
    body = body.replace(samples.LAST.encode(), b"Okonkwo\\ud800", 1)
    body, headers = signed(source, body)
    answer = intake.post(source, body, headers)
    assert answer["statusCode"] == 202, answer
    [message] = intake.messages()
    assert "\ufffd" in intake.stored(message).draft.canonical_json()


@pytest.mark.parametrize("invisible", ["\u200b", "\u200e", "\u00ad", "\ufeff", "\u2060"])
def test_an_email_with_invisible_characters_is_stored_as_the_address_meant(intake, invisible):
    # Pasted along unseen; kept, the worker's lookup by email would miss the contact and an
    # erasure of the address would miss this stored body.
    typed = samples.EMAIL.replace("@", f"{invisible}@") + invisible
    body, headers = signed("gp-referral-tally", samples.tally_body(email=typed))
    answer = intake.post("gp-referral-tally", body, headers)
    assert answer["statusCode"] == 202, answer
    [message] = intake.messages()
    submission = intake.stored(message)
    assert submission.draft.email == samples.EMAIL
    stored = DynamoSubmissionStore(boto3.client("dynamodb"), intake.submission_table).get(
        submission.submission_id
    )
    assert stored is not None
    erasure = ErasureRequest.parse({"request_id": "r-1", "email": typed, "reason": "x"})
    assert erasure.email is not None
    assert stored.keys.email_hmac == email_hash(PEPPER, erasure.email)
    assert stored.keys.email_hmac == email_hash(PEPPER, samples.EMAIL)


def test_a_multipart_part_naming_a_codec_outside_the_allow_list_is_400(intake):
    boundary = "b0undary"
    raw = json.dumps({"q3_name": {"first": "A", "last": "B"}, "q4_email": "a@example.org"})
    body = (
        f'--{boundary}\r\nContent-Disposition: form-data; name="submissionID"\r\n\r\n1\r\n'
        f'--{boundary}\r\nContent-Disposition: form-data; name="rawRequest"\r\n'
        "Content-Type: text/plain; charset=unicode_escape\r\n\r\n"
        f"{raw}\r\n--{boundary}--\r\n"
    ).encode()
    answer = intake.post(
        "intake-jotform",
        body,
        {"Content-Type": f"multipart/form-data; boundary={boundary}"},
        query={"token": samples.TOKEN},
    )
    refused(answer, 400)
    assert intake.messages() == []


@pytest.mark.parametrize("charset", ["utf-8", "UTF8", "us-ascii", "iso-8859-1", "windows-1252"])
def test_a_multipart_part_in_an_allowed_charset_is_read(intake, charset):
    boundary = "b0undary"
    raw = json.dumps(
        {"q3_name": {"first": samples.FIRST, "last": samples.LAST}, "q4_email": samples.EMAIL}
    )
    body = (
        f'--{boundary}\r\nContent-Disposition: form-data; name="submissionID"\r\n\r\n77\r\n'
        f'--{boundary}\r\nContent-Disposition: form-data; name="rawRequest"\r\n'
        f"Content-Type: application/json; charset={charset}\r\n\r\n"
        f"{raw}\r\n--{boundary}--\r\n"
    ).encode()
    answer = intake.post(
        "intake-jotform",
        body,
        {"Content-Type": f"multipart/form-data; boundary={boundary}"},
        query={"token": samples.TOKEN},
    )
    assert answer["statusCode"] == 202, answer
    assert len(intake.messages()) == 1


@pytest.mark.parametrize(
    ("source", "body"),
    [
        ("referral-typeform", b'{"event_type": "marguerite.okonkwo@example.org"}'),
        ("gp-referral-tally", b'{"eventType": "marguerite.okonkwo@example.org"}'),
        ("website-webflow", b'{"triggerType": "marguerite.okonkwo@example.org"}'),
    ],
)
def test_a_delivery_that_is_not_a_submission_logs_a_fixed_reason(intake, source, body):
    body, headers = signed(source, body)
    answer = intake.post(source, body, headers)
    assert answer["statusCode"] == 200
    assert intake.messages() == []
    [record] = [r for r in intake.log_records() if r["message"].startswith("Delivery ack")]
    assert record["reason"] == "other_event"
    assert "marguerite" not in intake.logs.getvalue()


def test_a_type_code_of_other_digits_is_left_out_not_a_500(intake):
    body, headers = signed("partner-json", samples.json_body(type_code="¹"))
    answer = intake.post("partner-json", body, headers)
    assert answer["statusCode"] == 202
    assert json.loads(answer["body"])["left_out"] == ["type_code"]
    assert len(intake.messages()) == 1


def test_a_json_body_sent_as_text_with_a_lone_surrogate_is_400(intake):
    # The event's body is text; a lone surrogate in it cannot be UTF-8 encoded.
    body, headers = signed("partner-json", samples.json_body())
    event_body = body.decode().replace(samples.LAST, "Okonkwo\ud800")
    event = form_post_event("partner-json", b"x", headers)
    event["body"] = event_body
    answer = intake.invoke(event)
    refused(answer, 401)  # the signature was over other bytes
    assert intake.messages() == []


def test_line_breaks_and_tabs_in_a_one_line_field_become_spaces(intake):
    # A pasted name, a textarea's company: the words are the answer. Left in, the worker's
    # lookup by name (no email here) could never be sent: Cliniko's filters carry no tab.
    body, headers = signed(
        "partner-json",
        samples.json_body(email=None, first_name="Ana\tMaria", company_name="Partner\r\n Physio\n"),
    )
    answer = intake.post("partner-json", body, headers)
    assert answer["statusCode"] == 202, answer
    [message] = intake.messages()
    draft = intake.stored(message).draft
    assert (draft.first_name, draft.company_name) == ("Ana Maria", "Partner Physio")


@pytest.mark.parametrize(
    ("field", "value"),
    [
        ("first_name", "Ana\x00"),
        ("last_name", "Ng\x1b[31m"),
        ("company_name", "Physio\x07"),
        ("email", "ana\x9b31m@example.org"),
        ("email", "ana\x80@example.org"),
    ],
)
def test_a_control_character_left_in_a_field_is_a_422_naming_it(intake, field, value):
    body, headers = signed("partner-json", samples.json_body(**{field: value}))
    answer = refused(intake.post("partner-json", body, headers), 422)
    assert field in answer["errors"]
    assert intake.messages() == []
