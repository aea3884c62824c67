"""Property-based fuzzing of every HTTP route, as API Gateway hands requests to the Lambdas.

Intake: `POST /forms/{source}` for every source in the shipped form_sources.yaml (so every
provider), each source with its own signing secret or token. Erasure: `POST /erasure-requests`
and `GET /erasure-requests/{id}`, with and without an IAM identity. Bodies are valid samples,
samples with adversarial values put in, mutated bytes, random JSON (surrogates, NULs, deep
nesting), random bytes and oversized bodies, sent as text or base64 (and base64 that is not);
content types, header names in any case and duplicated (API Gateway joins them with commas),
signatures valid over the body, valid over another body, made with another source's secret,
garbage, with odd timestamps; random query strings. And events of another shape than API
Gateway's (a direct invoke's), one part removed or of another type, at both functions.

Whatever arrives, these hold:
- no 5xx (the dependencies are up: a 503 here would be a bug answered as an outage);
- every refusal is JSON with a `message`, or, for a trusted browser form, a 303 to the
  source's error page;
- a refusal queues nothing, an acceptance queues exactly one readable submission;
- every invocation answers within HANDLER_BOUND_SECONDS, the intake function's timeout (a
  bound against hangs and pathological parsing, not a speed measurement).

Cases per route are printed at the end of the run (tests/fuzz/conftest.py). Run the long
profile with `pytest tests/fuzz --hypothesis-profile=long`.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import time
from typing import Any
from urllib.parse import urlencode

import boto3
import pytest
from aws_lambda_powertools.utilities import parameters
from cliniko_automations.erasure import api_handler as erasure_api
from cliniko_automations.intake.config import DEFAULT_PATH, load_form_sources
from cliniko_automations.intake.submission import Submission
from cliniko_automations.intake_api.accept import DEFAULT_MAX_BODY_BYTES
from hypothesis import given
from hypothesis import strategies as st

from tests.fixtures.apigw import LambdaContext, form_post_event, http_api_event
from tests.unit.intake_api import samples

SOURCES = load_form_sources(DEFAULT_PATH).sources
# The intake API function's timeout in template.yaml (10 s): an answer later than that would
# reach the sender as API Gateway's 500. Normal answers take milliseconds; a shared, loaded
# test machine needs the headroom.
HANDLER_BOUND_SECONDS = 10.0
MAX_BODY_BYTES = DEFAULT_MAX_BODY_BYTES


def _secret_for(source: str) -> str:
    # Each source its own secret, so a signature made for one source is a forgery at another.
    return f"whsec_{source}_{hashlib.sha256(source.encode()).hexdigest()[:16]}"


def _hmac(secret: str, message: bytes) -> bytes:
    return hmac.new(secret.encode(), message, hashlib.sha256).digest()


# --- values ----------------------------------------------------------------------------------

NASTY_TEXT = st.sampled_from(
    [
        "\ud800",
        "Okonkwo\udfff",
        "a\x00b",
        "\x00",
        "😀",
        "\u202e",
        "١٧٠٠",
        "¹²³",
        "9" * 400,
        "-1",
        " ",
        "",
        "%00",
        "<script>",
        "a@b.c",
        "x" * 5000,
        "\r\n",
        "{{}}",
        "{_source}",
    ]
)
TEXT = st.one_of(st.text(max_size=30), NASTY_TEXT)
# A query string arrives as bytes API Gateway decoded: no lone surrogates there.
QUERY_TEXT = st.one_of(
    st.text(max_size=20), st.sampled_from(["١٧٠٠", "\x00", "%ff", "+", "&&==", "token", ""])
)
JSON_SCALARS = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(),
    st.integers(min_value=10**300, max_value=10**310),
    st.floats(allow_nan=True, allow_infinity=True),
    TEXT,
)
JSON_VALUES = st.recursive(
    JSON_SCALARS,
    lambda children: st.lists(children, max_size=4) | st.dictionaries(TEXT, children, max_size=4),
    max_leaves=12,
)


def _deep(depth: int, kind: str) -> Any:
    if kind == "list":
        value: Any = "x"
        for _ in range(depth):
            value = [value]
        return value
    value = "x"
    for _ in range(depth):
        value = {"a": value}
    return value


def _dumps(value: Any, ascii_only: bool) -> bytes:
    try:
        return json.dumps(value, ensure_ascii=ascii_only).encode("utf-8", "surrogatepass")
    except (RecursionError, ValueError):
        return b"[]"


# --- intake deliveries -----------------------------------------------------------------------

SAMPLE_JSON = {
    "typeform": lambda: json.loads(samples.typeform_body()),
    "tally": lambda: json.loads(samples.tally_body()),
    "webflow": lambda: json.loads(samples.webflow_body()),
    "formspree": lambda: json.loads(samples.formspree_body()),
    "json": lambda: json.loads(samples.json_body()),
}
HTML_FIELDS = {
    "name": samples.NAME,
    "email": samples.EMAIL,
    "phone": "0412987654",
    "organisation": "Harbour Medical",
    "message": "Please call",
    "website": "",
    "cf-turnstile-response": "pass-token",
}


@st.composite
def intake_body(draw: st.DrawFn, provider: str) -> tuple[bytes, str]:
    """(body, its natural content type) for a provider."""
    kind = draw(
        st.sampled_from(
            # Mostly bodies of the provider's shape, so the cases reach mapping and validation.
            [
                "sample",
                "sample_values",
                "sample_values",
                "sample_values",
                "mutated",
                "json",
                "deep",
                "bytes",
                "large",
                "empty",
            ]
        )
    )
    replacements = draw(st.lists(st.tuples(st.integers(0, 99), JSON_VALUES), max_size=4))
    ascii_only = draw(st.booleans())
    if provider in SAMPLE_JSON:
        content_type = "application/json"
        sample = SAMPLE_JSON[provider]()
        if kind == "sample":
            body = _dumps(sample, True)
        elif kind == "sample_values":
            body = _dumps(samples.with_values(sample, replacements), ascii_only)
        elif kind == "json":
            body = _dumps(draw(JSON_VALUES), ascii_only)
        elif kind == "deep":
            depth = draw(st.sampled_from([33, 100, 1000, 5000, 10_000]))
            inner = _deep(depth, draw(st.sampled_from(["list", "dict"])))
            body = (
                b'{"deep": '
                + (b"[" * depth + b"]" * depth if depth > 900 else _dumps(inner, True))
                + b"}"
            )
            if depth <= 900 and draw(st.booleans()):
                body = _dumps(samples.with_values(sample, [(0, inner)]), True)
        else:
            body = _dumps(sample, True)
    else:
        fields = dict(HTML_FIELDS)
        if provider == "jotform":
            raw = samples.jotform_raw_request()
            raw_text = json.dumps(samples.with_values(raw, replacements), ensure_ascii=ascii_only)
            if kind == "deep":
                depth = draw(st.sampled_from([33, 1000, 10_000]))
                raw_text = "[" * depth + "]" * depth
            fields = {"formID": "1", "submissionID": draw(TEXT), "rawRequest": raw_text}
        elif kind == "sample_values":
            for index, value in replacements:
                fields[sorted(fields)[index % len(fields)]] = str(value)
        if draw(st.booleans()) or provider == "jotform":
            boundary = draw(st.sampled_from(["b0undary", "----x", "a" * 70]))
            parts = []
            for name, value in fields.items():
                charset = draw(st.sampled_from(["", "utf-8", "unicode_escape", "utf-16", "bogus"]))
                header = f"\r\nContent-Type: text/plain; charset={charset}" if charset else ""
                parts.append(
                    f'--{boundary}\r\nContent-Disposition: form-data; name="{name}"{header}'
                    f"\r\n\r\n{value}\r\n"
                )
            body = ("".join(parts) + f"--{boundary}--\r\n").encode("utf-8", "surrogatepass")
            content_type = f"multipart/form-data; boundary={boundary}"
        else:
            body = urlencode(
                [(k, v.encode("utf-8", "surrogatepass")) for k, v in fields.items()]
            ).encode()
            content_type = "application/x-www-form-urlencoded"
    if kind == "mutated":
        for position, byte in draw(
            st.lists(
                st.tuples(st.integers(0, 10**6), st.binary(max_size=3)), min_size=1, max_size=4
            )
        ):
            at = position % (len(body) + 1)
            body = body[:at] + byte + body[at + 1 :]
    elif kind == "bytes":
        body = draw(st.binary(max_size=300))
    elif kind == "large":
        body = body + b" " * (MAX_BODY_BYTES + 1 - len(body) + draw(st.integers(-2, 2)))
    elif kind == "empty":
        body = b""
    return body, content_type


@st.composite
def intake_request(draw: st.DrawFn, source_name: str) -> dict[str, Any]:
    """A `POST /forms/{source}` event, signed (or not) as a sender or an attacker would."""
    source = SOURCES[source_name]
    provider = source.provider
    body, natural_type = draw(intake_body(provider))
    signed_body = body
    sig = draw(
        st.sampled_from(
            ["valid", "valid", "valid", "tampered", "other_source", "none", "garbage", "odd_time"]
        )
    )
    if sig == "tampered":
        signed_body = body + b" " if draw(st.booleans()) else body[:-1]
    secret = _secret_for(source_name)
    if sig == "other_source":
        secret = _secret_for(draw(st.sampled_from(sorted(set(SOURCES) - {source_name}))))
    now = time.time()
    stamp = str(int(now))
    if sig == "odd_time":
        stamp = draw(
            st.sampled_from(["١٧٠٠٠٠٠٠٠٠", "¹²³", "9" * 400, "-5", "0", str(int(now) - 301), ""])
            | st.text(max_size=12)
        )
    headers: dict[str, str] = {}
    if provider == "typeform":
        headers["Typeform-Signature"] = (
            "sha256=" + base64.b64encode(_hmac(secret, signed_body)).decode()
        )
    elif provider == "tally":
        headers["Tally-Signature"] = base64.b64encode(_hmac(secret, signed_body)).decode()
    elif provider == "webflow":
        millis = stamp + "000" if sig != "odd_time" else stamp
        message = millis.encode("utf-8", "surrogatepass") + b":" + signed_body
        headers["x-webflow-timestamp"] = millis
        headers["x-webflow-signature"] = _hmac(secret, message).hex()
    elif provider in ("formspree", "json"):
        name = "Formspree-Signature" if provider == "formspree" else "X-Signature"
        message = stamp.encode("utf-8", "surrogatepass") + b"." + signed_body
        headers[name] = f"t={stamp},v1={_hmac(secret, message).hex()}"
        if provider == "json" and draw(st.booleans()):
            headers["Idempotency-Key"] = draw(TEXT)
    if sig == "none":
        headers = {}
    elif sig == "garbage":
        headers = {name: draw(TEXT) for name in headers}
    query: dict[str, str] = draw(st.dictionaries(QUERY_TEXT, QUERY_TEXT, max_size=3))
    if source.token_secret is not None and sig != "none":
        token = _secret_for(source_name) if sig in ("valid", "tampered", "odd_time") else secret
        if sig == "garbage":
            token = draw(QUERY_TEXT)
        if draw(st.booleans()):
            query["token"] = token
        else:
            headers["X-Intake-Token"] = token
    if provider == "html":
        headers["Origin"] = draw(
            st.sampled_from(
                [samples.ORIGIN] * 4 + ["https://example-clinic.com.au", "https://evil.example"]
            )
        )
        if not draw(st.integers(0, 7)):
            headers["Origin"] = draw(TEXT)
    content_type = draw(
        st.sampled_from(
            [
                natural_type,
                natural_type,
                natural_type,
                natural_type,
                natural_type.upper(),
                natural_type + "; charset=utf-8",
                "text/plain",
                "application/json",
                "multipart/form-data",
                "",
            ]
        )
    )
    if not draw(st.integers(0, 7)):
        content_type = draw(TEXT)
    if content_type:
        headers["Content-Type"] = content_type
    # Header names in any case; a repeated header arrives joined with a comma.
    cased = {}
    for name, value in headers.items():
        style = draw(st.sampled_from(["same", "lower", "upper"]))
        cased[{"same": name, "lower": name.lower(), "upper": name.upper()}[style]] = value
    if headers and not draw(st.integers(0, 7)):
        name = draw(st.sampled_from(sorted(headers)))
        cased[name.swapcase()] = draw(TEXT)
    encoding = draw(st.sampled_from(["text", "base64", "bad_base64"]))
    event = form_post_event(source_name, b"", {}, query=query)
    lowered: dict[str, str] = dict(event["headers"])
    for name, value in cased.items():
        key = name.lower()
        lowered[key] = f"{lowered[key]},{value}" if key in lowered else value
    event["headers"] = lowered
    if body:
        if encoding == "text":
            event["body"] = body.decode("utf-8", "surrogateescape")
        elif encoding == "base64":
            event["body"] = base64.b64encode(body).decode()
            event["isBase64Encoded"] = True
        else:
            event["body"] = base64.b64encode(body).decode()[:-1] + "!"
            event["isBase64Encoded"] = True
    return event


@pytest.fixture
def fuzz_intake(intake):
    """The intake world with each source's own secret (a borrowed signature must fail)."""
    client = boto3.client("secretsmanager")
    for name, source in SOURCES.items():
        secret_name = source.signing_secret or source.token_secret
        if secret_name:
            client.put_secret_value(SecretId=secret_name, SecretString=_secret_for(name))
    parameters.clear_caches()
    intake.messages()  # nothing left over
    return intake


