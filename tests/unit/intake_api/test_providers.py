"""Each adapter: a correctly signed delivery passes; a tampered body, a wrong secret, a missing
or malformed signature and (where the scheme has a timestamp) a stale one are refused."""

from __future__ import annotations

import base64
import json
import time

import pytest
from cliniko_automations.intake_api.errors import BadSignature, MalformedBody
from cliniko_automations.intake_api.providers import (
    ADAPTERS,
    base,
    forms,
    formspree,
    html,
    jotform,
    json_api,
    tally,
    typeform,
    webflow,
)
from cliniko_automations.intake_api.providers.base import Delivery, as_text

from tests.unit.intake_api import samples
from tests.unit.intake_api.samples import EMAIL, FIRST, LAST, NAME, PHONE, SECRET

NOW = time.time()


def delivery(body: bytes, headers: dict[str, str], content_type: str = "application/json"):
    return Delivery(
        body=body, headers={"content-type": content_type, **headers}, content_type=content_type
    )


def tamper(body: bytes) -> bytes:
    # Same length, one answer changed: what an attacker on the path would do.
    return body.replace(EMAIL.encode(), EMAIL.replace("m", "n").encode(), 1)


# --- Typeform --------------------------------------------------------------------------------


def test_typeform_good_signature_and_parse():
    body = samples.typeform_body()
    signed = delivery(body, {"typeform-signature": samples.typeform_signature(body)})
    typeform.verify(signed, SECRET, NOW)
    parsed = typeform.parse(signed)
    assert parsed.submission_id == "tf-response-token-1"
    assert parsed.answers["referrer_name"] == NAME
    assert parsed.answers["referrer_email"] == EMAIL
    assert parsed.answers["referrer_role"] == "General practitioner"
    assert parsed.answers["utm_source"] == "newsletter"
    assert parsed.ignored is None


@pytest.mark.parametrize(
    "headers",
    [
        {},
        {"typeform-signature": ""},
        {"typeform-signature": "sha256=" + base64.b64encode(b"x" * 32).decode()},
        {"typeform-signature": samples.typeform_signature(samples.typeform_body(), "other")},
        # Right digest, wrong scheme prefix.
        {"typeform-signature": samples.tally_signature(samples.typeform_body())},
        # Bytes that are no UTF-8, as the runtime may hand them on: a forgery, not a 500.
        {"typeform-signature": "sha256=\udc80" + samples.typeform_signature(b"x")[8:]},
    ],
)
def test_typeform_bad_signatures(headers):
    with pytest.raises(BadSignature):
        typeform.verify(delivery(samples.typeform_body(), headers), SECRET, NOW)


def test_typeform_tampered_body():
    body = samples.typeform_body()
    signature = samples.typeform_signature(body)
    with pytest.raises(BadSignature):
        typeform.verify(delivery(tamper(body), {"typeform-signature": signature}), SECRET, NOW)


def test_typeform_signature_is_over_raw_bytes_not_reserialised_json():
    body = json.dumps(json.loads(samples.typeform_body()), indent=2).encode()
    signed = delivery(body, {"typeform-signature": samples.typeform_signature(body)})
    typeform.verify(signed, SECRET, NOW)
    compact = json.dumps(json.loads(body), separators=(",", ":")).encode()
    with pytest.raises(BadSignature):
        typeform.verify(delivery(compact, signed.headers), SECRET, NOW)


def test_typeform_partial_responses_are_ignored():
    body = samples.typeform_body(event_type="form_response_partial")
    parsed = typeform.parse(delivery(body, {}))
    assert parsed.ignored and parsed.answers == {}


def test_typeform_events_of_another_type_are_ignored_even_with_answers():
    # Only `form_response` is a submission: an event type Typeform adds later is acknowledged
    # and dropped, never queued as a person's answers.
    body = samples.typeform_body(event_type="form_response_updated")
    parsed = typeform.parse(delivery(body, {}))
    assert parsed.ignored == "other_event" and parsed.answers == {}


def test_typeform_choices_and_fallback_to_event_id():
    body = json.dumps(
        {
            "event_id": "EV1",
            "event_type": "form_response",
            "form_response": {
                "answers": [
                    {
                        "type": "choices",
                        "choices": {"labels": ["A", "B"], "other": "C"},
                        "field": {"id": "x", "ref": "many"},
                    },
                    {"type": "number", "number": 3, "field": {"id": "y", "ref": "n"}},
                    {"type": "boolean", "boolean": True, "field": {"id": "z", "ref": "b"}},
                ]
            },
        }
    ).encode()
    parsed = typeform.parse(delivery(body, {}))
    assert parsed.answers == {"many": ["A", "B", "C"], "n": 3, "b": True}
    assert parsed.submission_id == "EV1"


