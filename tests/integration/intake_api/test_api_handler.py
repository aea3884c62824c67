"""The Lambda handler end to end with genuine HTTP API v2 events: moto SQS and Secrets Manager,
a captcha stand-in on 127.0.0.1. Every answer code, what is queued, what is logged."""

from __future__ import annotations

import json
import socket
import threading
import time
from collections.abc import Iterator
from urllib.parse import parse_qs, urlsplit

import boto3
import pytest
import yaml
from aws_lambda_powertools.utilities import parameters
from aws_lambda_powertools.utilities.parameters.base import DEFAULT_PROVIDERS
from cliniko_automations.common import aws
from cliniko_automations.intake.submission import Submission
from cliniko_automations.intake_api import wiring
from cliniko_automations.intake_api.validation import MAX_PHONE_NUMBERS, TOO_MANY_NUMBERS

from tests.fixtures.apigw import form_post_event, http_api_event
from tests.unit.intake_api import samples
from tests.unit.intake_api.samples import (
    EMAIL,
    ERROR_URL,
    FIRST,
    LAST,
    NAME,
    ORIGIN,
    PHONE,
    SECRET,
    SUCCESS_URL,
)

PERSONAL = [NAME, FIRST, LAST, EMAIL, PHONE, PHONE.replace(" ", ""), "0412987654"]
SECRETS = [SECRET, samples.TOKEN, samples.CAPTCHA_SECRET]


@pytest.fixture(autouse=True)
def nothing_personal_is_logged(intake, capsys):
    """After every test: no log line or metric carries a submitted value or a secret."""
    yield
    printed = capsys.readouterr()
    text = intake.logs.getvalue() + printed.out + printed.err
    for value in PERSONAL + SECRETS:
        assert value not in text, f"a submitted value or secret was logged: {value[:3]}..."


def body_of(answer: dict) -> dict:
    return json.loads(answer["body"])


def only_submission(intake) -> Submission:
    messages = intake.messages()
    assert len(messages) == 1
    attributes = messages[0]["MessageAttributes"]
    # The claim check: the queue holds the id and source, the store holds the values.
    assert set(json.loads(messages[0]["Body"])) == {"submission_id", "source"}
    submission = intake.stored(messages[0])
    assert attributes["submission_id"]["StringValue"] == submission.submission_id
    assert attributes["source"]["StringValue"] == submission.source
    # Its clinic is its tenant in the fair queue: another clinic's backlog does not hold it.
    assert messages[0]["Attributes"]["MessageGroupId"] == submission.account
    return submission


def typeform(body: bytes | None = None) -> tuple[bytes, dict[str, str]]:
    body = body or samples.typeform_body()
    return body, {
        "Content-Type": "application/json",
        "Typeform-Signature": samples.typeform_signature(body),
    }


def signed(source: str, body: bytes) -> tuple[bytes, dict[str, str]]:
    """A correctly signed delivery for each provider's shipped sample source."""
    json_type = {"Content-Type": "application/json"}
    if source == "referral-typeform":
        return typeform(body)
    if source == "gp-referral-tally":
        return body, {**json_type, "Tally-Signature": samples.tally_signature(body)}
    if source == "website-webflow":
        return body, {**json_type, **samples.webflow_headers(body)}
    if source == "insurer-formspree":
        return body, {**json_type, "Formspree-Signature": samples.t_v1_signature(body)}
    if source == "partner-json":
        return body, {
            **json_type,
            "X-Signature": samples.t_v1_signature(body),
            "Idempotency-Key": "partner-order-1",
        }
    raise AssertionError(source)


# --- 202 per provider ------------------------------------------------------------------------

PROVIDER_CASES = {
    "referral-typeform": (
        samples.typeform_body,
        "referral-typeform:tf-response-token-1",
        {"company_name": "Harbour Medical", "country_code": "AU", "type_code": 1},
    ),
    "gp-referral-tally": (
        samples.tally_body,
        "gp-referral-tally:2wgx4n",
        {
            "company_name": "Harbour Medical",
            "country_code": "NZ",
            "doctor_type": "general_practitioner",
        },
    ),
    "website-webflow": (
        samples.webflow_body,
        "website-webflow:6321a9a5c1b0a5d1d0b1b0a1",
        {"country_code": "GB", "notes": "Website enquiry: Please call me", "type_code": 0},
    ),
    "insurer-formspree": (
        samples.formspree_body,
        None,
        {"company_name": "Blue Shield Health", "type_code": 2},
    ),
    "partner-json": (
        samples.json_body,
        "partner-json:partner-order-1",
        {"country_code": "NZ", "doctor_type": "specialist", "type_code": 1},
    ),
}


