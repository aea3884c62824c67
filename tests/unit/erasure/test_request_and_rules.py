"""The erasure core's pure parts: request validation, scrub planning, overdue counting."""

from __future__ import annotations

import hashlib
import hmac
from datetime import UTC, datetime

import pytest
from cliniko_automations.cliniko.rules import WRITABLE_FIELDS, validate_contact_fields
from cliniko_automations.common.person_keys import email_hash
from cliniko_automations.erasure.attempt import Attempt, Tools
from cliniko_automations.erasure.deadlines import overdue_request_ids
from cliniko_automations.erasure.errors import InvalidRequest
from cliniko_automations.erasure.models import ErasureRequest
from cliniko_automations.erasure.scrub import (
    PLACEHOLDER_FIRST_NAME,
    SCRUBBED_VALUES,
    fields_to_scrub,
    is_erased,
)

FULL_CONTACT = {
    "id": "1390712996921091568",
    "title": "Dr",
    "first_name": "Ada",
    "last_name": "Lovelace",
    "preferred_name": "Ada",
    "company_name": "Analytical Engines",
    "occupation": "Mathematician",
    "provider_number": "2004567X",
    "email": "ada@example.com",
    "address_1": "1 St James's Square",
    "address_2": "Level 2",
    "address_3": "Suite 3",
    "city": "London",
    "state": "Greater London",
    "post_code": "SW1Y 4JU",
    "country_code": "GB",
    "country": "United Kingdom",
    "notes": "Prefers fax",
    "doctor_type": "specialist",
    "type_code": 1,
    "phone_numbers": [{"number": "0400 000 000", "phone_type": "Mobile"}],
    "archived_at": None,
}


def test_the_scrub_body_is_one_cliniko_accepts_on_update():
    assert validate_contact_fields(SCRUBBED_VALUES, creating=False) == {}
    # and even on create, which is where Cliniko insists on a first name
    assert validate_contact_fields(SCRUBBED_VALUES, creating=True) == {}


def test_the_scrub_body_covers_every_writable_field_except_the_category():
    assert set(SCRUBBED_VALUES) == WRITABLE_FIELDS - {"type_code"}


def test_each_erased_value_follows_the_field_type_in_the_spec():
    # Derived from the generated ContactWrite: strings blank, the list empty, the enum and
    # the country code null (how Cliniko clears them), the first name the placeholder.
    assert SCRUBBED_VALUES["first_name"] == PLACEHOLDER_FIRST_NAME
    assert SCRUBBED_VALUES["phone_numbers"] == []
    assert SCRUBBED_VALUES["doctor_type"] is None
    assert SCRUBBED_VALUES["country_code"] is None
    strings = set(SCRUBBED_VALUES) - {"first_name", "phone_numbers", "doctor_type", "country_code"}
    assert {"email", "last_name", "notes", "address_1"} <= strings
    assert {SCRUBBED_VALUES[name] for name in strings} == {""}


def test_every_personal_field_of_a_full_contact_is_planned():
    assert sorted(fields_to_scrub(FULL_CONTACT)) == sorted(SCRUBBED_VALUES)


def test_a_scrubbed_archived_contact_is_erased():
    scrubbed = {
        **FULL_CONTACT,
        **SCRUBBED_VALUES,
        "country": None,
        "archived_at": "2026-01-01T00:00:00Z",
    }
    assert fields_to_scrub(scrubbed) == []
    assert is_erased(scrubbed)
    # Cliniko returns blanks as "" and may return doctor_type "": still erased
    assert is_erased({**scrubbed, "country_code": "", "doctor_type": "", "first_name": ""})


def test_a_scrubbed_contact_marked_deleted_is_erased():
    # deleted_at: the only mark the contacts page of Cliniko's docs shows (its DELETE archives).
    scrubbed = {**FULL_CONTACT, **SCRUBBED_VALUES, "country": None}
    del scrubbed["archived_at"]
    assert is_erased({**scrubbed, "deleted_at": "2026-01-01T00:00:00Z"})
    assert not is_erased({**scrubbed, "deleted_at": None})