def _check_answer(
    answer: dict[str, Any], source_name: str, queued: list[dict[str, Any]], stored: Any
) -> None:
    status = answer["statusCode"]
    assert status < 500, answer
    source = SOURCES[source_name]
    if status == 303:
        assert source.html is not None, answer
        location = answer["headers"]["Location"]
        if any(location.startswith(url) for url in source.html.error_urls):
            assert queued == [], "a refused browser post was queued"
        else:
            assert any(location.startswith(url) for url in source.html.success_urls), location
            assert len(queued) <= 1  # the honeypot drops quietly
    elif status == 202:
        assert len(queued) == 1
    else:
        assert queued == [], f"{status} but something was queued"
    if status >= 400:
        body = json.loads(answer["body"])
        assert isinstance(body, dict) and isinstance(body.get("message"), str) and body["message"]
    for message in queued:  # the queue names it; its body is in the submission store
        assert isinstance(stored(message), Submission)


@pytest.mark.parametrize("source_name", sorted(SOURCES))
def test_intake_route(fuzz_intake, tally, source_name):
    @given(event=intake_request(source_name))
    def run(event):
        started = time.monotonic()
        answer = fuzz_intake.invoke(event)
        elapsed = time.monotonic() - started
        queued = fuzz_intake.messages()
        tally.record(f"POST /forms/{source_name}", answer["statusCode"])
        _check_answer(answer, source_name, queued, fuzz_intake.stored)
        assert elapsed < HANDLER_BOUND_SECONDS

    run()


