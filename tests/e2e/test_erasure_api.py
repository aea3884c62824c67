"""Erasure end to end: API Gateway v2 events (AWS_IAM context) into the Lambda handler, the
Cliniko emulator over real HTTP, moto for the audit table and the secrets."""

from __future__ import annotations

import io
import json
import logging
import threading
import time
from collections.abc import Iterator
from typing import Any

import boto3
import pytest
from cliniko_automations.common.identity_claims import claim_key
from cliniko_automations.erasure import api_handler
from cliniko_automations.erasure.scrub import SCRUBBED_VALUES
from cliniko_automations.intake_worker.store import DynamoClaims

from tests.fixtures import apigw
from tests.integration.erasure import stack
from tests.integration.erasure.stack import (
    PEPPER,
    PERSONAL,
    assert_scrubbed_and_archived,
    personal_values,
    whole_values_in,
)

erasure_stack = stack.erasure_stack  # the fixture

CALLER_ARN = "arn:aws:iam::123456789012:user/privacy-officer"
WRITES = {"POST", "PUT", "PATCH", "DELETE"}
EMAIL = PERSONAL["email"]


IAM_CONTEXT = {
    "accessKey": "AKIAIOSFODNN7EXAMPLE",
    "accountId": "123456789012",
    "callerId": "AIDACKCEVSQ6C2EXAMPLE",
    "cognitoIdentity": None,
    "principalOrgId": "o-abc123",
    "userArn": CALLER_ARN,
    "userId": "AIDACKCEVSQ6C2EXAMPLE",
}


def http_api_event(
    method: str,
    path: str,
    *,
    body: Any = None,
    iam: dict[str, Any] | None = IAM_CONTEXT,
    path_parameters: dict[str, str] | None = None,
    route_key: str | None = None,
) -> dict[str, Any]:
    """An HTTP API (payload 2.0) event as API Gateway sends it for an AWS_IAM route: the
    shared builder's event plus `requestContext.authorizer.iam`, which API Gateway fills in
    for a SigV4-signed caller."""
    raw = body if isinstance(body, str) or body is None else json.dumps(body)
    event = apigw.http_api_event(
        method,
        path,
        (raw or "").encode(),
        {"content-type": "application/json"},
        path_parameters=path_parameters,
        route_key=route_key,
    )
    if iam is not None:
        event["requestContext"]["authorizer"] = {"iam": iam}
    return event


def LambdaContext() -> apigw.LambdaContext:
    return apigw.LambdaContext(function_name="ErasureApiFunction")


def post(body: Any, **kwargs: Any) -> tuple[int, dict[str, Any]]:
    event = http_api_event("POST", "/erasure-requests", body=body, **kwargs)
    response = api_handler.lambda_handler(event, LambdaContext())
    return response["statusCode"], json.loads(response["body"])


def get(request_id: str, **kwargs: Any) -> tuple[int, dict[str, Any]]:
    event = http_api_event(
        "GET",
        f"/erasure-requests/{request_id}",
        path_parameters={"id": request_id},
        route_key="GET /erasure-requests/{id}",
        **kwargs,
    )
    response = api_handler.lambda_handler(event, LambdaContext())
    return response["statusCode"], json.loads(response["body"])


def erasure(**values: Any) -> dict[str, Any]:
    return {"reason": "GDPR art. 17, ticket PRIV-7", **values}


def writes(entries: list[dict[str, Any]]) -> list[dict[str, Any]]:
    return [e for e in entries if e["method"] in WRITES]


OUTCOME_KEYS = {
    "request_id",
    "status",
    "result",
    "dry_run",
    "received_at",
    "due_at",
    "due_extended",
    "finished_at",
    "contact_ids",
    "accounts",
    "contacts",
    "purged",
    "message",
    "cliniko_requests",
    "receipt",
}