def test_scrubbed_but_not_archived_is_not_erased():
    scrubbed = {**FULL_CONTACT, **SCRUBBED_VALUES, "country": None}
    assert fields_to_scrub(scrubbed) == []
    assert not is_erased(scrubbed)


def test_a_left_over_country_name_counts_as_personal():
    leftover = {**SCRUBBED_VALUES, "country": "Estonia", "archived_at": "2026-01-01T00:00:00Z"}
    assert fields_to_scrub(leftover) == ["country_code"]
    assert not is_erased(leftover)


def test_a_request_is_normalised():
    request = ErasureRequest.parse(
        {
            "request_id": "r-1",
            "email": " Ada+X@Example.COM ",
            "reason": "GDPR art. 17",
            "contact_id": 42,
        }
    )
    assert request.email == "ada+x@example.com"
    assert request.contact_id == "42"
    assert not request.dry_run and not request.erase_all_matches


@pytest.mark.parametrize(
    ("sent", "searched"),
    [
        ("anna@bücher.de", "anna@xn--bcher-kva.de"),
        ("Anna@Straße.de", "anna@xn--strae-oqa.de"),  # IDNA 2008: ß is kept, not "ss"
        ("ａｎｎａ@ｅｘａｍｐｌｅ.ｃｏｍ", "anna@example.com"),  # full-width, as an IME types
        ("anna@xn--bcher-kva.de", "anna@xn--bcher-kva.de"),
        # No form Cliniko takes: searched as typed (a contact entered before it checked).
        ("jäne@example.de", "jäne@example.de"),
        ("jane@ex_ample.com", "jane@ex_ample.com"),
        ("jane@exämple.123", "jane@exämple.123"),
        # A comma before the `@` is one Cliniko's check and the intake's take.
        ("jane,doe@example.com", "jane,doe@example.com"),
    ],
)
def test_an_email_is_searched_in_the_form_cliniko_holds(sent, searched):
    request = ErasureRequest.parse({"request_id": "r-1", "email": sent, "reason": "x"})
    assert request.email == searched


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({"request_id": "r-1", "reason": "x"}, "body"),
        ({"request_id": "", "contact_id": "1", "reason": "x"}, "request_id"),
        ({"request_id": "bad id", "contact_id": "1", "reason": "x"}, "request_id"),
        ({"request_id": "r-1", "contact_id": "abc", "reason": "x"}, "contact_id"),
        ({"request_id": "r-1", "contact_id": True, "reason": "x"}, "contact_id"),
        ({"request_id": "r-1", "email": "not-an-email", "reason": "x"}, "email"),
        # An address copied with its wrapping: as typed it found nobody, and the request
        # completed as "no record found" with the person still in Cliniko.
        ({"request_id": "r-1", "email": "mailto:anna@example.org", "reason": "x"}, "email"),
        ({"request_id": "r-1", "email": "<anna@example.org>", "reason": "x"}, "email"),
        ({"request_id": "r-1", "email": "anna@example.org,", "reason": "x"}, "email"),
        ({"request_id": "r-1", "email": "anna@example.org;", "reason": "x"}, "email"),
        ({"request_id": "r-1", "email": '"anna"@example.org', "reason": "x"}, "email"),
        # no Cliniko filter can carry a control character: refused here, not a failed lookup
        ({"request_id": "r-1", "email": "a\u0001b@example.com", "reason": "x"}, "email"),
        ({"request_id": "r-1", "email": "ab@example.com\u007f", "reason": "x"}, "email"),
        # Cliniko's ids are signed 64-bit: one past the largest names no contact
        ({"request_id": "r-1", "contact_id": "9223372036854775808", "reason": "x"}, "contact_id"),
        ({"request_id": "r-1", "contact_id": 10**19, "reason": "x"}, "contact_id"),
        ({"request_id": "r-1", "contact_id": "1"}, "reason"),
        ({"request_id": "r-1", "contact_id": "1", "reason": "asked by ada@example.com"}, "reason"),
        ({"request_id": "r-1", "contact_id": "1", "reason": "call 0400 123 456"}, "reason"),
        # a non-UTF-8 terminal's byte, as Python's arguments carry it: no text to keep
        ({"request_id": "r-1", "contact_id": "1", "reason": "ticket Jos\udce9"}, "reason"),
        ({"request_id": "r-1", "email": "jos\udce9@example.com", "reason": "x"}, "email"),
        # an unknown key is the caller's text: counted under "body", never echoed
        ({"request_id": "r-1", "contact_id": "1", "reason": "x", "extra": 1}, "body"),
        ({"request_id": "r-1", "contact_id": "1", "reason": "x", "dry_run": "maybe"}, "dry_run"),
        # null is no "false": a caller's unset dry run is not taken as a real erasure
        ({"request_id": "r-1", "contact_id": "1", "reason": "x", "dry_run": None}, "dry_run"),
        (
            {"request_id": "r-1", "email": "a@b.co", "reason": "x", "erase_all_matches": None},
            ("erase_all_matches"),
        ),
        # kept in the trail for good, as a reason is: a phone number, or a NUL, is refused
        ({"request_id": "0400123456", "contact_id": "1", "reason": "x"}, "request_id"),
        ({"request_id": "0400-123-456", "contact_id": "1", "reason": "x"}, "request_id"),
        ({"request_id": "r-1", "contact_id": "1", "reason": "GDPR\x00art. 17"}, "reason"),
        ({"request_id": "r-1", "contact_id": "1", "reason": "GDPR \x1b[2J"}, "reason"),
    ],
)
def test_bad_requests_name_the_field_and_never_echo_the_value(body, field):
    with pytest.raises(InvalidRequest) as caught:
        ErasureRequest.parse(body)
    assert field in caught.value.problems
    text = str(caught.value)
    for value in ("not-an-email", "ada@example.com", "0400 123 456", "maybe"):
        assert value not in text


