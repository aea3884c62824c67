"""The core without AWS: request -> Submission, and the order in which refusals win."""

from __future__ import annotations

import dataclasses
import json
from datetime import UTC, datetime, timedelta
from urllib.parse import parse_qs, urlencode, urlsplit

import pytest
import yaml
from cliniko_automations.intake.config import (
    DEFAULT_PATH,
    FormSources,
    form_sources_of,
    load_form_sources,
)
from cliniko_automations.intake.submission import ContactDraft, PhoneNumber, Submission
from cliniko_automations.intake_api.accept import (
    Accepted,
    Dropped,
    Ignored,
    IntakeRequest,
    Services,
    accept,
    idempotency_key,
)
from cliniko_automations.intake_api.captcha import verify_captcha
from cliniko_automations.intake_api.errors import (
    BadSignature,
    BodyTooLarge,
    FieldsInvalid,
    MalformedBody,
    OriginNotAllowed,
    ServiceUnavailable,
    UnknownSource,
    UnsupportedMediaType,
)
from cliniko_automations.intake_api.validation import GIVEN_DIFFERENTLY

from tests.unit.intake_api import samples
from tests.unit.intake_api.samples import EMAIL, ERROR_URL, FIRST, LAST, ORIGIN, SECRET, SUCCESS_URL

SHIPPED = load_form_sources()
SECRETS = {
    "cliniko-automations/forms/referral-typeform/signing-secret": SECRET,
    "cliniko-automations/forms/gp-referral-tally/signing-secret": SECRET,
    "cliniko-automations/forms/website-webflow/signing-secret": SECRET,
    "cliniko-automations/forms/insurer-formspree/signing-secret": SECRET,
    "cliniko-automations/forms/partner-json/signing-secret": SECRET,
    "cliniko-automations/forms/intake-jotform/token": samples.TOKEN,
}


def services(sources: FormSources = SHIPPED, **change) -> Services:
    settings = {"read_secret": SECRETS.__getitem__, "verify_captcha": verify_captcha, **change}
    return Services(sources=sources, **settings)


def post(source: str, body: bytes, content_type: str = "application/json", **headers: str):
    headers = {"content-type": content_type, **{k.replace("_", "-"): v for k, v in headers.items()}}
    return IntakeRequest(source=source, body=body, headers=headers)


def signed_typeform(body: bytes | None = None) -> IntakeRequest:
    body = body or samples.typeform_body()
    return post("referral-typeform", body, typeform_signature=samples.typeform_signature(body))


def test_typeform_becomes_a_submission():
    outcome = accept(signed_typeform(), services())
    assert isinstance(outcome, Accepted)
    submission = Submission.from_json(outcome.submission.to_json())
    assert submission.idempotency_key == "referral-typeform:tf-response-token-1"
    assert (submission.source, submission.provider, submission.account) == (
        "referral-typeform",
        "typeform",
        "main-clinic",
    )
    draft = submission.draft
    assert (draft.first_name, draft.last_name, draft.email) == (FIRST, LAST, EMAIL)
    assert (draft.country_code, draft.doctor_type, draft.type_code) == (
        "AU",
        "general_practitioner",
        1,
    )
    assert draft.phone_numbers[0].phone_type == "Work"
    assert draft.notes == "Referral received through referral-typeform. Reason: Lower back pain"
    assert outcome.redirect_to is None


def test_each_delivery_gets_its_own_submission_id_but_one_idempotency_key():
    first = accept(signed_typeform(), services())
    second = accept(signed_typeform(), services())
    assert isinstance(first, Accepted) and isinstance(second, Accepted)
    assert first.submission.submission_id != second.submission.submission_id
    assert first.submission.idempotency_key == second.submission.idempotency_key


def test_content_hash_key_is_stable_and_content_sensitive():
    def key(email: str) -> str:
        body = samples.formspree_body(email=email)
        signature = samples.t_v1_signature(body)
        outcome = accept(post("insurer-formspree", body, formspree_signature=signature), services())
        assert isinstance(outcome, Accepted)
        return outcome.submission.idempotency_key

    assert key(EMAIL).startswith("insurer-formspree:sha256:")
    assert key(EMAIL) == key(EMAIL)
    assert key(EMAIL) != key("other@example.org")