@pytest.mark.parametrize("source", list(PROVIDER_CASES))
@pytest.mark.parametrize("base64", [False, True])
def test_signed_delivery_is_queued_and_answered_202(intake, source, base64):
    make_body, key, expected = PROVIDER_CASES[source]
    body, headers = signed(source, make_body())
    answer = intake.post(source, body, headers, base64=base64)
    assert answer["statusCode"] == 202, answer
    submission = only_submission(intake)
    assert body_of(answer) == {"submission_id": submission.submission_id}
    assert submission.source == source
    if source == "partner-json":  # the sender's own key, qualified by the content
        assert submission.idempotency_key == f"{key}:{submission.draft.person_digest()}"
    elif key:
        assert submission.idempotency_key == key
    else:
        assert submission.idempotency_key.startswith(f"{source}:sha256:")
    draft = submission.draft
    assert (draft.first_name, draft.last_name, draft.email) == (FIRST, LAST, EMAIL)
    assert draft.phone_numbers[0].number == PHONE
    for name, value in expected.items():
        assert getattr(draft, name) == value


def test_jotform_multipart_base64_with_query_token(intake):
    body, content_type = samples.jotform_body()
    answer = intake.post(
        "intake-jotform",
        body,
        {"Content-Type": content_type},
        base64=True,
        query={"token": samples.TOKEN},
    )
    assert answer["statusCode"] == 202, answer
    submission = only_submission(intake)
    assert submission.idempotency_key == "intake-jotform:5712345678901234567"
    assert submission.account == "north-clinic"
    draft = submission.draft
    assert (draft.first_name, draft.last_name, draft.city, draft.country_code) == (
        FIRST,
        LAST,
        "Sydney",
        "AU",
    )


def test_jotform_without_token_is_401(intake):
    body, content_type = samples.jotform_body()
    answer = intake.post("intake-jotform", body, {"Content-Type": content_type}, base64=True)
    assert answer["statusCode"] == 401
    assert intake.messages() == []


# --- logs and metrics ------------------------------------------------------------------------


def test_accepted_log_and_metric(intake, capsys):
    body, headers = typeform()
    event = http_api_event(
        "POST",
        "/forms/referral-typeform",
        body,
        headers,
        path_parameters={"source": "referral-typeform"},
        route_key="POST /forms/{source}",
        request_id="Rq-12345=",
    )
    answer = intake.invoke(event)
    submission_id = body_of(answer)["submission_id"]
    (record,) = [r for r in intake.log_records() if r["message"] == "Submission accepted"]
    assert record["correlation_id"] == "Rq-12345="
    assert record["source"] == "referral-typeform" and record["provider"] == "typeform"
    assert record["submission_id"] == submission_id
    assert record["outcome"] == "accepted"
    assert record["fields"] == sorted(
        [
            "first_name",
            "last_name",
            "email",
            "phone_numbers",
            "company_name",
            "country_code",
            "doctor_type",
            "type_code",
            "notes",
        ]
    )
    assert record["keyed_by"] == "provider_id"  # Typeform's response token
    metrics = emf(capsys.readouterr().out)
    # The signature matched (0: FormSignatureRefusedAlarm's hour holds one that matched).
    assert [(m["name"], m["dimensions"], signature_value(m)) for m in metrics] == [
        ("SignatureRefused", {"service": "intake"}, 0),
        ("SubmissionAccepted", {"service": "intake"}, 1),
    ]
    intake.messages()


@pytest.mark.parametrize(
    ("source", "idempotency_key", "keyed_by"),
    [
        ("partner-json", "order-1", "sender_key"),
        ("partner-json", None, "content"),
        ("insurer-formspree", None, "content"),
    ],
)
def test_the_accepted_log_says_what_the_submission_is_keyed_by(
    intake, source, idempotency_key, keyed_by
):
    make_body = PROVIDER_CASES[source][0]
    body, headers = signed(source, make_body())
    headers = {k: v for k, v in headers.items() if k != "Idempotency-Key"}
    if idempotency_key:
        headers["Idempotency-Key"] = idempotency_key
    assert intake.post(source, body, headers)["statusCode"] == 202
    (record,) = [r for r in intake.log_records() if r["message"] == "Submission accepted"]
    assert record["keyed_by"] == keyed_by


def emf(stdout: str) -> list[dict]:
    found = []
    for line in stdout.splitlines():
        if not line.startswith("{") or "_aws" not in line:
            continue
        blob = json.loads(line)
        for directive in blob["_aws"]["CloudWatchMetrics"]:
            for metric in directive["Metrics"]:
                dims = {d: blob[d] for dims in directive["Dimensions"] for d in dims}
                found.append(
                    {"name": metric["Name"], "value": blob[metric["Name"]], "dimensions": dims}
                )
    return found


def signature_value(metric: dict) -> float:
    value = metric["value"]
    (one,) = value if isinstance(value, list) else [value]
    return float(one)