@pytest.mark.parametrize(
    "request_id",
    [
        "r-42",
        "123e4567-e89b-12d3-a456-426614174000",  # a uuid: its digits joined by '-' are no phone
        "31415926-5358-9793-2384-626433832795",  # nor are a uuid's of digits alone (32 of them)
        "2026-12-06",  # an ISO date
        "9" * 21,  # longer than any phone number
        "1234567",  # a short ticket number
    ],
)
def test_a_request_id_that_is_no_phone_number_is_taken(request_id):
    body = {"request_id": request_id, "contact_id": "1", "reason": "x"}
    assert ErasureRequest.parse(body).request_id == request_id


def test_a_reason_is_one_line():
    body = {"request_id": "r-1", "contact_id": "1", "reason": " GDPR\n art. 17\t(ticket r-42) "}
    assert ErasureRequest.parse(body).reason == "GDPR art. 17 (ticket r-42)"


def test_a_reason_may_be_200_characters_and_no_more():
    body = {"request_id": "r-1", "contact_id": "1"}
    assert ErasureRequest.parse({**body, "reason": "r" * 200}).reason == "r" * 200
    with pytest.raises(InvalidRequest) as caught:
        ErasureRequest.parse({**body, "reason": "r" * 201})
    assert caught.value.problems == {"reason": "must be 1-200 characters"}


def test_a_request_id_may_be_128_characters_and_no_more():
    body = {"contact_id": "1", "reason": "GDPR"}
    assert ErasureRequest.parse({**body, "request_id": "r" * 128}).request_id == "r" * 128
    with pytest.raises(InvalidRequest) as caught:
        ErasureRequest.parse({**body, "request_id": "r" * 129})
    assert list(caught.value.problems) == ["request_id"]


def test_the_largest_cliniko_id_is_a_contact_id():
    body = {"request_id": "r-1", "contact_id": str(2**63 - 1), "reason": "x"}
    assert ErasureRequest.parse(body).contact_id == "9223372036854775807"