def test_intake_unknown_sources_and_routes(fuzz_intake, tally):
    known = set(SOURCES)

    @given(
        method=st.sampled_from(["POST", "GET", "PUT", "DELETE", "OPTIONS"]),
        name=st.text(max_size=40).filter(lambda name: name not in known),
        body=st.binary(max_size=200),
    )
    def run(method, name, body):
        path = f"/forms/{name}"
        event = http_api_event(
            method,
            path,
            body,
            {"content-type": "application/json"},
            path_parameters={"source": name},
            route_key="$default",
            base64=True,
        )
        answer = fuzz_intake.invoke(event)
        tally.record("other paths and unknown sources", answer["statusCode"])
        assert answer["statusCode"] in (404, 405), answer
        assert json.loads(answer["body"])["message"]
        assert fuzz_intake.messages() == []

    run()


# --- erasure ---------------------------------------------------------------------------------

IAM = {
    "accessKey": "AKIAIOSFODNN7EXAMPLE",
    "accountId": "123456789012",
    "callerId": "AIDACKCEVSQ6C2EXAMPLE",
    "principalOrgId": "o-abc123",
    "userArn": "arn:aws:iam::123456789012:user/privacy-officer",
    "userId": "AIDACKCEVSQ6C2EXAMPLE",
}
# Per field: a valid value (so cases get past validation to the audit table and Cliniko),
# or anything at all.
ERASURE_FIELDS = {
    "request_id": (st.from_regex(r"\A[A-Za-z0-9][A-Za-z0-9._:-]{0,20}\Z"), TEXT),
    "contact_id": (st.sampled_from(["1", "123456789012345678", 42]), JSON_VALUES),
    "email": (st.sampled_from(["a+b@example.com", "X@Y.ZZ", "z%z@example.org"]), TEXT),
    "account": (st.sampled_from(["main-clinic", "north-clinic", "no-such-clinic"]), JSON_VALUES),
    "reason": (st.sampled_from(["GDPR art. 17", "ticket PRIV-7"]), TEXT),
    "dry_run": (st.booleans(), JSON_SCALARS),
    "erase_all_matches": (st.booleans(), JSON_SCALARS),
}