def rejected_reason(capsys) -> str:
    metrics = emf(capsys.readouterr().out)
    checked = [m for m in metrics if m["name"] == "SignatureRefused"]
    refused = [m for m in metrics if m["name"] != "SignatureRefused"]
    assert [m["name"] for m in refused] == ["SubmissionRejected"]
    reason = refused[0]["dimensions"]["reason"]
    # A delivery refused by its source's secret counts 1 for FormSignatureRefusedAlarm, under
    # the service alone (not the refusal's reason); one refused after its secret matched, 0.
    assert all(m["dimensions"] == {"service": "intake"} for m in checked)
    values = [signature_value(m) for m in checked]
    assert values == [1.0] if reason == "unauthenticated" else values in ([], [0.0])
    return reason


# --- every refusal ---------------------------------------------------------------------------


def test_401_missing_and_bad_signature(intake, capsys):
    body, headers = typeform()
    del headers["Typeform-Signature"]
    answer = intake.post("referral-typeform", body, headers)
    assert answer["statusCode"] == 401
    assert body_of(answer)["message"] == "Missing or invalid signature"
    assert rejected_reason(capsys) == "unauthenticated"
    _, headers = typeform()
    tampered = body.replace(EMAIL.encode(), b"attacker@example.org")
    assert intake.post("referral-typeform", tampered, headers)["statusCode"] == 401
    assert intake.messages() == []


def test_401_replayed_webflow_delivery(intake):
    body = samples.webflow_body()
    headers = {
        "Content-Type": "application/json",
        **samples.webflow_headers(body, at=time.time() - 600),
    }
    answer = intake.post("website-webflow", body, headers)
    assert answer["statusCode"] == 401
    assert "5-minute window" in body_of(answer)["detail"]


def test_400_malformed_body_and_bad_base64(intake, capsys):
    body, headers = typeform(b'{"event_type": "form_response", "form_response": 7}')
    answer = intake.post("referral-typeform", body, headers)
    assert answer["statusCode"] == 400
    assert body_of(answer)["message"] == "Malformed request body"
    assert rejected_reason(capsys) == "malformed"
    event = http_api_event(
        "POST",
        "/forms/referral-typeform",
        b"x",
        headers,
        path_parameters={"source": "referral-typeform"},
    )
    event["isBase64Encoded"] = True
    event["body"] = "***not base64***"
    assert intake.invoke(event)["statusCode"] == 400


def test_400_for_an_event_that_is_not_an_http_api_request(intake, capsys):
    # A direct invoke or another service's event: refused, nothing queued, never a 500.
    answer = intake.invoke({"Records": [{"body": "{}"}]})
    assert answer["statusCode"] == 400
    assert "not an API Gateway HTTP API" in body_of(answer)["message"]
    assert rejected_reason(capsys) == "not_an_http_event"
    assert intake.messages() == []


def test_404_unknown_source_and_unknown_route(intake, capsys):
    body, headers = typeform()
    answer = intake.post("jane.doe@example.org", body, headers)
    assert answer["statusCode"] == 404
    assert body_of(answer) == {"message": "Unknown form source"}
    (record,) = [r for r in intake.log_records() if r["message"] == "Submission refused"]
    assert record["source"] == "(unknown)"
    assert "jane.doe" not in intake.logs.getvalue()
    assert rejected_reason(capsys) == "unknown_source"
    answer = intake.invoke(http_api_event("GET", "/elsewhere"))
    assert answer["statusCode"] == 404


def test_413_body_over_max_body_bytes(intake, monkeypatch, capsys):
    body, headers = typeform()
    monkeypatch.setenv("MAX_BODY_BYTES", str(len(body) - 1))
    answer = intake.post("referral-typeform", body, headers)
    assert answer["statusCode"] == 413
    assert rejected_reason(capsys) == "too_large"
    monkeypatch.setenv("MAX_BODY_BYTES", str(len(body)))
    assert intake.post("referral-typeform", body, headers)["statusCode"] == 202
    intake.messages()


def test_413_not_503_for_a_submission_the_store_could_not_hold(intake, monkeypatch, capsys):
    # A body under a raised MAX_BODY_BYTES whose submission is past DynamoDB's item size: the
    # store would refuse it on every retry of its sender.
    monkeypatch.setenv("MAX_BODY_BYTES", str(512 * 1024))
    body = json.dumps({"first_name": "Ana", "email": EMAIL, "notes": "x" * 500_000}).encode()
    answer = intake.post("partner-json", *signed("partner-json", body))
    assert answer["statusCode"] == 413, answer
    assert rejected_reason(capsys) == "too_large"
    assert intake.messages() == []


def test_the_most_phone_numbers_with_the_largest_submission_fit_the_store(intake, capsys):
    # Without an email, each number is kept as keyed hashes beside the body (the worker's
    # lookup by name and phone, an erasure's purge): past DynamoDB's 400 KB item, 600 numbers
    # were a 503 on every retry of the sender.
    phones = [f"+61 4{n:08d}" for n in range(MAX_PHONE_NUMBERS)]
    person = {"first_name": "Ana", "last_name": "Lopez", "mobile": phones}
    body = json.dumps({**person, "notes": "x" * 250_000}).encode()
    answer = intake.post("partner-json", *signed("partner-json", body))
    assert answer["statusCode"] == 202, answer
    assert len(intake.messages()) == 1

    many = [f"+61 4{n:08d}" for n in range(600)]
    body = json.dumps({**person, "mobile": many, "notes": "x" * 250_000}).encode()
    answer = intake.post("partner-json", *signed("partner-json", body))
    assert answer["statusCode"] == 422, answer
    assert body_of(answer)["errors"] == {"phone_numbers": TOO_MANY_NUMBERS}
    assert intake.messages() == []