def test_idempotency_key_shapes():
    draft = ContactDraft(first_name="A")
    assert idempotency_key("s", "42", draft, sender_chosen=False) == "s:42"
    assert idempotency_key("s", "42", draft, sender_chosen=True) == f"s:42:{draft.person_digest()}"
    assert len(idempotency_key("s", None, draft, sender_chosen=True)) == len("s:sha256:") + 64


def test_a_senders_key_is_qualified_by_the_person_not_by_every_field():
    ana = ContactDraft(first_name="Ana", last_name="Lima", email="Ana.Lima@example.com")

    def key(draft: ContactDraft) -> str:
        return idempotency_key("s", "order-1", draft, sender_chosen=True)

    # The same person with other notes or a default the mapping added since: a redelivery.
    again = dataclasses.replace(ana, email="ana.lima@example.com", notes="Sent at 10:02")
    assert key(again) == key(ana)
    # Another person under the same key: another submission.
    assert key(dataclasses.replace(ana, email="bart@example.net")) != key(ana)
    # Without an email, the name and phones name the person, as the worker's lookup does.
    phone = PhoneNumber(number="0412 345 678", phone_type="Mobile")
    by_name = ContactDraft(first_name="Ana", last_name="Lima", phone_numbers=(phone,))
    spelled = dataclasses.replace(by_name, first_name="ANA ", occupation="Physio")
    assert key(spelled) == key(by_name)
    other = dataclasses.replace(phone, number="0499 999 999")
    assert key(dataclasses.replace(by_name, phone_numbers=(other,))) != key(by_name)
    # Nobody to find: the whole content.
    company = ContactDraft(first_name="Accounts", company_name="Acme Health Fund")
    assert key(company) == f"s:order-1:{company.digest()}"


def test_partial_typeform_is_ignored_without_a_submission():
    outcome = accept(
        signed_typeform(samples.typeform_body(event_type="form_response_partial")), services()
    )
    assert isinstance(outcome, Ignored)


def test_order_of_refusals():
    body = samples.typeform_body()
    with pytest.raises(UnknownSource):
        accept(post("nope", body), services())
    # Too large beats everything after it, even a missing signature.
    with pytest.raises(BodyTooLarge):
        accept(post("referral-typeform", body), services(max_body_bytes=len(body) - 1))
    accept(signed_typeform(), services(max_body_bytes=len(body)))
    with pytest.raises(UnsupportedMediaType):
        accept(post("referral-typeform", body, "text/plain"), services())
    with pytest.raises(BadSignature):
        accept(post("referral-typeform", body), services())
    # Nothing is parsed before it is authenticated: garbage unsigned is a 401, not a 400.
    with pytest.raises(BadSignature):
        accept(post("referral-typeform", b"{garbage"), services())
    garbage = b"{garbage"
    with pytest.raises(MalformedBody):
        accept(signed_typeform(garbage), services())


def test_a_typeform_delivery_carrying_a_long_form_definition_is_taken():
    # Typeform sends the form's whole definition with each response: two 249-country
    # dropdowns took a delivery near, three past, the 64 KiB limit of before (a 413, never
    # delivered again).
    body = json.loads(samples.typeform_body())
    countries = [
        {
            "id": f"c{i:05d}abcdef",
            "ref": f"{i:08d}-aaaa-bbbb-cccc-dddddddddddd",
            "label": f"C{i}" * 9,
        }
        for i in range(249)
    ]
    body["form_response"]["definition"] = {
        "id": "lT4Z3j",
        "title": "Referral",
        "fields": [
            {"id": f"f{n}", "ref": f"r{n}", "type": "dropdown", "title": "Country"}
            | {"properties": {"choices": countries}}
            for n in range(3)
        ],
    }
    raw = json.dumps(body).encode()
    assert len(raw) > 64 * 1024
    assert isinstance(accept(signed_typeform(raw), services()), Accepted)