def test_a_body_that_is_not_an_object_is_invalid():
    with pytest.raises(InvalidRequest):
        ErasureRequest.parse(["r-1"])


def test_the_email_repr_hides_the_address():
    request = ErasureRequest.parse({"request_id": "r", "email": "ada@example.com", "reason": "x"})
    assert "ada@example.com" not in repr(request)


def test_email_hash_is_hmac_sha256_of_the_lower_cased_email():
    pepper = "p" * 32
    expected = hmac.new(pepper.encode(), b"ada@example.com", hashlib.sha256).hexdigest()
    assert email_hash(pepper, "Ada@Example.com") == expected
    assert email_hash("q" * 32, "ada@example.com") != expected


@pytest.mark.parametrize("invisible", ["\u200b", "\u200e", "\u00ad", "\ufeff", "\u2060"])
def test_an_email_with_invisible_characters_is_the_address_meant(invisible):
    # The intake stores the address without them (tests/unit/intake_api/test_mapping.py):
    # the erasure's hash must be of the same address, or it misses the stored submission.
    body = {"request_id": "r-1", "email": f"Ada@Exam{invisible}ple.com{invisible}", "reason": "x"}
    assert ErasureRequest.parse(body).email == "ada@example.com"
    pepper = "p" * 32
    assert email_hash(pepper, f"{invisible}ada@example.com") == email_hash(
        pepper, "ada@example.com"
    )


def test_overdue_counts_open_and_failed_requests_past_their_due_date():
    now = datetime(2026, 3, 1, tzinfo=UTC)
    records = [
        # due, never finished
        {"request_id": "a", "sk": "000#received", "due_at": "2026-02-01T00:00:00Z"},
        {"request_id": "a", "sk": "001#failed"},
        # due, completed
        {"request_id": "b", "sk": "000#received", "due_at": "2026-02-01T00:00:00Z"},
        {"request_id": "b", "sk": "999#outcome", "status": "completed"},
        # not yet due
        {"request_id": "c", "sk": "000#received", "due_at": "2026-03-02T00:00:00Z"},
        # due, open
        {"request_id": "d", "sk": "000#received", "due_at": "2026-02-28T23:59:59Z"},
    ]
    assert overdue_request_ids(records, now) == ["a", "d"]
    assert overdue_request_ids([], now) == []


def test_the_placeholder_identifies_nobody():
    assert PLACEHOLDER_FIRST_NAME == "Erased"


@pytest.mark.parametrize(
    "reason",
    ["GDPR art. 17", "ticket PRIV-123456", "asked on 2026-11-23 by phone", "APP 11.2 (AU)"],
)
def test_ordinary_reasons_pass(reason):
    assert ErasureRequest.parse({"request_id": "r", "contact_id": "1", "reason": reason}).reason


@pytest.mark.parametrize(
    "reason",
    # Eight digits is a local number without its area code, a phone number all the same.
    ["call +61 491 570 156", "fax (02) 5550-1234", "0491570156", "ring 5550 1234"],
)
def test_reasons_with_phone_numbers_are_refused(reason):
    with pytest.raises(InvalidRequest) as caught:
        ErasureRequest.parse({"request_id": "r", "contact_id": "1", "reason": reason})
    assert "reason" in caught.value.problems


@pytest.mark.parametrize(
    "reason",
    [
        "jane.doe\uff20example.com asked",  # a full-width "@"
        "jane.doe\ufe6bexample.com asked",  # a small "@"
        "call \uff10\uff14\uff19\uff11 570 156",  # full-width digits
        "\u200b",  # only a zero-width space
        "\u200b \ufeff\u2060",
    ],
)
def test_reasons_are_checked_as_a_person_reads_them(reason):
    with pytest.raises(InvalidRequest) as caught:
        ErasureRequest.parse({"request_id": "r", "contact_id": "1", "reason": reason})
    assert "reason" in caught.value.problems