@pytest.mark.parametrize(
    ("labels", "expected"), [(5, ["5", "C"]), (None, ["C"]), ("A", ["A", "C"])]
)
def test_typeform_choices_whose_labels_are_not_a_list_are_read_not_a_503(labels, expected):
    answer = {"type": "choices", "choices": {"labels": labels, "other": "C"}, "field": {"ref": "m"}}
    body = json.dumps(
        {"event_id": "EV2", "event_type": "form_response", "form_response": {"answers": [answer]}}
    ).encode()
    assert typeform.parse(delivery(body, {})).answers == {"m": expected}


@pytest.mark.parametrize("answers", [{}, {"answers": None}, {"answers": []}])
def test_a_typeform_response_with_no_answers_is_read_from_its_hidden_fields(answers):
    # A form whose questions were all skipped, its person named by hidden fields (a link that
    # prefills them): `answers` left out or null is no answer, as a null event type is a
    # response; a 400 loses the submission, which Typeform does not deliver again.
    response = {"token": "t-1", "hidden": {"email": EMAIL}, **answers}
    body = json.dumps({"event_type": "form_response", "form_response": response}).encode()
    parsed = typeform.parse(delivery(body, {}))
    assert parsed.answers == {"email": EMAIL}
    assert parsed.submission_id == "t-1"


@pytest.mark.parametrize(
    ("value", "text"), [(3.0, "3"), (1e14, "100000000000000"), (1e308, "1e+308"), (2.5, "2.5")]
)
def test_a_whole_float_is_written_as_an_integer_only_while_that_is_short(value, text):
    # 1e308 is 5 bytes of JSON: as 309 digits, a small body became a 3 MB submission.
    assert as_text(value) == text


@pytest.mark.parametrize(
    "body",
    [
        b"not json",
        b"[]",
        b'{"event_type": "form_response"}',
        b'{"event_type": "form_response", "form_response": {"answers": [1]}}',
    ],
)
def test_typeform_malformed(body):
    with pytest.raises(MalformedBody):
        typeform.parse(delivery(body, {}))


# --- Tally -----------------------------------------------------------------------------------


def test_tally_good_signature_and_option_resolution():
    body = samples.tally_body()
    signed = delivery(body, {"tally-signature": samples.tally_signature(body)})
    tally.verify(signed, SECRET, NOW)
    parsed = tally.parse(signed)
    assert parsed.submission_id == "2wgx4n"
    assert parsed.answers["question_first_name"] == FIRST
    assert parsed.answers["question_country"] == ["New Zealand"]


@pytest.mark.parametrize("secret", [SECRET + "x", ""])
def test_tally_wrong_secret(secret):
    body = samples.tally_body()
    headers = {"tally-signature": samples.tally_signature(body, secret or "other")}
    with pytest.raises(BadSignature):
        tally.verify(delivery(body, headers), SECRET, NOW)


def test_tally_tampered_and_missing():
    body = samples.tally_body()
    with pytest.raises(BadSignature):
        tally.verify(
            delivery(tamper(body), {"tally-signature": samples.tally_signature(body)}), SECRET, NOW
        )
    with pytest.raises(BadSignature):
        tally.verify(delivery(body, {}), SECRET, NOW)


def test_tally_other_events_ignored_and_malformed_fields():
    assert tally.parse(delivery(b'{"eventType": "FORM_DELETED"}', {})).ignored
    with pytest.raises(MalformedBody):
        tally.parse(delivery(b'{"eventType": "FORM_RESPONSE", "data": {"fields": [{}]}}', {}))


def test_webflow_other_triggers_are_ignored():
    # A site webhook (signed with the same secret) sent here by mistake is acknowledged, not
    # queued as a person's answers nor refused (Webflow retries what is not a 2xx).
    body = json.loads(samples.webflow_body())
    body["triggerType"] = "site_publish"
    parsed = webflow.parse(delivery(json.dumps(body).encode(), {}))
    assert parsed.ignored == "other_event" and parsed.answers == {}


@pytest.mark.parametrize("missing", [True, False], ids=["left_out", "null"])
@pytest.mark.parametrize(
    ("provider", "sample", "key"),
    [
        (tally, samples.tally_body, "eventType"),
        (typeform, samples.typeform_body, "event_type"),
        (webflow, samples.webflow_body, "triggerType"),
    ],
    ids=["tally", "typeform", "webflow"],
)
def test_a_response_that_names_no_event_type_is_a_response(provider, sample, key, missing):
    # Answered 200 and dropped, it was lost: no provider resends what got a 2xx.
    body = json.loads(sample())
    if missing:
        del body[key]
    else:
        body[key] = None
    parsed = provider.parse(delivery(json.dumps(body).encode(), {}))
    assert not parsed.ignored
    assert parsed.answers