def test_content_type_parameters_and_case_are_tolerated():
    body = samples.typeform_body()
    request = post(
        "referral-typeform",
        body,
        "Application/JSON; charset=utf-8",
        typeform_signature=samples.typeform_signature(body),
    )
    assert isinstance(accept(request, services()), Accepted)


@pytest.mark.parametrize(
    ("content_type", "accepted"),
    [
        # Set twice alike (a proxy adding its own beside the client's), joined by API Gateway.
        ("application/json,application/json", True),
        ("application/json, Application/JSON", True),
        ("application/json; charset=utf-8,application/json; charset=utf-8", True),
        ("application/json,text/plain", False),
    ],
)
def test_a_content_type_sent_twice_alike_is_read_once(content_type, accepted):
    body = samples.typeform_body()
    request = post(
        "referral-typeform", body, content_type, typeform_signature=samples.typeform_signature(body)
    )
    if accepted:
        assert isinstance(accept(request, services()), Accepted)
    else:
        with pytest.raises(UnsupportedMediaType):
            accept(request, services())


def test_422_names_fields():
    with pytest.raises(FieldsInvalid) as caught:
        accept(signed_typeform(samples.typeform_body(email="nope", name="")), services())
    assert caught.value.errors == {"first_name": "can\u2019t be blank", "email": "is invalid"}
    assert caught.value.redirect_to is None


def typeform_answering(**answers: object) -> IntakeRequest:
    """The sample Typeform delivery with these refs' answers replaced (a choice's as given)."""
    body = json.loads(samples.typeform_body())
    for answer in body["form_response"]["answers"]:
        if answer["field"]["ref"] in answers:
            answer[answer["type"]] = answers[answer["field"]["ref"]]
    return signed_typeform(json.dumps(body).encode())


@pytest.mark.parametrize(
    ("answers", "left_out"),
    [
        # A choice's "Other", typed by the person; a label edited in the form builder.
        ({"referrer_role": {"other": "Physiotherapist"}}, ("doctor_type",)),
        ({"referrer_role": {"label": "GP"}}, ("doctor_type",)),
        ({"practice_country": "Atlantis"}, ("country_code",)),
        (
            {"practice_country": "Atlantis", "referrer_role": {"label": "GP"}},
            ("country_code", "doctor_type"),
        ),
    ],
)
def test_a_providers_optional_choice_matching_no_choice_is_left_out_not_a_422(answers, left_out):
    # Typeform, Tally and the others never deliver a 4xx again: a 422 for an answer the form
    # offered (its "Other") lost the whole referral over a field the clinic did not require.
    outcome = accept(typeform_answering(**answers), services())
    assert isinstance(outcome, Accepted) and outcome.left_out == left_out
    fields = outcome.submission.draft.cliniko_fields()
    assert not set(left_out) & set(fields)
    assert fields["email"] == EMAIL and fields["first_name"] == FIRST


def test_a_required_choice_matching_no_choice_is_still_a_422():
    data = yaml.safe_load(DEFAULT_PATH.read_text())
    data["sources"]["referral-typeform"]["required"].append("doctor_type")
    with pytest.raises(FieldsInvalid) as caught:
        accept(typeform_answering(referrer_role={"label": "GP"}), services(form_sources_of(data)))
    assert caught.value.errors == {"doctor_type": "is not included in the list"}


def test_a_required_choice_with_a_default_is_left_out_as_no_answer_would_be():
    data = yaml.safe_load(DEFAULT_PATH.read_text())
    source = data["sources"]["referral-typeform"]
    source["required"].append("doctor_type")
    source["defaults"]["doctor_type"] = "specialist"
    outcome = accept(
        typeform_answering(referrer_role={"label": "GP"}), services(form_sources_of(data))
    )
    assert outcome.left_out == ("doctor_type",)
    assert outcome.submission.draft.cliniko_fields()["doctor_type"] == "specialist"