def test_erase_by_id(erasure_stack):
    contact_id = erasure_stack.seed()
    before = len(erasure_stack.log())

    status, body = post(erasure(request_id="by-id", contact_id=contact_id))

    sent = erasure_stack.log()[before:]
    assert status == 200, body
    assert set(body) == OUTCOME_KEYS
    assert body["status"] == "completed" and body["result"] == "erased"
    assert body["contact_ids"] == [contact_id]
    [contact] = body["contacts"]
    assert contact["action"] == "scrubbed_and_archived" and contact["verified"] is True
    assert set(contact["fields"]) == set(SCRUBBED_VALUES)
    assert "scrubbed and archived" in body["message"]
    assert "Cliniko keeps an archived record" in body["message"]
    assert "deleted" not in json.dumps(body).lower()
    # lookup, update, archive, verify: the ceiling is 4 per erased contact
    assert len(sent) == body["cliniko_requests"] <= 4
    assert_scrubbed_and_archived(erasure_stack, contact_id)

    status, stored = get("by-id")
    assert status == 200
    assert stored["status"] == "completed" and stored["contact_ids"] == [contact_id]


def test_erase_by_email_matches_lower_cased_and_archived_ones(erasure_stack):
    contact_id = erasure_stack.seed()
    erasure_stack.seed(email="someone.else@example.com")
    before = len(erasure_stack.log())

    status, body = post(erasure(request_id="by-email", email=EMAIL.upper()))

    sent = erasure_stack.log()[before:]
    assert status == 200, body
    assert body["result"] == "erased" and body["contact_ids"] == [contact_id]
    # A lookup in each account (north-clinic's on uk1 finds nobody), then the contact's three.
    assert [(e["method"], e["key_shard"]) for e in sent] == [
        ("GET", "au1"),
        ("GET", "uk1"),
        ("PATCH", "au1"),
        ("POST", "au1"),
        ("GET", "au1"),
    ]
    assert body["accounts"] == {"main-clinic": [contact_id], "north-clinic": []}
    assert_scrubbed_and_archived(erasure_stack, contact_id)


@pytest.mark.parametrize(
    ("held", "sent"),
    [
        ("anna@xn--bcher-kva.de", "anna@bücher.de"),
        ("anna@example.com", "ａｎｎａ@ｅｘａｍｐｌｅ.ｃｏｍ"),
    ],
    ids=["international_domain", "full_width"],
)
def test_an_address_typed_in_another_form_finds_the_contact_cliniko_holds(
    erasure_stack, held, sent
):
    # Cliniko holds ASCII addresses only: searched as typed, the person stayed in Cliniko and
    # the request completed as "no record found".
    contact_id = erasure_stack.seed(email=held)

    status, body = post(erasure(request_id="other-form", email=sent))

    assert status == 200, body
    assert body["result"] == "erased" and body["contact_ids"] == [contact_id]
    assert_scrubbed_and_archived(erasure_stack, contact_id)


def test_several_matches_answer_409_with_ids_then_erase_all_when_confirmed(erasure_stack):
    ids = sorted([erasure_stack.seed(), erasure_stack.seed(first_name="Hortensia")])
    before = len(erasure_stack.log())

    status, body = post(erasure(request_id="several", email=EMAIL))

    assert status == 409, body
    assert sorted(body["contact_ids"]) == ids
    assert {name: sorted(found) for name, found in body["accounts"].items()} == {
        "main-clinic": ids,
        "north-clinic": [],
    }
    assert body["result"] == "awaiting_confirmation"
    text = json.dumps(body)
    assert whole_values_in(text, [*personal_values(PERSONAL), "Hortensia"]) == []
    assert not writes(erasure_stack.log()[before:])

    before = len(erasure_stack.log())
    status, body = post(erasure(request_id="several", email=EMAIL, erase_all_matches=True))

    sent = erasure_stack.log()[before:]
    assert status == 200, body
    assert sorted(body["contact_ids"]) == ids
    assert [c["action"] for c in body["contacts"]] == ["scrubbed_and_archived"] * 2
    # a lookup per account shared by the matches, then update, archive, verify each
    assert len(sent) == 2 + 3 * len(ids) <= 4 * len(ids)
    for contact_id in ids:
        assert_scrubbed_and_archived(erasure_stack, contact_id)