def test_tally_answers_of_any_shape_parse_to_text():
    # A field may answer with a structure (a matrix, say), and option ids arrive as the sender
    # wrote them. Neither may break the option lookup (it once raised TypeError: a 503).
    body = json.dumps(
        {
            "eventType": "FORM_RESPONSE",
            "data": {
                "responseId": "r1",
                "fields": [
                    {
                        "key": "question_matrix",
                        "value": [["a1", "b2"], {"row": "a1"}, "a1", None],
                        "options": [{"id": "a1", "text": "Morning"}, {"id": ["x"], "text": "?"}],
                    },
                    {"key": "question_ranking", "value": {"a1": 1}, "options": [{"id": {}}]},
                    {"key": "question_pick", "value": ["b2"], "options": [{"id": 7, "text": "7"}]},
                ],
            },
        }
    ).encode()
    answers = tally.parse(delivery(body, {})).answers
    assert answers["question_matrix"] == ["a1, b2", "a1", "Morning"]
    assert answers["question_ranking"] == {"a1": "1"}
    assert answers["question_pick"] == ["b2"]


# --- Webflow ---------------------------------------------------------------------------------


def test_webflow_good_signature_and_parse():
    body = samples.webflow_body()
    signed = delivery(body, samples.webflow_headers(body, at=NOW))
    webflow.verify(signed, SECRET, NOW)
    parsed = webflow.parse(signed)
    assert parsed.submission_id == "6321a9a5c1b0a5d1d0b1b0a1"
    assert parsed.answers["Full Name"] == NAME


def test_webflow_tampered_body_and_timestamp():
    body = samples.webflow_body()
    headers = samples.webflow_headers(body, at=NOW)
    with pytest.raises(BadSignature):
        webflow.verify(delivery(tamper(body), headers), SECRET, NOW)
    moved = {**headers, "x-webflow-timestamp": str(int(headers["x-webflow-timestamp"]) + 1)}
    with pytest.raises(BadSignature):
        webflow.verify(delivery(body, moved), SECRET, NOW)


@pytest.mark.parametrize(("offset", "ok"), [(-299, True), (-301, False), (299, True), (301, False)])
def test_webflow_replay_window_in_milliseconds(offset, ok):
    body = samples.webflow_body()
    signed = delivery(body, samples.webflow_headers(body, at=NOW + offset))
    if ok:
        webflow.verify(signed, SECRET, NOW)
    else:
        with pytest.raises(BadSignature, match="5-minute window"):
            webflow.verify(signed, SECRET, NOW)


def test_webflow_timestamp_in_seconds_is_refused_saying_so():
    # A sender using seconds instead of milliseconds looks like 1970: refused, told why once
    # its signature matched (no hint for a forged one).
    body = samples.webflow_body()
    seconds = str(int(NOW))
    signature = samples._hmac(SECRET, f"{seconds}:".encode() + body).hex()
    headers = {"x-webflow-timestamp": seconds, "x-webflow-signature": signature}
    with pytest.raises(BadSignature, match="in seconds; Webflow sends milliseconds"):
        webflow.verify(delivery(body, headers), SECRET, NOW)
    with pytest.raises(BadSignature, match="signature does not match"):
        webflow.verify(delivery(body, headers), "another secret", NOW)


@pytest.mark.parametrize(
    "stamp",
    ["soon", "{ms}.0", "-{ms}", "\u0661\u0667\u0660\u0660"],
    ids=["word", "fraction", "minus-sign", "arabic-indic-digits"],
)
def test_webflow_timestamp_that_is_no_whole_number_is_refused(stamp):
    # Signed over the text as sent, so the signature matches: refused (401) as no
    # milliseconds, a sender's mistake it can read, never a 500 its sender retries.
    body = samples.webflow_body()
    stamp = stamp.format(ms=int(NOW * 1000))
    signature = samples._hmac(SECRET, f"{stamp}:".encode() + body).hex()
    headers = {"x-webflow-timestamp": stamp, "x-webflow-signature": signature}
    with pytest.raises(BadSignature, match="not milliseconds since the epoch"):
        webflow.verify(delivery(body, headers), SECRET, NOW)


def test_webflow_takes_hex_in_upper_case():
    body = samples.webflow_body()
    headers = samples.webflow_headers(body, at=NOW)
    upper = {**headers, "x-webflow-signature": headers["x-webflow-signature"].upper()}
    webflow.verify(delivery(body, upper), SECRET, NOW)
    with pytest.raises(BadSignature):
        webflow.verify(delivery(tamper(body), upper), SECRET, NOW)


