"""The gateway's API Gateway v2 events and its reading of a function's answer."""

from __future__ import annotations

import base64

import pytest
from local_run.gateway import Gateway, _to_http
from local_run.template import HttpRoute

ROUTE = HttpRoute("POST", "/forms/{source}", "IntakeApiFunction", None)
IAM_ROUTE = HttpRoute("GET", "/erasure-requests/{id}", "ErasureApiFunction", "AWS_IAM")


@pytest.fixture
def gateway():
    gateway = Gateway([ROUTE, IAM_ROUTE], {}, {"AllowOrigins": ["https://clinic.example"]})
    yield gateway
    gateway._server.server_close()


def test_routes_match_path_parameters(gateway):
    assert gateway.match("POST", "/forms/web%20site") == (ROUTE, {"source": "web site"})
    assert gateway.match("GET", "/forms/x") is None
    assert gateway.match("POST", "/forms/a/b") is None
    assert gateway.match("GET", "/erasure-requests/r-1") == (IAM_ROUTE, {"id": "r-1"})


def test_form_post_event_is_payload_2_0_with_a_base64_body(gateway):
    body = b"name=Ada+Lovelace&website="
    event = gateway.event(
        ROUTE,
        {"source": "html"},
        "POST",
        "/forms/html",
        "a=1&a=2&b=",
        [
            ("Content-Type", "application/x-www-form-urlencoded"),
            ("X-Dup", "one"),
            ("x-dup", "two"),
            ("Cookie", "c1=v1; c2=v2"),
            ("Host", "127.0.0.1:3000"),
        ],
        body,
        "127.0.0.1",
    )
    assert event["version"] == "2.0"
    assert event["routeKey"] == "POST /forms/{source}"
    assert event["requestContext"]["routeKey"] == "POST /forms/{source}"
    assert event["requestContext"]["http"]["method"] == "POST"
    assert event["pathParameters"] == {"source": "html"}
    assert event["headers"]["x-dup"] == "one,two"
    assert "cookie" not in event["headers"] and event["cookies"] == ["c1=v1", "c2=v2"]
    assert event["queryStringParameters"] == {"a": "1,2", "b": ""}
    assert event["rawQueryString"] == "a=1&a=2&b="
    assert event["isBase64Encoded"] is True
    assert base64.b64decode(event["body"]) == body
    assert "authorizer" not in event["requestContext"]


def test_json_body_is_plain_text(gateway):
    event = gateway.event(
        ROUTE,
        {"source": "j"},
        "POST",
        "/forms/j",
        "",
        [("content-type", "application/json; charset=utf-8")],
        b'{"a": 1}',
        "127.0.0.1",
    )
    assert event["isBase64Encoded"] is False and event["body"] == '{"a": 1}'


def test_iam_route_gets_the_signers_identity(gateway):
    authorization = (
        "AWS4-HMAC-SHA256 Credential=AKIAEXAMPLE123/20261123/eu-west-1/execute-api/aws4_request, "
        "SignedHeaders=host;x-amz-date, Signature=abc"
    )
    event = gateway.event(
        IAM_ROUTE,
        {"id": "r-1"},
        "GET",
        "/erasure-requests/r-1",
        "",
        [("Authorization", authorization)],
        b"",
        "127.0.0.1",
    )
    iam = event["requestContext"]["authorizer"]["iam"]
    assert iam["accessKey"] == "AKIAEXAMPLE123"
    assert iam["userArn"].startswith("arn:aws:iam::123456789012:")
    assert "body" not in event


def test_cors_for_allowed_origins_only(gateway):
    assert gateway.cors_headers("https://clinic.example")["Access-Control-Allow-Origin"] == (
        "https://clinic.example"
    )
    assert gateway.cors_headers("https://evil.example") == {}
    assert gateway.cors_headers(None) == {}


def test_function_answers_become_http():
    status, headers, body = _to_http(
        {
            "statusCode": 303,
            "headers": {"Location": "https://clinic.example/thanks"},
            "cookies": ["a=1", "b=2"],
            "body": "",
        }
    )
    assert status == 303
    assert body == b""
    assert ("Location", "https://clinic.example/thanks") in headers
    assert [v for k, v in headers if k == "Set-Cookie"] == ["a=1", "b=2"]
    assert _to_http({"statusCode": 200, "body": "aGk=", "isBase64Encoded": True})[2] == b"hi"
    # Format 2.0: a bare value is a 200 with it as JSON.
    assert _to_http({"ok": True}) == (200, [("Content-Type", "application/json")], b'{"ok": true}')