def test_no_match_says_no_record_found_in_the_same_shape(erasure_stack):
    erasure_stack.seed()
    before = len(erasure_stack.log())

    status, body = post(erasure(request_id="nobody", email="nobody@example.com"))

    assert status == 200, body
    assert set(body) == OUTCOME_KEYS
    assert body["status"] == "completed" and body["result"] == "no_record_found"
    assert body["contacts"] == [] and body["contact_ids"] == []
    assert "No record was found" in body["message"]
    assert not writes(erasure_stack.log()[before:])


def test_dry_run_reports_field_names_and_writes_nothing(erasure_stack):
    contact_id = erasure_stack.seed(notes="", title="")
    before = len(erasure_stack.log())

    status, body = post(erasure(request_id="dry", contact_id=contact_id, dry_run=True))

    sent = erasure_stack.log()[before:]
    assert status == 200, body
    assert body["result"] == "dry_run" and body["dry_run"] is True
    [contact] = body["contacts"]
    assert contact["action"] == "would_scrub_and_archive" and contact["archive"] is True
    assert set(contact["fields"]) == set(SCRUBBED_VALUES) - {"notes", "title"}
    assert sent and not writes(sent)
    stored = erasure_stack.contact(contact_id)
    assert stored["first_name"] == PERSONAL["first_name"] and not stored["archived_at"]


def test_the_same_request_id_returns_the_stored_outcome_without_cliniko(erasure_stack):
    contact_id = erasure_stack.seed()
    first_status, first = post(erasure(request_id="again", contact_id=contact_id))
    before = len(erasure_stack.log())

    status, repeat = post(erasure(request_id="again", contact_id=contact_id))

    assert first_status == status == 200
    assert erasure_stack.log()[before:] == []
    first.pop("cliniko_requests")
    assert repeat.pop("cliniko_requests") == 0
    assert repeat == first


def test_a_reused_request_id_for_another_person_is_409(erasure_stack):
    contact_id = erasure_stack.seed()
    post(erasure(request_id="reused", contact_id=contact_id))
    status, body = post(erasure(request_id="reused", email="other@example.com"))
    assert status == 409 and "different request" in body["message"]


def test_an_already_archived_contact_is_scrubbed_and_stays_archived(erasure_stack):
    contact_id = erasure_stack.seed()
    erasure_stack.cliniko.client().archive_contact(contact_id)
    archived_at = erasure_stack.contact(contact_id)["archived_at"]
    before = len(erasure_stack.log())

    status, body = post(erasure(request_id="archived", email=EMAIL))

    sent = erasure_stack.log()[before:]
    assert status == 200, body
    [contact] = body["contacts"]
    assert contact["action"] == "scrubbed_and_archived" and contact["archive"] is False
    # the lookups (main-clinic's, north-clinic's), the scrub and the read back: no 2nd archive
    assert [e["method"] for e in sent] == ["GET", "GET", "PATCH", "GET"]
    assert_scrubbed_and_archived(erasure_stack, contact_id)
    assert erasure_stack.contact(contact_id)["archived_at"] == archived_at


# As the seed's examples show a contact (its list items without country_code or doctor_type),
# an erased contact was written again each time, reported newly scrubbed, and a dry run found
# work to do: the list's item is now read by id before anything is written.
@pytest.mark.parametrize(
    ("seed_shapes", "reads"), [(False, ["GET"]), (True, ["GET", "GET"])], ids=["full", "seed"]
)
def test_an_already_scrubbed_and_archived_contact_counts_as_done(erasure_stack, seed_shapes, reads):
    erasure_stack.cliniko.control.set_behaviour(seed_shapes=seed_shapes)
    contact_id = erasure_stack.seed()
    post(erasure(request_id="earlier", contact_id=contact_id))
    before = len(erasure_stack.log())

    status, body = post(erasure(request_id="dry", contact_id=contact_id, dry_run=True))
    assert status == 200, body
    assert body["contacts"][0]["action"] == "nothing_to_do"
    status, body = post(erasure(request_id="later", contact_id=contact_id))

    sent = erasure_stack.log()[before:]
    assert status == 200, body
    assert body["contacts"][0]["action"] == "already_scrubbed_and_archived"
    assert [e["method"] for e in sent] == reads * 2