@pytest.mark.parametrize("drop", ["x-webflow-timestamp", "x-webflow-signature"])
def test_webflow_missing_headers(drop):
    body = samples.webflow_body()
    headers = samples.webflow_headers(body, at=NOW)
    del headers[drop]
    with pytest.raises(BadSignature):
        webflow.verify(delivery(body, headers), SECRET, NOW)


# --- Formspree and own JSON (t=,v1=) ---------------------------------------------------------


@pytest.mark.parametrize(
    ("adapter", "header", "body"),
    [
        (formspree, "formspree-signature", samples.formspree_body()),
        (json_api, "x-signature", samples.json_body()),
    ],
)
class TestTimestampedHmac:
    def test_good(self, adapter, header, body):
        adapter.verify(delivery(body, {header: samples.t_v1_signature(body, at=NOW)}), SECRET, NOW)

    def test_tampered(self, adapter, header, body):
        signature = samples.t_v1_signature(body, at=NOW)
        with pytest.raises(BadSignature):
            adapter.verify(delivery(tamper(body), {header: signature}), SECRET, NOW)

    def test_timestamp_is_signed(self, adapter, header, body):
        signature = samples.t_v1_signature(body, at=NOW)
        moved = signature.replace(f"t={int(NOW)}", f"t={int(NOW) - 1}")
        with pytest.raises(BadSignature):
            adapter.verify(delivery(body, {header: moved}), SECRET, NOW)

    @pytest.mark.parametrize(("offset", "ok"), [(-299, True), (-301, False), (301, False)])
    def test_replay_window(self, adapter, header, body, offset, ok):
        signed = delivery(body, {header: samples.t_v1_signature(body, at=NOW + offset)})
        if ok:
            adapter.verify(signed, SECRET, NOW)
        else:
            with pytest.raises(BadSignature, match="5-minute window"):
                adapter.verify(signed, SECRET, NOW)

    @pytest.mark.parametrize(
        "value",
        [None, "", "v1=abc", f"t={int(NOW)}", "t=soon,v1=ab", "garbage"],
        # Fixed ids: parallel workers must collect the same names, and NOW differs in each.
        ids=["absent", "empty", "no-timestamp", "no-signature", "bad-timestamp", "garbage"],
    )
    def test_malformed_headers(self, adapter, header, body, value):
        headers = {} if value is None else {header: value}
        with pytest.raises(BadSignature):
            adapter.verify(delivery(body, headers), SECRET, NOW)

    @pytest.mark.parametrize(
        "stamp",
        ["{now}.5", "{now}e0", "+{now}", "\u0661\u0667\u0660\u0660"],
        ids=["fraction", "exponent", "plus-sign", "arabic-indic-digits"],
    )
    def test_a_signed_timestamp_that_is_no_whole_number_of_seconds_is_refused(
        self, adapter, header, body, stamp
    ):
        # A script that signs `Date.now() / 1000` unrounded signs a fraction: its signature
        # matches, and the delivery is refused as not t=<unix> (a 401 its sender can read),
        # never read as a number some other way (a 500, retried for days).
        stamp = stamp.format(now=int(NOW))
        signed = f"t={stamp},v1={samples._hmac(SECRET, f'{stamp}.'.encode() + body).hex()}"
        with pytest.raises(BadSignature, match="t=<unix>"):
            adapter.verify(delivery(body, {header: signed}), SECRET, NOW)

    def test_hex_in_upper_case(self, adapter, header, body):
        # .NET's Convert.ToHexString and Java's printHexBinary write upper case.
        stamp, v1 = samples.t_v1_signature(body, at=NOW).split(",")
        upper = f"{stamp},v1={v1.removeprefix('v1=').upper()}"
        adapter.verify(delivery(body, {header: upper}), SECRET, NOW)
        with pytest.raises(BadSignature):
            adapter.verify(delivery(tamper(body), {header: upper}), SECRET, NOW)

    def test_rotation_any_v1_may_match(self, adapter, header, body):
        good = samples.t_v1_signature(body, at=NOW)
        stamp, v1 = good.split(",")
        adapter.verify(delivery(body, {header: f"{stamp},v1={'0' * 64},{v1}"}), SECRET, NOW)

    def test_a_delivery_exactly_five_minutes_old_is_still_fresh(self, adapter, header, body):
        # "Reject older than 5 minutes": 300 s is not older.
        sent = int(NOW)
        signed = delivery(body, {header: samples.t_v1_signature(body, at=sent)})
        adapter.verify(signed, SECRET, sent + 300)
        with pytest.raises(BadSignature, match="5-minute window"):
            adapter.verify(signed, SECRET, sent + 301)

    def test_a_timestamp_in_milliseconds_is_refused_saying_so(self, adapter, header, body):
        # JavaScript's Date.now() is in milliseconds (the README's Apps Script divides it):
        # signed so, the delivery was told it was outside the 5-minute window, and its
        # sender looked for a clock gone wrong. Told why once its signature matched only.
        stamp = str(int(NOW * 1000))
        signed = f"t={stamp},v1={samples._hmac(SECRET, f'{stamp}.'.encode() + body).hex()}"
        with pytest.raises(BadSignature, match="t= is in milliseconds; it takes Unix seconds"):
            adapter.verify(delivery(body, {header: signed}), SECRET, NOW)
        with pytest.raises(BadSignature, match="signature does not match"):
            adapter.verify(delivery(body, {header: signed}), "another secret", NOW)
        # Milliseconds that are themselves stale are stale, whatever their unit.
        stale = str(int((NOW - 301) * 1000))
        signed = f"t={stale},v1={samples._hmac(SECRET, f'{stale}.'.encode() + body).hex()}"
        with pytest.raises(BadSignature, match="5-minute window"):
            adapter.verify(delivery(body, {header: signed}), SECRET, NOW)