@pytest.mark.parametrize("content_type", ["text/plain", "application/xml", None])
def test_415_unsupported_content_type(intake, content_type, capsys):
    body, headers = typeform()
    if content_type is None:
        del headers["Content-Type"]
    else:
        headers["Content-Type"] = content_type
    answer = intake.post("referral-typeform", body, headers)
    assert answer["statusCode"] == 415
    assert "application/json" in body_of(answer)["detail"]
    assert rejected_reason(capsys) == "unsupported_media_type"


def test_422_per_field_messages(intake, capsys):
    body, headers = typeform(samples.typeform_body(email="not-an-email", name=""))
    answer = intake.post("referral-typeform", body, headers)
    assert answer["statusCode"] == 422
    assert body_of(answer) == {
        "message": "Validation failed",
        "errors": {"email": "is invalid", "first_name": "can\u2019t be blank"},
    }
    assert rejected_reason(capsys) == "validation"
    (record,) = [r for r in intake.log_records() if r["message"] == "Submission refused"]
    assert record["fields"] == ["email", "first_name"]
    assert intake.messages() == []


def test_an_answer_matching_no_choice_is_left_out_named_in_the_log_and_counted(intake, capsys):
    body, headers = typeform(samples.typeform_body(country="Atlantis"))
    answer = intake.post("referral-typeform", body, headers)
    assert answer["statusCode"] == 202 and body_of(answer)["left_out"] == ["country_code"]
    (record,) = [r for r in intake.log_records() if r["message"] == "Submission accepted"]
    assert record["left_out"] == ["country_code"] and "country_code" not in record["fields"]
    printed = capsys.readouterr().out
    assert "Atlantis" not in printed and "Atlantis" not in str(intake.log_records())
    # IntakeAnswersLeftOutAlarm's metric.
    assert [m["name"] for m in emf(printed)] == [
        "SignatureRefused",
        "SubmissionAccepted",
        "AnswersLeftOut",
    ]
    assert len(intake.messages()) == 1


def test_200_for_typeform_partial_nothing_queued(intake, capsys):
    body, headers = typeform(samples.typeform_body(event_type="form_response_partial"))
    answer = intake.post("referral-typeform", body, headers)
    assert answer["statusCode"] == 200
    assert intake.messages() == []
    # Nothing counted but the signature that matched (an authentic delivery: no alarm's hour
    # of refusals only).
    [checked] = emf(capsys.readouterr().out)
    assert (checked["name"], signature_value(checked)) == ("SignatureRefused", 0)


def test_503_when_sqs_refuses(intake, monkeypatch, capsys):
    monkeypatch.setenv("SUBMISSION_QUEUE_URL", intake.queue_url + "-gone")
    body, headers = typeform()
    answer = intake.post("referral-typeform", body, headers)
    assert answer["statusCode"] == 503
    assert answer["headers"]["Retry-After"] == "30"
    assert body_of(answer) == {"message": "Service temporarily unavailable"}
    assert rejected_reason(capsys) == "unavailable"
    (record,) = [r for r in intake.log_records() if r["level"] == "ERROR"]
    assert record["dependency"] == "queue"
    assert record["error_type"] in {"ClientError", "QueueDoesNotExist"}


def test_503_and_the_fix_when_a_signing_secret_is_missing(intake, capsys):
    # The provider retries on 503; the operator is told which secret and what to do.
    name = "cliniko-automations/forms/referral-typeform/signing-secret"
    boto3.client("secretsmanager").delete_secret(SecretId=name, ForceDeleteWithoutRecovery=True)
    body, headers = typeform()
    answer = intake.post("referral-typeform", body, headers)
    assert answer["statusCode"] == 503
    (record,) = [r for r in intake.log_records() if r["level"] == "ERROR"]
    assert record["message"] == (
        f"misconfigured secret '{name}' (form_sources.yaml "
        "sources.referral-typeform.signing_secret): no such secret. Fix: create it in this "
        f"account and region (aws secretsmanager create-secret --name {name} "
        "--secret-string file://value.txt), or correct the name"
    )
    assert record["reason"] == "secret_missing"
    # Dimensioned by service alone, as MisconfigurationAlarm watches it.
    misconfigured = [m for m in emf(capsys.readouterr().out) if m["name"] == "Misconfigured"]
    assert misconfigured == [
        {"name": "Misconfigured", "value": [1.0], "dimensions": {"service": "intake"}}
    ]