@st.composite
def erasure_body(draw: st.DrawFn) -> bytes:
    kind = draw(st.sampled_from(["fields", "fields", "json", "deep", "bytes"]))
    if kind == "fields":
        chosen = draw(st.lists(st.sampled_from(sorted(ERASURE_FIELDS)), unique=True))
        body: Any = {}
        target = draw(st.sampled_from(["contact_id", "email"]))
        for name in ["request_id", "reason", target, *chosen]:
            valid, anything = ERASURE_FIELDS[name]
            body[name] = draw(valid if draw(st.integers(0, 3)) else anything)
        if not draw(st.integers(0, 3)):
            body.update(draw(st.dictionaries(TEXT, JSON_VALUES, max_size=2)))
        return _dumps(body, draw(st.booleans()))
    if kind == "json":
        return _dumps(draw(JSON_VALUES), draw(st.booleans()))
    if kind == "deep":
        depth = draw(st.sampled_from([33, 1000, 10_000]))
        return b'{"request_id": "d", "x": ' + b"[" * depth + b"]" * depth + b"}"
    return draw(st.binary(max_size=200))


@st.composite
def erasure_request(draw: st.DrawFn) -> tuple[str, dict[str, Any]]:
    if draw(st.booleans()):
        route = "POST /erasure-requests"
        body = draw(erasure_body())
        event = http_api_event("POST", "/erasure-requests", b"", {}, route_key=route)
        if body:
            if draw(st.booleans()):
                event["body"] = base64.b64encode(body).decode()
                event["isBase64Encoded"] = True
            else:
                event["body"] = body.decode("utf-8", "surrogateescape")
        content_type = draw(st.sampled_from(["application/json"] * 4 + ["text/plain", ""]))
        if content_type:
            event["headers"]["content-type"] = content_type
    else:
        route = "GET /erasure-requests/{id}"
        request_id = draw(TEXT | st.sampled_from(["r-1", "a" * 200]))
        event = http_api_event(
            "GET",
            "/erasure-requests/x",
            path_parameters={"id": request_id},
            route_key=route,
            query=draw(st.dictionaries(QUERY_TEXT, QUERY_TEXT, max_size=2)),
        )
        event["rawPath"] = "/erasure-requests/" + request_id
        event["requestContext"]["http"]["path"] = event["rawPath"]
    if draw(st.sampled_from([True] * 9 + [False])):  # mostly an IAM caller; sometimes none
        event["requestContext"]["authorizer"] = {"iam": IAM}
    return route, event


