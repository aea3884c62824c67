"""The erasure API against hostile and careless bodies and failing dependencies (issue 10):
a 4xx with a JSON `message` for bad input, never an echo of what the caller wrote beyond the
known field names, and a 503 with Retry-After for every dependency failure."""

from __future__ import annotations

import json
import unicodedata
from typing import Any

import boto3
from cliniko_automations.erasure import api_handler, api_io

from tests.e2e.test_erasure_api import (
    LambdaContext,
    erasure,
    erasure_stack,
    extend,
    get,
    http_api_event,
    post,
)

__all__ = ["erasure_stack"]  # the fixture

UNKNOWN_KEY = "grizelda.thistlewaite+ortho@example.com"


def raw_post(body: Any) -> dict[str, Any]:
    """The whole Lambda answer (headers included) to a POST of `body`."""
    event = http_api_event("POST", "/erasure-requests", body=body)
    return api_handler.lambda_handler(event, LambdaContext())


def test_a_body_longer_than_any_request_is_refused_before_it_is_parsed(erasure_stack, monkeypatch):
    # The HTTP API lets 10 MB through: parsed whole, 10 MB of `{},` held over 500 MB (the
    # function has 256 MB) and took seconds of CPU.
    parsed = []
    monkeypatch.setattr(api_io, "load_json", lambda raw: parsed.append(len(raw)) or {})
    bomb = '{"request_id": "bomb", "reason": "x", "x": [' + ",".join(["{}"] * 700_000) + "]}"
    response = raw_post(bomb)
    assert response["statusCode"] == 422, response
    assert json.loads(response["body"])["errors"] == {"body": "must be at most 16384 bytes"}
    assert parsed == []
    assert erasure_stack.audit_items() == []


def test_a_reason_far_past_200_characters_is_refused_before_it_is_normalised(
    erasure_stack, monkeypatch
):
    # NFKC's canonical ordering is quadratic in a run of combining marks sent in reverse
    # order: 20,000 + 20,000 took 2.5 s of CPU, 40,000 + 40,000 took 10 s (the API has 29 s).
    normalised: list[int] = []
    normalize = unicodedata.normalize

    def counted(form: str, text: str) -> str:
        normalised.append(len(text))
        return normalize(form, text)

    monkeypatch.setattr(unicodedata, "normalize", counted)
    marks = "a" + "\u0315" * 1_000 + "\u0316" * 1_000  # within the body's 16 kB as JSON
    for status, body in (post(erasure(reason=marks)), extend("r-1", {"reason": marks})):
        assert (status, body["errors"]["reason"]) == (422, "must be 1-200 characters"), body
    assert max(normalised, default=0) <= 1_000


def test_json_nested_10000_deep_is_a_422(erasure_stack):
    deep = "[" * 10_000 + "]" * 10_000
    response = raw_post('{"request_id": "deep", "reason": "x", "x": ' + deep + "}")
    assert response["statusCode"] == 422, response
    assert erasure_stack.audit_items() == []


def test_a_key_given_twice_is_a_422_not_its_last_value(erasure_stack):
    # Read as its last value, this body erased contact 222 without a word about 111.
    response = raw_post(
        '{"request_id": "twice", "contact_id": "111", "contact_id": "222", '
        '"reason": "GDPR art. 17"}'
    )
    assert response["statusCode"] == 422, response
    assert erasure_stack.audit_items() == []


def test_an_unknown_key_is_counted_never_echoed_or_logged(erasure_stack, capfd):
    status, body = post(erasure(request_id="unknown-key", contact_id="1", **{UNKNOWN_KEY: 1}))
    assert status == 422
    assert body["message"]
    assert "1 unknown field(s)" in body["errors"]["body"]
    text = str(body) + "".join(capfd.readouterr())
    assert "grizelda" not in text.lower()
    assert erasure_stack.audit_items() == []


def test_a_missing_audit_table_is_a_503_with_retry_after(erasure_stack):
    boto3.client("dynamodb").delete_table(TableName=erasure_stack.table_name)
    response = raw_post(erasure(request_id="no-table", contact_id="1"))
    assert response["statusCode"] == 503, response
    assert response["headers"]["Retry-After"] == "30"
    status, body = get("no-table")
    assert status == 503 and body["message"]


def test_a_missing_pepper_is_a_503_with_retry_after(erasure_stack, monkeypatch):
    monkeypatch.setenv("PEPPER_SECRET_NAME", "erasure/no-such-pepper")
    response = raw_post(erasure(request_id="no-pepper", contact_id="1"))
    assert response["statusCode"] == 503, response
    assert response["headers"]["Retry-After"] == "30"
    assert erasure_stack.audit_items() == []


def test_a_pepper_too_short_is_a_503_with_retry_after(erasure_stack):
    boto3.client("secretsmanager").put_secret_value(
        SecretId=erasure_stack.pepper_secret, SecretString="short"
    )
    response = raw_post(erasure(request_id="short-pepper", contact_id="1"))
    assert response["statusCode"] == 503, response
    assert response["headers"]["Retry-After"] == "30"
    assert erasure_stack.audit_items() == []


def test_an_extension_reason_with_a_lone_surrogate_or_deep_nesting_is_never_a_500(erasure_stack):
    contact_id = erasure_stack.seed()
    erasure_stack.cliniko.control.set_faults(error_rate=1.0, statuses=[500])
    status, _ = post(erasure(request_id="ext-hostile", contact_id=contact_id))
    erasure_stack.cliniko.control.clear_faults()
    assert status == 502  # an open request, to extend

    deep = "[" * 10_000 + "]" * 10_000
    status, body = extend("ext-hostile", '{"reason": "ticket 7", "x": ' + deep + "}")
    assert status == 422 and "reason" in body["errors"]
    # A lone surrogate (a string cut mid-emoji) is repaired as in every other body, so the
    # reason can be hashed into the audit chain: extended, not a 500 on every retry.
    status, body = extend("ext-hostile", '{"reason": "ticket \\ud800 7"}')
    assert status == 200, body
    assert body["due_extended"] is True