def test_a_choice_left_out_takes_the_sources_default_as_no_answer():
    data = yaml.safe_load(DEFAULT_PATH.read_text())
    data["sources"]["referral-typeform"]["defaults"]["doctor_type"] = "specialist"
    outcome = accept(
        typeform_answering(referrer_role={"label": "GP"}), services(form_sources_of(data))
    )
    assert outcome.left_out == ("doctor_type",)
    assert outcome.submission.draft.cliniko_fields()["doctor_type"] == "specialist"
    # A default: it fills a blank of a contact found, never replaces what staff typed.
    assert "doctor_type" in outcome.submission.unanswered


def test_a_browsers_choice_matching_no_choice_is_a_422_the_person_can_correct():
    data = yaml.safe_load(DEFAULT_PATH.read_text())
    html = data["sources"]["website-contact-html"]
    html["html"].pop("captcha")
    html["fields"].append({"from": "country", "to": "country_code"})
    with pytest.raises(FieldsInvalid) as caught:
        accept(browser(FORM.encode() + b"&country=Atlantis"), services(form_sources_of(data)))
    assert caught.value.errors == {"country_code": "is not included in the list"}
    assert caught.value.redirect_to is not None


@pytest.mark.parametrize(
    ("country", "code"),
    [
        ("UK", "GB"),
        ("England", "GB"),
        ("Russia", "RU"),
        # As phones type it (a curly apostrophe), or pasted with an invisible character.
        ("Côte d\u2019Ivoire", "CI"),
        ("Cote d\u2019Ivoire", "CI"),
        ("Australia\u200b", "AU"),
    ],
)
def test_a_country_named_as_people_name_it_is_accepted(country, code):
    # ISO 3166 lists neither name; refused, the whole referral was lost (Typeform does not
    # deliver a 422 again).
    outcome = accept(signed_typeform(samples.typeform_body(country=country)), services())
    assert isinstance(outcome, Accepted)
    assert outcome.submission.draft.country_code == code


def test_secret_store_failure_is_a_503():
    def broken(name: str) -> str:
        raise ConnectionError("secrets manager unreachable")

    with pytest.raises(ServiceUnavailable) as caught:
        accept(signed_typeform(), services(read_secret=broken))
    assert (caught.value.dependency, caught.value.error_type) == ("secrets", "ConnectionError")


def test_a_secret_that_reads_empty_is_a_503_not_a_key_anyone_can_sign_with():
    body = samples.typeform_body()
    forged = post(
        "referral-typeform", body, typeform_signature=samples.typeform_signature(body, "")
    )
    with pytest.raises(ServiceUnavailable) as caught:
        accept(forged, services(read_secret=lambda name: ""))
    assert (caught.value.dependency, caught.value.error_type) == ("secrets", "empty secret")


@pytest.mark.parametrize("stored", [SECRET + "\n", SECRET + "\r\n", " " + SECRET])
@pytest.mark.parametrize("where", ["cached", "rotated"])
def test_a_secret_stored_with_a_line_break_still_verifies(stored, where):
    # `aws secretsmanager create-secret --secret-string file://secret.txt` keeps the file's
    # last line break; Typeform signs with the secret as typed.
    read = {**SECRETS, "cliniko-automations/forms/referral-typeform/signing-secret": stored}
    if where == "cached":
        outcome = accept(signed_typeform(), services(read_secret=read.__getitem__))
    else:  # the cached value is an older one; the secret now holds the new one so
        outcome = accept(
            signed_typeform(),
            services(read_secret=lambda name: "older", rotated_secret=lambda name: (stored,)),
        )
    assert isinstance(outcome, Accepted)
    # A forged delivery is still refused.
    body = samples.typeform_body()
    forged = post(
        "referral-typeform", body, typeform_signature=samples.typeform_signature(body, "x")
    )
    with pytest.raises(BadSignature):
        accept(forged, services(read_secret=read.__getitem__, rotated_secret=lambda name: ()))