@pytest.mark.parametrize(
    "iam",
    [
        None,
        {},
        {**IAM_CONTEXT, "userArn": None},
        {**IAM_CONTEXT, "userArn": ""},
        # hand-made events of other shapes (a direct invoke): no identity, not a 500
        "arn:aws:iam::123456789012:user/ops",
        {**IAM_CONTEXT, "userArn": ["arn:aws:iam::123456789012:user/ops"]},
    ],
    ids=["no-authorizer", "empty-iam", "null-arn", "blank-arn", "iam-a-string", "arn-a-list"],
)
def test_an_event_without_iam_identity_is_refused(erasure_stack, iam, capsys):
    contact_id = erasure_stack.seed()
    before = len(erasure_stack.log())

    status, body = post(erasure(request_id="unsigned", contact_id=contact_id), iam=iam)
    assert status == 403, body
    status, body = get("unsigned", iam=iam)
    assert status == 403, body

    assert erasure_stack.log()[before:] == []
    assert erasure_stack.audit_items() == []
    refusals = [
        json.loads(line)
        for line in capsys.readouterr().out.splitlines()
        if '"ErasureRequestRefused"' in line
    ]
    assert [r["reason"] for r in refusals] == ["unauthenticated"] * 2


@pytest.fixture
def lambda_logs() -> Iterator[io.StringIO]:
    """The erasure logger's output, formatted by Powertools exactly as in CloudWatch."""
    stream = io.StringIO()
    handler = logging.StreamHandler(stream)
    handler.setFormatter(api_handler.logger.registered_formatter)
    target = logging.getLogger(api_handler.logger.name)
    target.addHandler(handler)
    yield stream
    target.removeHandler(handler)


def test_neither_logs_nor_the_audit_table_hold_personal_values(
    erasure_stack, capfd, caplog, lambda_logs
):
    contact_id = erasure_stack.seed()
    status, body = post(erasure(request_id="pii-check", email=EMAIL))
    assert status == 200, body
    # and the paths that talk about a request without erasing anything
    post(erasure(request_id="pii-dry", email=EMAIL, dry_run=True))
    post(erasure(request_id="pii-bad", email=EMAIL, reason=f"asked by {EMAIL}"))
    post(erasure(request_id="pii-check", email="nobody+x@example.com"))

    out, err = capfd.readouterr()
    logs = "\n".join([lambda_logs.getvalue(), caplog.text, out, err])
    # the capture really holds the function's structured logs
    assert '"erasure_request_id":"pii-check"' in lambda_logs.getvalue().replace(" ", "")
    assert contact_id in lambda_logs.getvalue()
    assert PEPPER not in logs and erasure_stack.cliniko.api_key not in logs
    items = erasure_stack.audit_items()
    assert {i["request_id"] for i in items} == {"pii-check", "pii-dry"}
    idempotency = boto3.resource("dynamodb").Table(erasure_stack.idempotency_table)
    table = json.dumps([items, idempotency.scan()["Items"]], default=str)
    assert "pii-check" in table and "erasure-request#" in table  # both tables were read
    values = [*personal_values(PERSONAL), "nobody+x@example.com"]
    assert whole_values_in(logs, values) == []
    assert whole_values_in(table, values) == []
    received = next(
        i for i in items if i["sk"] == "000#received" and i["request_id"] == "pii-check"
    )
    assert received["caller"] == CALLER_ARN
    assert len(received["email_hmac"]) == 64