def test_a_reason_is_kept_without_its_invisible_characters():
    request = ErasureRequest.parse(
        {"request_id": "r", "contact_id": "1", "reason": "GDPR\u200b art.\u00a017 "}
    )
    assert request.reason == "GDPR art. 17"


@pytest.mark.parametrize("phones", [5, {"number": "0412 345 678"}, ["0412 345 678", None, 7]])
def test_a_contact_s_phone_numbers_off_the_spec_are_no_phones_to_the_purge(phones):
    # The generated parser keeps such a value as it came; the purge read it as a list of
    # mappings and failed the erasure (a 500) on every retry.
    tools = Tools(None, None, "p" * 16, lambda: datetime.now(UTC), lambda *_: None)
    request = ErasureRequest.parse({"request_id": "r-1", "contact_id": "1", "reason": "x"})
    attempt = Attempt(tools, request, "caller", {}, 1, ["main-clinic"])
    # A name with earlier folds of its own (its apostrophe as typed, its accent apart): none
    # of them makes keys of a number that is none either.
    contact = {"first_name": "Zoë", "last_name": "O’Brien", "phone_numbers": phones}
    keys, *earlier = attempt._keys("ann@example.org", contact)
    assert keys.email_hmac and keys.name_phone == ()
    assert earlier == []
    # With a number, they do.
    contact["phone_numbers"] = [{"number": "0412 345 678"}]
    assert len(attempt._keys("ann@example.org", contact)) > 2


@pytest.mark.parametrize(
    ("account", "problem"),
    [
        (7, "must be a string"),
        ("", "must be the name of a Cliniko account of this deployment"),
        ("north\nclinic", "must be the name of a Cliniko account of this deployment"),
        ("x" * 129, "must be the name of a Cliniko account of this deployment"),
    ],
)
def test_an_account_is_a_name(account, problem):
    with pytest.raises(InvalidRequest) as refused:
        ErasureRequest.parse(
            {"request_id": "r", "email": "a@b.co", "reason": "x", "account": account}
        )
    assert refused.value.problems == {"account": problem}


def test_an_account_alone_names_nobody():
    with pytest.raises(InvalidRequest) as refused:
        ErasureRequest.parse({"request_id": "r", "reason": "x", "account": "north-clinic"})
    assert refused.value.problems == {"body": "give contact_id, email or both"}
    named = ErasureRequest.parse(
        {"request_id": "r", "contact_id": "4", "reason": "x", "account": " north-clinic "}
    )
    assert named.account == "north-clinic"


def test_a_field_the_contact_was_read_without_is_one_to_scrub_not_a_blank_one():
    # The seed's GET /contacts item: no doctor_type, no country_code.
    from cliniko_automations.erasure.scrub import fields_to_scrub

    listed = {"id": "1", "first_name": "Erased", "archived_at": "2025-01-01T00:00:00Z"}
    listed.update({name: "" for name in ("title", "last_name", "email", "notes")})
    assert "doctor_type" in fields_to_scrub(listed, absent_is_blank=False)
    assert "doctor_type" not in fields_to_scrub(listed)  # a read back after the scrub


@pytest.mark.parametrize(("country", "left"), [("", []), ("Australia", ["country_code"])])
def test_a_listed_contact_s_country_name_stands_for_its_code_and_for_nothing_else(country, left):
    # The seed's GET /contacts item carries `country` (the name) in place of country_code, and
    # still no doctor_type: the name tells the code's state, and says nothing of doctor_type,
    # which an erasure must still write (or read by id) rather than take as blank.
    from cliniko_automations.erasure.scrub import fields_to_scrub

    listed = {"id": "1", "first_name": "Erased", "archived_at": "2025-01-01T00:00:00Z"}
    listed.update({name: "" for name in ("title", "last_name", "email", "notes")})
    listed["country"] = country
    to_scrub = fields_to_scrub(listed, absent_is_blank=False)
    assert "doctor_type" in to_scrub
    assert [name for name in to_scrub if name.startswith("country")] == left