@pytest.mark.parametrize(
    "stored",
    [
        # Saved by Notepad as "UTF-8 with BOM", stored with --secret-string file://secret.txt.
        f"\ufeff{SECRET}\r\n",
        # Copied from a web page or a chat message that put a zero-width space after it.
        f"{SECRET}\u200b",
    ],
    ids=["byte-order-mark", "zero-width-space"],
)
def test_a_signing_secret_pasted_with_invisible_characters_around_it_still_matches(intake, stored):
    # Before: the invisible character was part of the key every delivery was checked with,
    # and each was refused 401 (lost: a provider does not deliver again after a 401).
    name = "cliniko-automations/forms/referral-typeform/signing-secret"
    manager = boto3.client("secretsmanager")
    manager.delete_secret(SecretId=name, ForceDeleteWithoutRecovery=True)
    manager.create_secret(Name=name, SecretString=stored)
    body, headers = typeform()
    assert intake.post("referral-typeform", body, headers)["statusCode"] == 202
    assert only_submission(intake).source == "referral-typeform"


@pytest.mark.parametrize(
    "stored",
    [
        # The console's "Key/value" tab (its default) stores a JSON object of the pairs typed.
        f'{{"signing_secret":"{SECRET}"}}',
        # Pasted with the quotes of the file or message it came from.
        f'"{SECRET}"\n',
        # --secret-string 'VALUE' in Windows' cmd.exe, which quotes with double quotes only.
        f"'{SECRET}'",
        # A new value before the old one, as a webhook's signing secret holds them while it
        # is rotated: taken as one key, every delivery was refused 401.
        f"{SECRET}-new {SECRET}",
    ],
    ids=["console-key-value", "quoted", "single-quoted", "two-values"],
)
def test_503_and_the_fix_when_a_signing_secret_is_not_stored_as_plain_text(intake, capsys, stored):
    # Before: the secret was taken as written and every delivery refused 401, which a provider
    # does not deliver again; FormSignatureRefusedAlarm sent the operator to the provider's
    # settings. Now the provider is answered 503 (it delivers again once the secret is fixed)
    # and the operator is told which secret and how to store it.
    name = "cliniko-automations/forms/referral-typeform/signing-secret"
    manager = boto3.client("secretsmanager")
    # Created so (a value put over a good one is matched by its previous one for a while).
    manager.delete_secret(SecretId=name, ForceDeleteWithoutRecovery=True)
    manager.create_secret(Name=name, SecretString=stored)
    body, headers = typeform()
    answer = intake.post("referral-typeform", body, headers)
    assert answer["statusCode"] == 503
    assert intake.messages() == []
    (record,) = [r for r in intake.log_records() if r["level"] == "ERROR"]
    assert record["message"].startswith(
        f"misconfigured secret '{name}' (form_sources.yaml "
        "sources.referral-typeform.signing_secret): the secret holds "
    )
    assert "Fix: store the value alone as plain text" in record["message"]
    assert record["reason"] == "secret_not_plain_text"
    metrics = emf(capsys.readouterr().out)
    assert [m for m in metrics if m["name"] == "Misconfigured"] == [
        {"name": "Misconfigured", "value": [1.0], "dimensions": {"service": "intake"}}
    ]
    # Not counted as a refused signature: the provider's settings are not what to fix.
    assert [m for m in metrics if m["name"] == "SignatureRefused"] == []


def test_503_and_the_fix_when_a_secret_is_outside_the_prefix(intake, monkeypatch, capsys):
    monkeypatch.setenv("SECRETS_PREFIX", "clinic-secrets/")
    body, headers = typeform()
    answer = intake.post("referral-typeform", body, headers)
    assert answer["statusCode"] == 503
    (record,) = [r for r in intake.log_records() if r["level"] == "ERROR"]
    assert record["message"] == (
        "misconfigured secret 'cliniko-automations/forms/referral-typeform/signing-secret' "
        "(form_sources.yaml sources.referral-typeform.signing_secret): outside SecretsPrefix. "
        "Fix: the function may read only secrets whose names start with SecretsPrefix "
        "'clinic-secrets/': create the secret under it and name that one in form_sources.yaml "
        "sources.referral-typeform.signing_secret, or redeploy with a SecretsPrefix the name "
        "starts with"
    )
    assert record["reason"] == "secret_outside_prefix"
    # Dimensioned by service alone, as MisconfigurationAlarm watches it.
    misconfigured = [m for m in emf(capsys.readouterr().out) if m["name"] == "Misconfigured"]
    assert misconfigured == [
        {"name": "Misconfigured", "value": [1.0], "dimensions": {"service": "intake"}}
    ]


# IntakeApiFunction's Timeout in template.yaml: past it Lambda stops the function and API
# Gateway answers 500, which form providers do not retry.
INTAKE_TIMEOUT_SECONDS = 10