def test_bad_input_gets_a_clear_error_not_a_500(erasure_stack):
    status, body = post("{not json")
    assert status == 422 and "body" in body["errors"]
    status, body = post(erasure(request_id="no-target"))
    assert status == 422 and "body" in body["errors"]
    status, body = post(erasure(request_id="r", contact_id="12ab"))
    assert status == 422 and "contact_id" in body["errors"]
    status, body = post([1, 2])
    assert status == 422
    status, body = get("never-sent")
    assert status == 404
    assert erasure_stack.audit_items() == []


def test_cliniko_failure_is_a_502_and_the_request_can_be_retried(erasure_stack):
    contact_id = erasure_stack.seed()
    erasure_stack.cliniko.control.set_faults(error_rate=1.0, statuses=[500])
    status, body = post(erasure(request_id="retry-me", contact_id=contact_id))
    assert status == 502, body
    assert body["status"] == "failed" and "send it again" in body["message"]
    assert get("retry-me")[1]["status"] == "failed"

    erasure_stack.cliniko.control.set_faults(error_rate=0.0, statuses=[500])
    status, body = post(erasure(request_id="retry-me", contact_id=contact_id))
    assert status == 200 and body["result"] == "erased"
    assert_scrubbed_and_archived(erasure_stack, contact_id)


def hold_claim(erasure_stack, email: str, account: str = stack.ACCOUNT) -> Any:
    """The intake worker's claim on a person, as it holds it while it looks them up and
    creates their contact."""
    claims = DynamoClaims(boto3.client("dynamodb"), erasure_stack.idempotency_table)
    return claims.hold(claim_key(account, "email", email.lower()))


def test_an_erasure_waits_for_the_create_in_flight_and_erases_what_it_made(erasure_stack):
    """The worker has looked (no tombstone yet) and is creating the person's contact when the
    request comes: the erasure looks them up only once that create is answered, and erases
    the contact it made. Looked up earlier, the contact would be left with every detail."""
    answers: list[tuple[int, dict[str, Any]]] = []
    with hold_claim(erasure_stack, EMAIL, stack.OTHER_ACCOUNT):
        before = len(erasure_stack.log())
        erasing = threading.Thread(
            target=lambda: answers.append(post(erasure(request_id="race", email=EMAIL)))
        )
        erasing.start()
        time.sleep(0.8)
        assert erasure_stack.log()[before:] == [], "looked up while a create was in flight"
        contact_id = erasure_stack.seed(stack.OTHER_ACCOUNT)
    erasing.join(timeout=30)

    [(status, body)] = answers
    assert status == 200 and body["result"] == "erased", body
    assert body["contact_ids"] == [contact_id]
    stored = erasure_stack.contact(contact_id, stack.OTHER_ACCOUNT)
    assert stored["archived_at"] and not stored.get("email")


def test_a_create_in_flight_throughout_fails_the_attempt_before_any_lookup(erasure_stack):
    # The fence waits its 5 s for the claim, then gives up.
    erasure_stack.seed()
    before = len(erasure_stack.log())
    with hold_claim(erasure_stack, EMAIL):
        status, body = post(erasure(request_id="busy", email=EMAIL))
    assert status == 502 and body["status"] == "failed", body
    assert "submission_in_progress" in body["message"] and "send it again" in body["message"]
    assert erasure_stack.log()[before:] == []

    status, body = post(erasure(request_id="busy", email=EMAIL))
    assert status == 200 and body["result"] == "erased", body


def test_misconfiguration_is_a_503_that_names_no_value(erasure_stack, monkeypatch):
    contact_id = erasure_stack.seed()
    monkeypatch.setenv("PEPPER_SECRET_NAME", "erasure/no-such-pepper")
    status, body = post(erasure(request_id="cfg", contact_id=contact_id))
    assert status == 503 and body == {"message": "erasure is not configured"}
    monkeypatch.delenv("AUDIT_TABLE")
    status, body = get("cfg")
    assert status == 503
    assert erasure_stack.audit_items() == []