def signed_deliveries(wrong: bool) -> list[tuple[object, Delivery]]:
    """A delivery for each signing adapter, signed with SECRET (or, `wrong`, another)."""
    secret = "another-secret" if wrong else SECRET
    typeform_body, tally_body = samples.typeform_body(), samples.tally_body()
    webflow_body, json_body = samples.webflow_body(), samples.json_body()
    return [
        (
            typeform,
            delivery(
                typeform_body,
                {"typeform-signature": samples.typeform_signature(typeform_body, secret)},
            ),
        ),
        (
            tally,
            delivery(tally_body, {"tally-signature": samples.tally_signature(tally_body, secret)}),
        ),
        (webflow, delivery(webflow_body, samples.webflow_headers(webflow_body, secret, at=NOW))),
        (
            json_api,
            delivery(json_body, {"x-signature": samples.t_v1_signature(json_body, secret, at=NOW)}),
        ),
    ]


def test_signatures_are_compared_in_constant_time(monkeypatch):
    # form-providers.md: "Compare signatures with a constant-time comparison" (`==` stops at
    # the first byte that differs, which lets a forger find a signature byte by byte).
    compared = []
    constant_time = base.hmac.compare_digest

    def spy(a, b):
        compared.append(a)
        return constant_time(a, b)

    monkeypatch.setattr(base.hmac, "compare_digest", spy)
    for wrong in (False, True):
        for adapter, signed in signed_deliveries(wrong):
            compared.clear()
            if wrong:
                with pytest.raises(BadSignature):
                    adapter.verify(signed, SECRET, NOW)
            else:
                adapter.verify(signed, SECRET, NOW)
            assert compared, adapter.__name__