def test_each_delivery_checked_against_a_secret_is_told_matched_or_refused():
    # FormSignatureRefusedAlarm's count: a match (by the cached value or one read past the
    # cache after a rotation) is True, a refusal False; a source without a secret, nothing.
    told: list[bool] = []
    accept(signed_typeform(), services(signature_checked=told.append))
    accept(
        signed_typeform(),
        services(
            read_secret=lambda name: "older",
            rotated_secret=lambda name: (SECRET,),
            signature_checked=told.append,
        ),
    )
    body = samples.typeform_body()
    forged = post(
        "referral-typeform", body, typeform_signature=samples.typeform_signature(body, "x")
    )
    with pytest.raises(BadSignature):
        accept(forged, services(signature_checked=told.append))
    assert told == [True, True, False]


def test_webflow_replay_refused_by_the_core_clock():
    body = samples.webflow_body()
    headers = samples.webflow_headers(body)
    request = post("website-webflow", body, **{k.replace("-", "_"): v for k, v in headers.items()})
    assert isinstance(accept(request, services()), Accepted)
    later = datetime.now(UTC) + timedelta(minutes=6)
    with pytest.raises(BadSignature, match="window"):
        accept(request, services(clock=lambda: later))


# --- Jotform: token in a header or the query string ------------------------------------------


@pytest.mark.parametrize("where", ["header", "query"])
def test_jotform_token(where):
    body, content_type = samples.jotform_body()
    headers = {"content-type": content_type}
    query = {}
    if where == "header":
        headers["x-intake-token"] = samples.TOKEN
    else:
        query["token"] = samples.TOKEN
    outcome = accept(IntakeRequest("intake-jotform", body, headers, query), services())
    assert isinstance(outcome, Accepted)
    draft = outcome.submission.draft
    assert (draft.first_name, draft.last_name, draft.type_code) == (FIRST, LAST, 1)
    assert (draft.address_1, draft.city, draft.post_code, draft.country_code) == (
        "1 Harbour St",
        "Sydney",
        "2000",
        "AU",
    )
    assert outcome.submission.idempotency_key == "intake-jotform:5712345678901234567"


def test_jotform_middle_name_and_suffix_are_kept():
    raw = samples.jotform_raw_request()
    raw["q3_name"] = {
        "prefix": "Dr",
        "first": "Mary",
        "middle": "Jane",
        "last": "Watson",
        "suffix": "Jr",
    }
    body, content_type = samples.jotform_body(raw=raw)
    request = IntakeRequest(
        "intake-jotform", body, {"content-type": content_type, "x-intake-token": samples.TOKEN}
    )
    outcome = accept(request, services())
    assert isinstance(outcome, Accepted)
    draft = outcome.submission.draft
    assert (draft.title, draft.first_name, draft.last_name) == ("Dr", "Mary Jane", "Watson Jr")


@pytest.mark.parametrize("token", [None, "", samples.TOKEN + "x", samples.TOKEN[:-1]])
def test_jotform_bad_or_missing_token(token):
    body, content_type = samples.jotform_body()
    query = {} if token is None else {"token": token}
    with pytest.raises(BadSignature):
        accept(
            IntakeRequest("intake-jotform", body, {"content-type": content_type}, query), services()
        )


# --- json sources with a static token (Gravity Forms, WPForms) -------------------------------

GRAVITY_TOKEN = "gravity-token-0123456789abcdef"
GRAVITY = form_sources_of(
    {
        "sources": {
            "gravity": {
                "provider": "json",
                "token_secret": "cliniko-automations/forms/gravity/token",
                "account": "main-clinic",
                "fields": [
                    {"from": "1.3", "to": "first_name"},
                    {"from": "1.6", "to": "last_name"},
                    {"from": "2", "to": "email"},
                ],
            }
        }
    }
)
GRAVITY_ENTRY = samples.dumps({"id": "12", "form_id": "1", "1.3": FIRST, "1.6": LAST, "2": EMAIL})


def gravity_services() -> Services:
    return services(
        GRAVITY, read_secret={"cliniko-automations/forms/gravity/token": GRAVITY_TOKEN}.__getitem__
    )