def test_an_unreachable_idempotency_table_is_a_503_and_the_same_id_goes_through_later(
    erasure_stack, monkeypatch
):
    contact_id = erasure_stack.seed()
    monkeypatch.setenv("IDEMPOTENCY_TABLE", "no-such-table")
    before = len(erasure_stack.log())
    status, body = post(erasure(request_id="idem-down", contact_id=contact_id))
    assert status == 503 and "send the same request again later" in body["message"]
    assert erasure_stack.log()[before:] == [] and erasure_stack.audit_items() == []

    monkeypatch.setenv("IDEMPOTENCY_TABLE", erasure_stack.idempotency_table)
    status, body = post(erasure(request_id="idem-down", contact_id=contact_id))
    assert status == 200 and body["result"] == "erased"


def test_an_event_not_from_the_http_api_is_refused_as_without_identity(erasure_stack):
    # A direct invoke, or a schedule's event: not the API's AWS_IAM routes, so no identity.
    before = len(erasure_stack.log())
    for event in ({}, {"request_id": "direct", "contact_id": "1", "reason": "t"}):
        response = api_handler.lambda_handler(event, LambdaContext())
        assert response["statusCode"] == 403, response
        assert json.loads(response["body"]) == {"message": api_handler.UNAUTHENTICATED}
    assert erasure_stack.log()[before:] == [] and erasure_stack.audit_items() == []


def test_an_unknown_route_is_a_404_not_a_500(erasure_stack):
    event = http_api_event("DELETE", "/erasure-requests/x", route_key="$default")
    response = api_handler.lambda_handler(event, LambdaContext())
    assert response["statusCode"] == 404


def extend(request_id: str, body: Any) -> tuple[int, dict[str, Any]]:
    event = http_api_event(
        "POST",
        f"/erasure-requests/{request_id}/extension",
        body=body,
        path_parameters={"id": request_id},
        route_key="POST /erasure-requests/{id}/extension",
    )
    response = api_handler.lambda_handler(event, LambdaContext())
    return response["statusCode"], json.loads(response["body"])


def test_status_carries_due_date_and_receipt_and_an_open_request_is_extended(erasure_stack):
    contact_id = erasure_stack.seed()
    erasure_stack.cliniko.control.set_faults(error_rate=1.0, statuses=[500])
    status, first = post(erasure(request_id="ext-1", contact_id=contact_id))
    erasure_stack.cliniko.control.clear_faults()
    assert status == 502 and first["receipt"]["outcome"] == "failed"

    status, body = extend("ext-1", {"reason": "complex request, ticket PRIV-8"})
    assert status == 200, body
    assert body["due_extended"] is True and body["due_at"] > first["due_at"]
    status, body = extend("ext-1", {"reason": "again"})
    assert status == 409 and "already extended" in body["message"]
    status, body = extend("ext-1", {"reason": "call 0412 345 678"})
    assert status == 422  # the reason is refused: it looks like a phone number
    status, body = extend("ext-1", {})
    assert status == 422 and "reason" in body["errors"]

    status, done = post(erasure(request_id="ext-1", contact_id=contact_id))
    assert status == 200 and done["result"] == "erased"
    assert done["due_extended"] is True
    status, body = get("ext-1")
    assert body["receipt"]["completed_at"] == done["finished_at"]
    assert body["receipt"]["chain_head"] == done["receipt"]["chain_head"]


def test_a_key_cliniko_refuses_answers_what_to_check(erasure_stack):
    import boto3

    contact_id = erasure_stack.seed()
    boto3.client("secretsmanager").put_secret_value(
        SecretId=erasure_stack.key_secret, SecretString="not-a-known-key-au1"
    )
    status, body = post(erasure(request_id="bad-key", contact_id=contact_id))
    assert status == 502 and body["status"] == "failed"
    assert "belongs to another shard" in body["message"]
    assert "to retry" not in body["message"]