def test_erasure_routes(erasure_stack, tally):
    erasure_stack.cliniko.allow_invalid_requests()  # checked separately below

    @given(case=erasure_request())
    def run(case):
        route, event = case
        started = time.monotonic()
        answer = erasure_api.lambda_handler(event, LambdaContext(function_name="ErasureApi"))
        elapsed = time.monotonic() - started
        tally.record(route, answer["statusCode"])
        assert answer["statusCode"] < 500, answer
        body = json.loads(answer["body"])
        if answer["statusCode"] >= 400:
            assert isinstance(body.get("message"), str) and body["message"], answer
        assert elapsed < HANDLER_BOUND_SECONDS

    run()
    # Whatever the callers sent, what reached Cliniko kept to openapi.yaml.
    assert erasure_stack.cliniko.violations()["request"] == []


# --- events of another shape -----------------------------------------------------------------

# Where an event's parts sit: API Gateway always sends these with these types; a direct invoke
# may send anything.
EVENT_PARTS = [
    (),
    ("requestContext",),
    ("requestContext", "http"),
    ("requestContext", "http", "method"),
    ("requestContext", "http", "sourceIp"),
    ("requestContext", "stage"),
    ("rawPath",),
    ("rawQueryString",),
    ("headers",),
    ("headers", "content-type"),
    ("queryStringParameters",),
    ("pathParameters",),
    ("cookies",),
    ("body",),
    ("isBase64Encoded",),
]


@st.composite
def reshaped(draw: st.DrawFn, event: dict[str, Any]) -> Any:
    """`event` with one of its parts removed or of another type (the whole event too)."""
    path = draw(st.sampled_from(EVENT_PARTS))
    value = draw(JSON_VALUES)
    if not path:
        return value
    event = json.loads(json.dumps(event))
    parent = event
    for key in path[:-1]:
        parent = parent[key]
    if draw(st.booleans()):
        parent.pop(path[-1], None)
    else:
        parent[path[-1]] = value
    return event


def test_events_of_another_shape_are_answered_not_raised(fuzz_intake, erasure_stack, tally):
    intake_event = form_post_event("partner-json", b"{}", {"content-type": "application/json"})
    erasure_event = http_api_event(
        "POST", "/erasure-requests", b"{}", route_key="POST /erasure-requests"
    )
    erasure_event["requestContext"]["authorizer"] = {"iam": IAM}

    @given(
        intake=reshaped(intake_event),
        erasure=reshaped(erasure_event),
    )
    def run(intake, erasure):
        for route, answer in (
            ("intake: an event of another shape", fuzz_intake.invoke(intake)),
            (
                "erasure: an event of another shape",
                erasure_api.lambda_handler(erasure, LambdaContext(function_name="ErasureApi")),
            ),
        ):
            tally.record(route, answer["statusCode"])
            assert answer["statusCode"] < 500, answer
            if answer["statusCode"] >= 400:
                assert json.loads(answer["body"])["message"], answer
        assert fuzz_intake.messages() == []

    run()