@pytest.fixture
def stalled_secrets_manager(monkeypatch) -> Iterator[None]:
    """Secrets Manager at an address that takes every connection and never answers."""
    server = socket.socket()
    server.bind(("127.0.0.1", 0))
    server.listen(16)
    held: list[socket.socket] = []

    def hold_connections() -> None:
        while True:
            try:
                held.append(server.accept()[0])
            except OSError:  # the server socket was closed: the test is over
                return

    threading.Thread(target=hold_connections, daemon=True).start()
    monkeypatch.setenv(
        "AWS_ENDPOINT_URL_SECRETS_MANAGER", f"http://127.0.0.1:{server.getsockname()[1]}"
    )

    def forget_clients() -> None:
        # The secrets provider and its client are the process's, made once: made again here
        # they are made as a Lambda would make them, against the endpoint of the moment.
        DEFAULT_PROVIDERS.pop("secrets", None)
        aws._client.cache_clear()
        parameters.clear_caches()

    forget_clients()
    yield
    server.close()
    for connection in held:
        connection.close()
    monkeypatch.delenv("AWS_ENDPOINT_URL_SECRETS_MANAGER")
    forget_clients()


def test_503_in_time_when_secrets_manager_stalls(intake, stalled_secrets_manager, capsys):
    body, headers = typeform()
    answers: list[dict] = []
    started = time.monotonic()
    call = threading.Thread(
        target=lambda: answers.append(intake.post("referral-typeform", body, headers)),
        daemon=True,
    )
    call.start()
    call.join(timeout=INTAKE_TIMEOUT_SECONDS - 1)
    assert answers, f"still waiting on Secrets Manager after {time.monotonic() - started:.1f} s"
    [answer] = answers
    assert answer["statusCode"] == 503
    assert answer["headers"]["Retry-After"] == "30"
    assert rejected_reason(capsys) == "unavailable"
    (record,) = [r for r in intake.log_records() if r["level"] == "ERROR"]
    assert record["dependency"] == "secrets"
    assert intake.messages() == []


def test_503_not_500_when_the_deployment_is_misconfigured(intake, monkeypatch, capsys):
    monkeypatch.delenv("SUBMISSION_QUEUE_URL")
    body, headers = typeform()
    answer = intake.post("referral-typeform", body, headers)
    assert answer["statusCode"] == 503
    assert "SUBMISSION_QUEUE_URL" not in answer["body"]
    (record,) = [r for r in intake.log_records() if r["level"] == "ERROR"]
    assert record["error_type"] == "SettingsError"
    assert "SUBMISSION_QUEUE_URL" in record["problem"]
    assert "exception" not in record  # no stack trace
    assert rejected_reason(capsys) == "misconfigured"


def test_503_when_the_form_source_file_is_broken(intake, capsys):
    intake.sources_file.write_text("sources: {}\n")
    wiring.load_sources.cache_clear()
    body, headers = typeform()
    answer = intake.post("referral-typeform", body, headers)
    assert answer["statusCode"] == 503
    (record,) = [r for r in intake.log_records() if r["level"] == "ERROR"]
    assert record["error_type"] == "ConfigError"
    assert "sources: Dictionary should have at least 1 item" in record["problem"]
    assert rejected_reason(capsys) == "misconfigured"


def test_503_not_500_for_an_unexpected_error(intake, capsys, monkeypatch):
    # A bug of ours (here: the wiring failing as no input makes it fail; an event API Gateway
    # would never send is refused before it, by common/http_events.py).
    def broken(settings):
        raise KeyError("a bug")

    monkeypatch.setattr(wiring, "services", broken)
    body, headers = typeform()
    answer = intake.invoke(form_post_event("referral-typeform", body, headers))
    assert answer["statusCode"] == 503
    assert answer["headers"]["Retry-After"] == "30"
    (record,) = [r for r in intake.log_records() if r["level"] == "ERROR"]
    assert record["message"] == "Unexpected error"
    assert record["error_type"] == "KeyError"
    assert record["at"].startswith("handler.py:")  # our deepest frame
    assert "exception" not in record  # no stack trace, no message
    assert rejected_reason(capsys) == "internal"
    assert intake.messages() == []


# --- a json source with a static token (Gravity Forms, WPForms) ----------------------------


def test_a_gravity_forms_webhook_with_its_static_header_is_queued(intake):
    token_name = "cliniko-automations/forms/gravity/token"
    token = "gravity-token-0123456789abcdef"
    boto3.client("secretsmanager").create_secret(Name=token_name, SecretString=token)
    sources = yaml.safe_load(intake.sources_file.read_text())
    sources["sources"]["gravity"] = {
        "provider": "json",
        "token_secret": token_name,
        "account": "main-clinic",
        "fields": [
            {"from": "1.3", "to": "first_name"},
            {"from": "1.6", "to": "last_name"},
            {"from": "2", "to": "email"},
        ],
    }
    intake.sources_file.write_text(yaml.safe_dump(sources))
    wiring.load_sources.cache_clear()
    entry = json.dumps({"id": "12", "form_id": "1", "1.3": FIRST, "1.6": LAST, "2": EMAIL})
    headers = {"Content-Type": "application/json"}

    answer = intake.post("gravity", entry.encode(), {**headers, "X-Intake-Token": "guess"})
    assert answer["statusCode"] == 401
    assert intake.messages() == []

    answer = intake.post("gravity", entry.encode(), {**headers, "X-Intake-Token": token})
    assert answer["statusCode"] == 202, answer
    draft = only_submission(intake).draft
    assert (draft.first_name, draft.last_name, draft.email) == (FIRST, LAST, EMAIL)