def near_misses(signature: str) -> list[str]:
    """A signature with its last digit changed, and its first half alone."""
    body = signature.rstrip("=")
    last = body[-1]
    changed = body[:-1] + ("0" if last != "0" else "1") + signature[len(body) :]
    return [changed, signature[: len(signature) // 2]]


def test_a_signature_that_differs_only_at_its_end_or_stops_halfway_is_refused():
    # Every byte of a signature is compared: one right but for its last digit, or its first
    # half alone, is a forgery's guess.
    for adapter, signed in signed_deliveries(wrong=False):
        adapter.verify(signed, SECRET, NOW)
        [header] = [name for name in signed.headers if name.endswith("signature")]
        for guess in near_misses(signed.headers[header]):
            forged = delivery(signed.body, {**signed.headers, header: guess})
            with pytest.raises(BadSignature):
                adapter.verify(forged, SECRET, NOW)


def test_formspree_parse_takes_submission_object_and_has_no_id():
    parsed = formspree.parse(delivery(samples.formspree_body(), {}))
    assert parsed.submission_id is None
    assert parsed.answers["contact_name"] == NAME


def test_json_parse_takes_idempotency_key_header():
    body = samples.json_body()
    parsed = json_api.parse(delivery(body, {"idempotency-key": "order-77"}))
    assert parsed.submission_id == "order-77"
    assert parsed.answers["email"] == EMAIL
    assert json_api.parse(delivery(body, {})).submission_id is None


@pytest.mark.parametrize(
    "key", ["k" * 201, "order-1\t2026-12-05", "clé-🙂-" + "x" * 300, "order-\udc80-77"]
)
def test_json_parse_keeps_a_long_or_unprintable_key_as_its_hash(key):
    body = samples.json_body()
    first = json_api.parse(delivery(body, {"idempotency-key": key})).submission_id
    again = json_api.parse(delivery(body, {"idempotency-key": f" {key} "})).submission_id
    other = json_api.parse(delivery(body, {"idempotency-key": key + "2"})).submission_id
    assert first is not None and first.startswith("sha256:") and len(first) == 71
    assert first == again != other


@pytest.mark.parametrize("key", ["", "   "])
def test_json_parse_reads_a_blank_key_as_none(key):
    parsed = json_api.parse(delivery(samples.json_body(), {"idempotency-key": key}))
    assert parsed.submission_id is None


# --- Jotform and HTML (no signature) ---------------------------------------------------------


def test_unsigned_providers_have_no_verify():
    assert jotform.verify is None and html.verify is None
    assert set(ADAPTERS) == {"typeform", "tally", "webflow", "formspree", "jotform", "html", "json"}


def test_jotform_parse_multipart_raw_request():
    body, content_type = samples.jotform_body()
    parsed = jotform.parse(delivery(body, {}, content_type))
    assert parsed.submission_id == "5712345678901234567"
    assert parsed.answers["q3_name"] == {"first": FIRST, "last": LAST}
    assert parsed.answers["q5_phone"] == {"full": PHONE}


@pytest.mark.parametrize(
    "fields",
    [{"formID": "1"}, {"rawRequest": "{not json"}, {"rawRequest": "[1, 2]"}],
)
def test_jotform_malformed(fields):
    body, content_type = samples.multipart(fields)
    with pytest.raises(MalformedBody):
        jotform.parse(delivery(body, {}, content_type))


def test_jotform_multipart_without_boundary_or_garbled():
    body, _ = samples.jotform_body()
    with pytest.raises(MalformedBody):
        jotform.parse(delivery(body, {}, "multipart/form-data"))
    with pytest.raises(MalformedBody):
        jotform.parse(delivery(b"no parts here", {}, "multipart/form-data; boundary=zz"))


def test_html_urlencoded_repeated_keys_and_utf8():
    body = b"name=Zo%C3%AB+Smith&topic=a&topic=b&website="
    parsed = html.parse(delivery(body, {}, "application/x-www-form-urlencoded"))
    assert parsed.answers == {"name": "Zoë Smith", "topic": ["a", "b"], "website": ""}


URLENCODED = "application/x-www-form-urlencoded"


@pytest.mark.parametrize(
    ("body", "answers"),
    [
        # A hand-built body's trailing "&", a bare key (a checkbox without a value).
        (b"name=Ann+Lee&email=ann%40example.org&", {"name": "Ann Lee", "email": "ann@example.org"}),
        (b"name=Ann&subscribe", {"name": "Ann", "subscribe": ""}),
        (b"&&name=Ann", {"name": "Ann"}),
        # A UTF-8 byte-order mark before the first key: that key was "\ufeffphone".
        ("\ufeffphone=0412&name=Ann".encode(), {"phone": "0412", "name": "Ann"}),
        (b"", {}),
    ],
)
def test_html_urlencoded_as_careless_senders_write_it(body, answers):
    assert html.parse(delivery(body, {}, URLENCODED)).answers == answers


@pytest.mark.parametrize(
    ("body", "content_type", "name"),
    [
        # Not UTF-8, no charset named: what a page served as windows-1252 posts.
        (b"name=Jos%E9+L%FCber", URLENCODED, "José Lüber"),
        (b"name=%93Jo%94+%80", URLENCODED, "\u201cJo\u201d \u20ac"),
        (b"name=Jos\xe9", URLENCODED, "José"),
        # The charset the Content-Type names.
        (b"name=Jos%E9", URLENCODED + "; charset=windows-1252", "José"),
        (b"name=Jos%E9", URLENCODED + '; charset="ISO-8859-1"', "José"),
        # Labelled Latin-1, read as browsers read that label (windows-1252): a typed
        # apostrophe, not the C1 control Latin-1 has at 0x92.
        (b"name=O%92Brien", URLENCODED + "; charset=iso-8859-1", "O\u2019Brien"),
        (b"name=O%92Brien", URLENCODED + "; charset=us-ascii", "O\u2019Brien"),
        (b"name=Jos%C3%A9", URLENCODED + "; charset=UTF-8", "José"),
        # UTF-8 whenever the body is UTF-8.
        (b"name=Jos%C3%A9", URLENCODED, "José"),
        # UTF-8 too when only some of it is: a character cut in two is U+FFFD, and the rest
        # is not read as Windows-1252 ("JosÃ©").
        (b"name=Jos%C3%A9+N%C3%BA%C3%B1ez+%F0%9F%98", URLENCODED, "José Núñez \ufffd"),
        (b"name=Jos%C3%A9+%E9", URLENCODED, "José \ufffd"),
    ],
)
def test_html_urlencoded_charsets(body, content_type, name):
    assert html.parse(delivery(body, {}, content_type)).answers == {"name": name}


@pytest.mark.parametrize(
    ("body", "content_type"),
    [
        # Named UTF-8, but not UTF-8.
        (b"name=%FF%FE", URLENCODED + "; charset=utf-8"),
        # A byte windows-1252 leaves undefined: neither charset.
        (b"name=%81", URLENCODED),
        # A codec that turns ASCII into any text is never looked up.
        (b"name=%5Cud800", URLENCODED + "; charset=unicode_escape"),
        (b"name=x", URLENCODED + "; charset=utf-16"),
    ],
)
def test_html_urlencoded_in_no_charset_it_may_be_is_malformed(body, content_type):
    with pytest.raises(MalformedBody):
        html.parse(delivery(body, {}, content_type))


@pytest.mark.parametrize("content_type", [URLENCODED, "multipart/form-data; boundary=B"])
def test_a_form_of_too_many_fields_is_refused_saying_so(content_type):
    count = forms.MAX_FIELDS + 1
    if content_type == URLENCODED:
        body = b"&".join(b"f%d=x" % i for i in range(count))
    else:
        part = b'--B\r\nContent-Disposition: form-data; name="f%d"\r\n\r\nx\r\n'
        body = b"".join(part % i for i in range(count)) + b"--B--"
    with pytest.raises(MalformedBody, match="too many form fields"):
        html.parse(delivery(body, {}, content_type))
    # At the limit, every field is read.
    fewer = b"&".join(b"f%d=x" % i for i in range(forms.MAX_FIELDS))
    assert len(html.parse(delivery(fewer, {}, URLENCODED)).answers) == forms.MAX_FIELDS


@pytest.mark.parametrize(
    ("value", "read"),
    [
        # Unlabelled, as a page served in windows-1252 posts it: read as its url-encoded
        # posts are.
        ("José Café".encode("cp1252"), "José Café"),
        ("\u201cJo\u201d \u20ac".encode("cp1252"), "\u201cJo\u201d \u20ac"),
        ("José".encode() + b"\xf0\x9f\x98", "José\ufffd"),
        ("Zoë".encode(), "Zoë"),
    ],
)
def test_html_multipart_unlabelled_parts_read_as_urlencoded_bodies(value, read):
    body = b'--B\r\nContent-Disposition: form-data; name="name"\r\n\r\n' + value + b"\r\n--B--"
    parsed = html.parse(delivery(body, {}, "multipart/form-data; boundary=B"))
    assert parsed.answers == {"name": read}


def test_html_multipart_skips_file_parts():
    boundary = "b0undary"
    body = (
        f'--{boundary}\r\nContent-Disposition: form-data; name="name"\r\n\r\nZoë\r\n'
        f'--{boundary}\r\nContent-Disposition: form-data; name="cv"; filename="cv.pdf"\r\n'
        f"Content-Type: application/pdf\r\n\r\n%PDF-1.4\r\n--{boundary}--\r\n"
    ).encode()
    parsed = html.parse(delivery(body, {}, f"multipart/form-data; boundary={boundary}"))
    assert parsed.answers == {"name": "Zoë"}


def _one_part(disposition: str, *, extra: str = "", value: str = "Zoë") -> bytes:
    return (
        f"--B\r\nContent-Disposition: {disposition}\r\n{extra}\r\n{value}\r\n--B--\r\n"
    ).encode()


@pytest.mark.parametrize(
    ("body", "content_type"),
    [
        # An unbalanced RFC 822 comment: the stdlib's header parser recursed past the stack.
        (_one_part('form-data; name="name" ' + "(" * 500), "multipart/form-data; boundary=B"),
        (_one_part('form-data; name="name"'), "multipart/form-data; boundary=B; " + "(" * 500),
        # RFC 2231 values name any codec: the stdlib decoded them with it (UnicodeError).
        (_one_part("form-data; name*=idna''name"), "multipart/form-data; boundary=B"),
        (_one_part("form-data; name*=unicode_escape''%5CN"), "multipart/form-data; boundary=B"),
        (_one_part('form-data; name="name"'), "multipart/form-data; boundary*=idna''B"),
        # Many parameters or a long header: quadratic in the stdlib, refused here at once.
        (_one_part('form-data; name="name"' + ";" * 32_000), "multipart/form-data; boundary=B"),
        (_one_part('form-data; name="name"' + "; a=b" * 2_000), "multipart/form-data; boundary=B"),
        (_one_part('form-data; name="name"; name="other"'), "multipart/form-data; boundary=B"),
        (_one_part("attachment; name=name"), "multipart/form-data; boundary=B"),
        (_one_part("form-data"), "multipart/form-data; boundary=B"),
        (
            _one_part('form-data; name="name"', extra="Content-Transfer-Encoding: base64\r\n"),
            "multipart/form-data; boundary=B",
        ),
        (
            _one_part(
                'form-data; name="name"', extra="Content-Type: text/plain; charset=utf-7\r\n"
            ),
            "multipart/form-data; boundary=B",
        ),
        (
            _one_part('form-data; name="name"', extra=" folded\r\n"),
            "multipart/form-data; boundary=B",
        ),
        (
            _one_part('form-data; name="name"').removesuffix(b"--B--\r\n"),
            "multipart/form-data; boundary=B",
        ),
        (_one_part('form-data; name="name"'), "multipart/form-data; boundary=Bé"),
        (_one_part('form-data; name="name"'), "multipart/form-data; boundary=" + "B" * 201),
        # A byte windows-1252 leaves undefined, in a part that is not UTF-8: neither charset.
        (
            '--B\r\nContent-Disposition: form-data; name="n"\r\n\r\n\x81\r\n--B--'.encode(
                "latin-1"
            ),
            "multipart/form-data; boundary=B",
        ),
    ],
)
def test_html_multipart_hostile_headers_are_malformed_bodies(body, content_type):
    with pytest.raises(MalformedBody):
        html.parse(delivery(body, {}, content_type))


def test_html_multipart_reads_what_browsers_send():
    body = (
        b"preamble\r\n"
        b'--B \r\nContent-Disposition: form-data; name="pr\xc3\xa9nom"\r\n\r\nZo\xc3\xab\r\n'
        b"--B\r\ncontent-disposition: FORM-DATA; name=email\r\n"
        b"Content-Type: text/plain; charset=ISO-8859-1\r\n\r\nz\xf6e@example.com\r\n"
        b'--B\r\nContent-Disposition: form-data; name="a\\"b"\r\n\r\nline one\r\n--Bx\r\n\r\n'
        b'--B\r\nContent-Disposition: form-data; name="topics"\r\n\r\nA\r\n'
        b'--B\r\nContent-Disposition: form-data; name="topics"\r\n\r\nB\r\n'
        b'--B\r\nContent-Disposition: form-data; name="cv"; filename="cv (1).pdf"\r\n'
        b"Content-Type: application/pdf\r\n\r\n%PDF\r\n--B--\r\nepilogue"
    )
    parsed = html.parse(delivery(body, {}, 'multipart/form-data; boundary="B"'))
    assert parsed.answers == {
        "prénom": "Zoë",
        "email": "zöe@example.com",
        'a"b': "line one\r\n--Bx\r\n",
        "topics": ["A", "B"],
    }


def test_multipart_with_bare_line_feeds_reads_alike():
    body = b'--B\nContent-Disposition: form-data; name="name"\n\nZo\xc3\xab\n--B--\n'
    parsed = html.parse(delivery(body, {}, "multipart/form-data; boundary=B"))
    assert parsed.answers == {"name": "Zoë"}


@pytest.mark.parametrize(
    ("body", "content_type", "answers"),
    [
        # Browsers escape only CR, LF and '"' in a name: a backslash stays as typed.
        (
            b'--B\r\nContent-Disposition: form-data; name="cv"; filename="notes\\"\r\n\r\nx\r\n'
            b'--B\r\nContent-Disposition: form-data; name="email"\r\n\r\na@example.com\r\n--B--',
            "multipart/form-data; boundary=B",
            {"email": "a@example.com"},
        ),
        # A file's name from a page served in windows-1252.
        (
            b'--B\r\nContent-Disposition: form-data; name="cv"; filename="r\xe9sum\xe9.pdf"\r\n'
            b'\r\nx\r\n--B\r\nContent-Disposition: form-data; name="email"\r\n\r\na@example.com'
            b"\r\n--B--",
            "multipart/form-data; boundary=B",
            {"email": "a@example.com"},
        ),
        (
            b'--B\r\nContent-Disposition: form-data; name="email";\r\n\r\na@example.com\r\n--B--',
            "multipart/form-data; boundary=B;",
            {"email": "a@example.com"},
        ),
        # A value's own leading line breaks are the value's.
        (
            b'--B\r\nContent-Disposition: form-data; name="notes"\r\n\r\n\n\nline 3\r\n--B--',
            "multipart/form-data; boundary=B",
            {"notes": "\n\nline 3"},
        ),
        # An empty value whose blank line's break is the next delimiter's.
        (
            b'--B\r\nContent-Disposition: form-data; name="email"\r\n\r\n--B--\r\n',
            "multipart/form-data; boundary=B",
            {"email": ""},
        ),
    ],
)
def test_html_multipart_reads_what_senders_write_beyond_the_rfc(body, content_type, answers):
    assert html.parse(delivery(body, {}, content_type)).answers == answers