@pytest.mark.parametrize("where", ["header", "query"])
def test_a_json_source_with_a_token_takes_it_instead_of_a_signature(where):
    headers = {"content-type": "application/json"}
    query = {}
    if where == "header":
        headers["x-intake-token"] = GRAVITY_TOKEN
    else:
        query["token"] = GRAVITY_TOKEN
    outcome = accept(IntakeRequest("gravity", GRAVITY_ENTRY, headers, query), gravity_services())
    assert isinstance(outcome, Accepted)
    draft = outcome.submission.draft
    assert (draft.first_name, draft.last_name, draft.email) == (FIRST, LAST, EMAIL)


def test_a_json_source_takes_the_form_format_gravity_forms_may_post():
    # The Webhooks add-on's Request Format "FORM": the same flat answers, url-encoded.
    body = urlencode({"id": "12", "form_id": "1", "1.3": FIRST, "1.6": LAST, "2": EMAIL}).encode()
    headers = {"content-type": "application/x-www-form-urlencoded", "x-intake-token": GRAVITY_TOKEN}
    outcome = accept(IntakeRequest("gravity", body, headers), gravity_services())
    draft = outcome.submission.draft
    assert (draft.first_name, draft.last_name, draft.email) == (FIRST, LAST, EMAIL)
    # What neither format is, still refused.
    with pytest.raises(UnsupportedMediaType):
        accept(
            IntakeRequest("gravity", body, {**headers, "content-type": "text/plain"}),
            gravity_services(),
        )


@pytest.mark.parametrize("token", [None, "", GRAVITY_TOKEN + "x", GRAVITY_TOKEN[:-1], SECRET])
def test_a_json_source_with_a_token_refuses_any_other(token):
    headers = {"content-type": "application/json"}
    if token is not None:
        headers["x-intake-token"] = token
    with pytest.raises(BadSignature):
        accept(IntakeRequest("gravity", GRAVITY_ENTRY, headers), gravity_services())


# --- HTML forms ------------------------------------------------------------------------------


def html_sources(**html_change) -> FormSources:
    """The shipped html source without its captcha (tested against a stand-in elsewhere)."""
    data = yaml.safe_load(DEFAULT_PATH.read_text())
    html = data["sources"]["website-contact-html"]["html"]
    html.pop("captcha")
    html.update(nonce_field="nonce", **html_change)
    return form_sources_of(data)


def browser(body: bytes, origin: str | None = ORIGIN, **headers: str) -> IntakeRequest:
    all_headers = {"content-type": "application/x-www-form-urlencoded", **headers}
    if origin is not None:
        all_headers["origin"] = origin
    return IntakeRequest("website-contact-html", body, all_headers)


FORM = f"name=Marguerite+Okonkwo-Lindqvist&email={EMAIL}&phone=0412987654&message=Hi&website="


def test_html_accepted_with_success_redirect():
    outcome = accept(browser(FORM.encode() + b"&nonce=n-1"), services(html_sources()))
    assert isinstance(outcome, Accepted)
    draft = outcome.submission.draft
    assert outcome.submission.idempotency_key == f"website-contact-html:n-1:{draft.person_digest()}"
    assert outcome.cors_origin == ORIGIN
    target = urlsplit(outcome.redirect_to)
    assert f"{target.scheme}://{target.netloc}{target.path}" == SUCCESS_URL
    assert parse_qs(target.query) == {"submission_id": [outcome.submission.submission_id]}
    assert outcome.submission.draft.notes == "Message from the website form: Hi"


def test_html_an_email_confirmed_in_a_second_input_of_its_name_is_one_email():
    # A "confirm your email" input named as the email's: the key comes twice, alike.
    confirmed = FORM.replace(f"email={EMAIL}", f"email={EMAIL}&email={EMAIL}")
    outcome = accept(browser(confirmed.encode()), services(html_sources()))
    assert outcome.submission.draft.email == EMAIL
    # Two different ones are no email, and the person is told why.
    other = FORM.replace(f"email={EMAIL}", f"email={EMAIL}&email=other%40example.org")
    with pytest.raises(FieldsInvalid) as caught:
        accept(browser(other.encode()), services(html_sources()))
    assert caught.value.errors == {"email": GIVEN_DIFFERENTLY}