# --- browser form posts ----------------------------------------------------------------------

FORM = (
    f"name={NAME.replace(' ', '+')}&email={EMAIL}&phone=0412987654&organisation=&"
    "message=Please+call&website="
)


def browser_post(
    intake,
    form: str,
    *,
    turnstile: str | None = "pass",
    origin: str | None = ORIGIN,
    referer: str | None = None,
):
    if turnstile is not None:
        form += f"&cf-turnstile-response={turnstile}"
    headers = {"Content-Type": "application/x-www-form-urlencoded"}
    if origin is not None:
        headers["Origin"] = origin
    if referer is not None:
        headers["Referer"] = referer
    # HTTP APIs hand url-encoded bodies to Lambda base64-encoded.
    return intake.post(
        "website-contact-html", form.encode(), headers, base64=True, source_ip="198.51.100.7"
    )


def location(answer: dict) -> tuple[str, dict[str, list[str]]]:
    assert answer["statusCode"] == 303, answer
    target = urlsplit(answer["headers"]["Location"])
    return f"{target.scheme}://{target.netloc}{target.path}", parse_qs(target.query)


@pytest.mark.parametrize(
    ("body", "content_type"),
    [
        # A page served as windows-1252 posts in it, without saying so.
        (b"name=Jos%E9+Lee&email=jose%40example.org", "application/x-www-form-urlencoded"),
        (
            b"name=Jos%E9+Lee&email=jose%40example.org",
            "application/x-www-form-urlencoded; charset=windows-1252",
        ),
        # A hand-built body: a trailing "&", a key without "=", a byte-order mark.
        (b"name=Jos%C3%A9+Lee&email=jose%40example.org&", "application/x-www-form-urlencoded"),
        (b"name=Jos%C3%A9+Lee&email=jose%40example.org&ok", "application/x-www-form-urlencoded"),
        (
            b"\xef\xbb\xbfemail=jose%40example.org&name=Jos%C3%A9+Lee",
            "application/x-www-form-urlencoded",
        ),
    ],
)
def test_html_post_as_browsers_and_scripts_send_it_is_read(intake, body, content_type):
    headers = {"Content-Type": content_type, "Origin": ORIGIN}
    body += b"&cf-turnstile-response=pass"
    answer = intake.post("website-contact-html", body, headers, base64=True)
    page, _ = location(answer)
    assert page == SUCCESS_URL
    draft = only_submission(intake).draft
    assert (draft.first_name, draft.last_name, draft.email) == ("José", "Lee", "jose@example.org")


def test_html_post_303_to_success_page_and_queued(intake):
    answer = browser_post(intake, FORM)
    page, query = location(answer)
    assert page == SUCCESS_URL
    submission = only_submission(intake)
    assert query == {"submission_id": [submission.submission_id]}
    assert answer["headers"]["Access-Control-Allow-Origin"] == ORIGIN
    assert submission.draft.notes == "Message from the website form: Please call"
    assert submission.idempotency_key.startswith("website-contact-html:sha256:")
    (check,) = intake.captcha.received
    assert check["secret"] == [samples.CAPTCHA_SECRET]
    assert check["remoteip"] == ["198.51.100.7"]


def test_html_honeypot_looks_accepted_but_is_dropped(intake, capsys):
    answer = browser_post(intake, FORM + "https%3A%2F%2Fspam.example")
    page, query = location(answer)
    assert page == SUCCESS_URL and "submission_id" in query
    assert intake.messages() == []
    assert intake.captcha.received == []  # no captcha call spent on a bot
    assert rejected_reason(capsys) == "honeypot"


@pytest.mark.parametrize(
    ("turnstile", "reason"),
    [(None, "captcha"), ("fail", "captcha"), ("down", "unavailable")],
)
def test_html_captcha_fails_closed(intake, turnstile, reason, capsys):
    page, query = location(browser_post(intake, FORM, turnstile=turnstile))
    assert page == ERROR_URL
    assert query == {"error": [reason]}
    assert intake.messages() == []
    assert rejected_reason(capsys) == reason


def test_html_validation_errors_go_to_the_error_page(intake):
    page, query = location(browser_post(intake, "name=&email=nope&website="))
    assert page == ERROR_URL
    assert query == {"error": ["validation"], "fields": ["email,name"]}
    assert intake.messages() == []


def test_html_notes_refused_point_the_error_page_at_the_forms_message(intake):
    # A NUL in the textarea the notes template reads: "notes" is no input of the form.
    form = "name=Ada+Lovelace&email=ada%40example.org&message=Call%00me&website="
    page, query = location(browser_post(intake, form))
    assert (page, query) == (ERROR_URL, {"error": ["validation"], "fields": ["message"]})
    assert intake.messages() == []


def test_html_validation_errors_leave_the_captcha_token_unspent(intake):
    # Siteverify takes a token once. Spent on a submission refused for its fields, the token
    # the page still holds when the person comes back to fix them (the back button restores
    # it) is refused as used: they were sent to the captcha error until the widget refreshed.
    page, query = location(browser_post(intake, "name=Ada+Lovelace&email=nope&website="))
    assert (page, query) == (ERROR_URL, {"error": ["validation"], "fields": ["email"]})
    assert intake.captcha.received == []
    assert intake.messages() == []


def test_html_origin_not_allowed_is_403(intake, capsys):
    answer = browser_post(intake, FORM, origin="https://evil.example")
    assert answer["statusCode"] == 403
    assert "Location" not in answer.get("headers", {})
    assert rejected_reason(capsys) == "origin"
    assert intake.messages() == []


def test_html_queue_outage_sends_the_browser_to_the_error_page(intake, monkeypatch):
    monkeypatch.setenv("SUBMISSION_QUEUE_URL", intake.queue_url + "-gone")
    page, query = location(browser_post(intake, FORM))
    assert (page, query) == (ERROR_URL, {"error": ["unavailable"]})


def test_a_turnstile_secret_siteverify_refuses_is_told_to_the_operator(intake, capsys):
    # Every person would be refused until the secret is fixed: not "your captcha failed",
    # and the Misconfigured alarm, where a failed captcha was all the log said.
    boto3.client("secretsmanager").put_secret_value(
        SecretId="cliniko-automations/forms/website-contact-html/turnstile-secret",
        SecretString="not-the-turnstile-secret",
    )
    assert location(browser_post(intake, FORM)) == (ERROR_URL, {"error": ["unavailable"]})
    (record,) = [r for r in intake.log_records() if r["level"] == "ERROR"]
    assert record["message"].startswith(
        "misconfigured secret 'cliniko-automations/forms/website-contact-html/turnstile-secret'"
    ), record
    assert '"Misconfigured"' in capsys.readouterr().out
    assert intake.messages() == []


def test_a_browser_that_sends_no_origin_is_known_by_its_referer(intake):
    # Fetch has browsers send Origin with every POST, but a privacy setting can stop it
    # (Firefox's network.http.sendOriginHeader=0): the page's address still comes as Referer,
    # which no other page can forge either.
    answer = browser_post(intake, FORM, origin=None, referer=f"{ORIGIN}/contact/?utm_source=x")
    assert location(answer)[0] == SUCCESS_URL
    assert len(intake.messages()) == 1


@pytest.mark.parametrize(
    "referer",
    [None, "https://evil.example/contact/", f"{ORIGIN}.evil.example/", "not a url", "null"],
)
def test_without_origin_a_referer_from_elsewhere_is_refused(intake, referer, capsys):
    answer = browser_post(intake, FORM, origin=None, referer=referer)
    assert answer["statusCode"] == 403 and "Location" not in (answer.get("headers") or {})
    assert rejected_reason(capsys) == "origin"
    assert intake.messages() == []


def test_a_browser_refused_for_its_origin_gets_a_page_a_person_can_read(intake):
    # The clinic's own page with Referrer-Policy no-referrer posts Origin null: the person
    # who pressed Send sees the answer, which was a line of JSON.
    headers = {
        "Content-Type": "application/x-www-form-urlencoded",
        "Origin": "null",
        "Accept": "text/html,application/xhtml+xml,application/xml;q=0.9,*/*;q=0.8",
        "Sec-Fetch-Mode": "navigate",
    }
    answer = intake.post("website-contact-html", FORM.encode(), headers, base64=True)
    assert answer["statusCode"] == 403
    assert answer["headers"]["Content-Type"].startswith("text/html")
    assert "<h1>Your details were not sent</h1>" in answer["body"]
    assert "Referrer-Policy" not in answer["body"]  # the why is for the clinic's log
    # A page's script (fetch) still gets JSON.
    script = {**headers, "Accept": "*/*", "Sec-Fetch-Mode": "cors"}
    answer = intake.post("website-contact-html", FORM.encode(), script, base64=True)
    assert json.loads(answer["body"])["message"] == "Origin not allowed"
    assert intake.messages() == []


def test_origin_null_is_refused_and_the_log_says_why(intake):
    # What a browser sends from a page served with Referrer-Policy no-referrer or same-origin.
    answer = browser_post(intake, FORM, origin="null")
    assert answer["statusCode"] == 403 and "Location" not in (answer.get("headers") or {})
    (line,) = [r for r in intake.log_records() if r.get("outcome") == "rejected"]
    assert "Referrer-Policy" in line.get("detail", ""), line