def test_html_a_name_given_twice_differently_is_refused_not_joined():
    # Joined, "Marguerite Okonkwo-Lindqvist, Ann Lee" made Cliniko's first name "Marguerite"
    # and last name "Okonkwo-Lindqvist, Ann Lee".
    twice = FORM.replace("&email=", "&name=Ann+Lee&email=")
    with pytest.raises(FieldsInvalid) as caught:
        accept(browser(twice.encode()), services(html_sources()))
    assert caught.value.errors == {"first_name": GIVEN_DIFFERENTLY, "last_name": GIVEN_DIFFERENTLY}
    target = parse_qs(urlsplit(caught.value.redirect_to).query)
    assert target == {"error": ["validation"], "fields": ["name"]}


def test_html_a_long_nonce_still_names_the_submission():
    # Read as no nonce, it gave way to the content hash, as a json source's long key did.
    nonce = "n" * 256
    first = accept(browser(FORM.encode() + f"&nonce={nonce}".encode()), services(html_sources()))
    changed = FORM.replace("message=Hi", "message=Hello") + f"&nonce={nonce}"
    again = accept(browser(changed.encode()), services(html_sources()))
    assert isinstance(first, Accepted) and isinstance(again, Accepted)
    assert first.submission.idempotency_key == again.submission.idempotency_key
    digest = first.submission.draft.person_digest()
    assert first.submission.idempotency_key.endswith(f":{digest}")  # keyed by the nonce


def test_html_honeypot_drops_quietly():
    outcome = accept(browser(FORM.encode() + b"bot.example"), services(html_sources()))
    assert isinstance(outcome, Dropped)
    assert outcome.redirect_to.startswith(SUCCESS_URL + "?submission_id=")


@pytest.mark.parametrize("origin", [None, "https://evil.example", "null", ORIGIN + ":443x"])
def test_html_origin_not_allowed_is_a_bare_403(origin):
    with pytest.raises(OriginNotAllowed) as caught:
        accept(browser(FORM.encode(), origin=origin), services(html_sources()))
    assert caught.value.redirect_to is None


def test_html_origin_compares_case_insensitively():
    outcome = accept(browser(FORM.encode(), origin=ORIGIN.upper()), services(html_sources()))
    assert isinstance(outcome, Accepted) and outcome.cors_origin == ORIGIN


def test_html_refusals_redirect_to_the_error_page():
    sources = html_sources()
    with pytest.raises(FieldsInvalid) as caught:
        accept(browser(b"name=&email=not-an-email&website="), services(sources))
    target = urlsplit(caught.value.redirect_to)
    assert f"{target.scheme}://{target.netloc}{target.path}" == ERROR_URL
    assert parse_qs(target.query) == {"error": ["validation"], "fields": ["email,name"]}
    with pytest.raises(UnsupportedMediaType) as caught:
        accept(browser(b"{}", **{"content-type": "application/json"}), services(sources))
    assert caught.value.redirect_to == ERROR_URL + "?error=unsupported_media_type"


def test_html_redirect_choices_are_allow_listed():
    other = "https://www.example-clinic.com.au/referrals/thanks"
    sources = html_sources(success_urls=[SUCCESS_URL, other])
    picked = accept(browser(FORM.encode() + f"&_success_url={other}".encode()), services(sources))
    assert isinstance(picked, Accepted) and picked.redirect_to.startswith(other + "?")
    evil = accept(
        browser(FORM.encode() + b"&_success_url=https://evil.example/"), services(sources)
    )
    assert isinstance(evil, Accepted) and evil.redirect_to.startswith(SUCCESS_URL + "?")
    # Control fields are not answers: they never reach notes or the content hash.
    assert "evil" not in evil.submission.to_json()
