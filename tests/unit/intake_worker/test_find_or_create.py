"""Find-or-create decisions: identity, matching, update policies, parking. Pure functions."""

from __future__ import annotations

import dataclasses
from datetime import UTC, datetime, timedelta

import pytest
from cliniko_automations.cliniko.rules import STRING_FIELDS
from cliniko_automations.intake.submission import ContactDraft, PhoneNumber
from cliniko_automations.intake_worker import find_or_create as foc

T0 = datetime(2026, 11, 23, 12, 0, tzinfo=UTC)


def contact(cid: str = "1001", **fields) -> dict:
    """A contact as Cliniko answers it: every writable field, blank ones as "" (or null)."""
    base: dict = {name: "" for name in STRING_FIELDS}
    base.update(
        id=cid,
        country_code=None,
        country=None,
        doctor_type=None,
        type_code=None,
        phone_numbers=[],
        archived_at=None,
        created_at="2026-01-01T00:00:00Z",
    )
    base.update(fields)
    return base


def listed(cid: str = "1001", **fields) -> dict:
    """A contact as Cliniko's documented list shows it: `country` (the name) but no
    `country_code`, and no `doctor_type`."""
    found = contact(cid, **fields)
    del found["country_code"], found["doctor_type"]
    return found


def test_lookup_by_lower_cased_email() -> None:
    lookup = foc.lookup_for(ContactDraft(email="  Ana.Lima+Ref@Example.COM ", first_name="Ana"))
    assert lookup.kind is foc.LookupKind.EMAIL
    assert lookup.email == "ana.lima+ref@example.com"


def test_lookup_by_name_and_phone_without_email() -> None:
    draft = ContactDraft(
        first_name="Ana", last_name="Lima", phone_numbers=(PhoneNumber(number="+61 412 345 678"),)
    )
    lookup = foc.lookup_for(draft)
    assert lookup.kind is foc.LookupKind.NAME_PHONE
    assert lookup.phones == ("61412345678",)


@pytest.mark.parametrize(
    "draft",
    [
        ContactDraft(first_name="Ana", last_name="Lima"),  # no phone
        ContactDraft(last_name="Lima", phone_numbers=(PhoneNumber(number="0412345678"),)),
        ContactDraft(first_name="Ana", phone_numbers=(PhoneNumber(number="0412345678"),)),
        ContactDraft(company_name="Acme Health Fund"),
    ],
)
def test_no_identity_without_email_or_full_name_and_phone(draft: ContactDraft) -> None:
    lookup = foc.lookup_for(draft)
    assert lookup.kind is foc.LookupKind.NONE
    assert lookup.claim_key("clinic") is None


def test_claim_key_is_a_hash_per_account_and_case_blind() -> None:
    one = foc.lookup_for(ContactDraft(email="Ana@Example.com")).claim_key("north")
    two = foc.lookup_for(ContactDraft(email="ana@example.com")).claim_key("north")
    other_account = foc.lookup_for(ContactDraft(email="ana@example.com")).claim_key("south")
    assert one == two != other_account
    assert "ana" not in one and len(one) == 64


def test_an_email_s_worker_writes_under_the_claim_its_person_without_email_is_looked_up_by() -> (
    None
):
    mobile = (PhoneNumber(number="+61 412 345 678"),)
    with_email = foc.lookup_for(
        ContactDraft(
            first_name="Ana", last_name="Lima", email="ana@example.com", phone_numbers=mobile
        )
    )
    without = foc.lookup_for(
        ContactDraft(
            first_name="ana", last_name="LIMA", phone_numbers=(PhoneNumber(number="0412 345 678"),)
        )
    )
    assert with_email.kind is foc.LookupKind.EMAIL and without.kind is foc.LookupKind.NAME_PHONE
    assert with_email.writing_claim_key("north") == without.claim_key("north")
    assert with_email.writing_claim_key("south") != without.claim_key("north")
    # No phone: no submission without an email could find the contact by its name.
    no_phone = foc.lookup_for(
        ContactDraft(first_name="Ana", last_name="Lima", email="ana@example.com")
    )
    assert no_phone.writing_claim_key("north") is None
    assert without.writing_claim_key("north") is None  # a name's worker holds that claim alone


@pytest.mark.parametrize(
    ("left", "right", "same"),
    [
        ("+61 412 345 678", "0412 345 678", True),
        ("(03) 9123 4567", "+61 3 9123 4567", True),
        ("0011 61 412 345 678", "0412345678", False),  # an exit code we do not strip
        ("0412 345 678", "0412 345 679", False),
        ("123", "0123", True),  # equal once the trunk zero goes
        ("5678", "61412345678", False),  # too short to match by suffix
        ("345 678", "0412 345 678", False),  # a local tail is not the number
    ],
)
def test_phone_matching(left: str, right: str, same: bool) -> None:
    assert foc.phones_match(foc.phone_digits(left), foc.phone_digits(right)) is same


def test_a_name_with_accents_is_also_looked_up_decomposed_and_no_other_is() -> None:
    assert foc.name_spellings("José", "Núñez")[-1] == ("Jose\u0301", "Nu\u0301n\u0303ez")
    assert len(foc.name_spellings("José", "Núñez")) == 4  # as typed, lower, UPPER, apart
    assert foc.name_spellings("민준", "김") == [("민준", "김")]
    assert len(foc.name_spellings("Ana", "LIMA")) == 4  # as typed, Title, lower, UPPER


def test_name_phone_match_needs_a_shared_number_and_folded_names() -> None:
    draft = ContactDraft(
        first_name="ana", last_name="LIMA", phone_numbers=(PhoneNumber(number="0412 345 678"),)
    )
    lookup = foc.lookup_for(draft)
    same = contact(
        first_name="Ana",
        last_name="Lima",
        phone_numbers=[{"number": "+61412345678", "phone_type": "Mobile"}],
    )
    other_phone = contact(
        "1002",
        first_name="Ana",
        last_name="Lima",
        phone_numbers=[{"number": "0499 999 999", "phone_type": "Mobile"}],
    )
    # A family's shared home phone: the same first name and number, another last name.
    other_name = contact(
        "1003",
        first_name="Ana",
        last_name="Silva",
        phone_numbers=[{"number": "0412 345 678", "phone_type": "Home"}],
    )
    decision = foc.decide(draft, lookup, [same, other_phone, other_name], "fill_blanks")
    assert decision.contact_id == "1001"


def test_a_namesake_is_matched_by_any_one_of_its_numbers_and_never_by_none() -> None:
    draft = ContactDraft(
        first_name="ana", last_name="LIMA", phone_numbers=(PhoneNumber(number="0412 345 678"),)
    )
    lookup = foc.lookup_for(draft)
    # Staff's contact with a home number beside the mobile the form gave: the same person.
    two_numbers = contact(
        first_name="Ana",
        last_name="Lima",
        phone_numbers=[
            {"number": "0499 999 999", "phone_type": "Home"},
            {"number": "+61412345678", "phone_type": "Mobile"},
        ],
    )
    assert foc.matches(lookup, two_numbers)
    assert foc.decide(draft, lookup, [two_numbers], "fill_blanks").contact_id == "1001"
    # A namesake without a number is someone else: updated, their record would be the form's.
    no_number = contact("1002", first_name="Ana", last_name="Lima", phone_numbers=[])
    assert not foc.matches(lookup, no_number)
    assert foc.decide(draft, lookup, [no_number], "fill_blanks").action == "create"


def test_no_match_creates_with_the_draft_fields() -> None:
    draft = ContactDraft(email="ana@example.com", first_name="Ana")
    decision = foc.decide(draft, foc.lookup_for(draft), [], "fill_blanks")
    assert decision.action == "create"
    assert decision.changes == {"email": "ana@example.com", "first_name": "Ana"}


def test_email_filter_result_is_checked_again() -> None:
    # Whatever Cliniko's filter returned, a different email is not a match.
    draft = ContactDraft(email="ana@example.com")
    decision = foc.decide(
        draft, foc.lookup_for(draft), [contact(email="anna@example.com")], "fill_blanks"
    )
    assert decision.action == "create"


@pytest.mark.parametrize(
    "fields",
    [
        {"email": 5, "first_name": 5},
        {"email": ["ana@example.com"]},
        {"first_name": {"x": 1}, "last_name": 7},
        {"phone_numbers": [{"number": 412345678, "phone_type": "Mobile"}, "0412 345 678", None]},
        {"phone_numbers": {"number": "0412 345 678"}},
    ],
)
def test_a_candidate_with_values_off_the_spec_is_no_match_and_no_crash(fields) -> None:
    # Cliniko sends text; an answer that does not is compared as holding none, never read as
    # text (the worker failed with a bare AttributeError, retry after retry).
    for draft in (
        ContactDraft(email="ana@example.com", first_name="Ana"),
        ContactDraft(
            first_name="Ana", last_name="Lima", phone_numbers=(PhoneNumber("0412 345 678"),)
        ),
    ):
        candidate = contact(**fields)
        decision = foc.decide(draft, foc.lookup_for(draft), [candidate], "overwrite")
        assert decision.action == "create"
        window = foc.CreateWindow(T0)
        assert not foc.made_by_create(draft, {**candidate, "created_at": T0.isoformat()}, window)
        assert isinstance(foc.plan_update(draft, candidate, "overwrite"), dict)


def test_several_matches_park_with_ids_and_no_personal_reason() -> None:
    draft = ContactDraft(email="ana@example.com", first_name="Ana")
    found = [contact("1", email="ANA@example.com"), contact("2", email="ana@example.com")]
    decision = foc.decide(draft, foc.lookup_for(draft), found, "fill_blanks")
    assert decision.action == "park"
    assert decision.reason == "several_matches"
    assert decision.candidate_ids == ("1", "2")
    assert not decision.changes


def test_several_sharing_an_address_park_with_every_ones_id_when_two_carry_the_name() -> None:
    # Staff are shown every contact the address found, not only the namesakes.
    draft = ContactDraft(email="ana@example.com", first_name="Ana", last_name="Lima")
    found = [
        contact("1", email="ana@example.com", first_name="Ana", last_name="Lima"),
        contact("2", email="ana@example.com", first_name="Ana", last_name="Lima"),
        contact("3", email="ana@example.com", first_name="Reception", last_name="Desk"),
    ]
    decision = foc.decide(draft, foc.lookup_for(draft), found, "overwrite")
    assert (decision.action, decision.reason) == ("park", "several_matches")
    assert decision.candidate_ids == ("1", "2", "3")


@pytest.mark.parametrize("mark", ["archived_at", "deleted_at"])
def test_only_archived_match_parks_instead_of_reviving_or_duplicating(mark) -> None:
    # deleted_at: the only mark the contacts page of Cliniko's docs shows.
    draft = ContactDraft(email="ana@example.com")
    archived = contact(email="ana@example.com", **{mark: "2026-02-01T00:00:00Z"})
    decision = foc.decide(draft, foc.lookup_for(draft), [archived], "overwrite")
    assert (decision.action, decision.reason) == ("park", "archived_match")


def test_one_active_match_wins_over_archived_ones() -> None:
    draft = ContactDraft(email="ana@example.com", first_name="Ana")
    archived = contact("1", email="ana@example.com", archived_at="2026-02-01T00:00:00Z")
    active = contact("2", email="ana@example.com")
    decision = foc.decide(draft, foc.lookup_for(draft), [archived, active], "fill_blanks")
    assert (decision.action, decision.contact_id) == ("update", "2")
    assert decision.changes == {"first_name": "Ana"}


def test_fill_blanks_never_overwrites_staff_edits() -> None:
    draft = ContactDraft(
        email="ana@example.com",
        first_name="Ana",
        last_name="Lima",
        city="Hobart",
        phone_numbers=(PhoneNumber(number="0412 345 678"),),
    )
    existing = contact(
        email="ana@example.com",
        first_name="Anabel",  # staff corrected it
        last_name="",
        city=None,
        phone_numbers=[{"number": "03 9123 4567", "phone_type": "Work"}],
    )
    changes = foc.plan_update(draft, existing, "fill_blanks")
    assert changes == {"last_name": "Lima", "city": "Hobart"}


def test_fields_a_listed_contact_leaves_out_are_unknown_not_blank() -> None:
    draft = ContactDraft(
        email="ana@example.com", first_name="Ana", country_code="AU", doctor_type="specialist"
    )
    # Staff set Estonia: the list names the country, and says nothing of the doctor type.
    staff = listed(email="ana@example.com", first_name="", country="Estonia")
    assert foc.plan_update(draft, staff, "fill_blanks") == {"first_name": "Ana"}
    assert foc.plan_update(draft, staff, "overwrite") == {
        "first_name": "Ana",
        "country_code": "AU",
        "doctor_type": "specialist",
    }
    # A blank country is known blank, and filled; the same country by name is no change.
    assert "country_code" in foc.plan_update(draft, listed(country=""), "fill_blanks")
    same = listed(email="ana@example.com", first_name="Ana", country="Australia")
    assert foc.plan_update(draft, same, "overwrite") == {"doctor_type": "specialist"}


def test_a_listed_contact_our_lost_create_made_is_adopted() -> None:
    draft = ContactDraft(
        email="ana@example.com", first_name="Ana", country_code="AU", doctor_type="specialist"
    )
    ours = listed(
        email="ana@example.com",
        first_name="Ana",
        country="Australia",
        created_at="2026-11-23T12:00:01Z",
    )
    assert foc.made_by_create(draft, ours, LOST)
    decision = foc.decide(draft, foc.lookup_for(draft), [ours], "fill_blanks", lost_create=LOST)
    assert (decision.action, decision.contact_id) == ("adopt", "1001")
    # A field it does carry still has to agree: another country is someone else's contact.
    assert not foc.made_by_create(draft, dict(ours, country="New Zealand"), LOST)
    assert not foc.made_by_create(draft, dict(ours, country="Atlantis"), LOST)


def test_overwrite_replaces_differing_values_only() -> None:
    draft = ContactDraft(
        email="Ana@Example.com",
        first_name="Ana",
        city="Hobart",
        phone_numbers=(PhoneNumber(number="0412 345 678"),),
    )
    existing = contact(
        email="ana@example.com",
        first_name="Anabel",
        city="Hobart",
        phone_numbers=[{"number": "+61 412 345 678", "phone_type": "Mobile"}],
    )
    assert foc.plan_update(draft, existing, "overwrite") == {"first_name": "Ana"}


def test_overwrite_leaves_a_value_alone_that_differs_in_unicode_composition_only() -> None:
    # "e" and a combining accent for staff's "é": written, staff's search for what they type
    # no longer found the contact. A value that reads otherwise is still written.
    draft = ContactDraft(first_name="Jose\u0301", last_name="Nu\u0301n\u0303ez", city="Orebro")
    existing = contact(first_name="Jos\u00e9", last_name="N\u00fa\u00f1ez", city="\u00d6rebro")
    assert foc.plan_update(draft, existing, "overwrite") == {"city": "Orebro"}


@pytest.mark.parametrize(
    ("theirs", "action"),
    [
        (("Ruth", "Ng"), "park"),  # a reception's, a claims desk's, a family's address
        (("Omar", "Ng"), "park"),
        (("OMAR", " haddad"), "update"),  # the same name, as staff typed it
        (("Omar", ""), "update"),  # nothing to tell them apart by
        # The same whole name split otherwise, or with the title typed in (a contact made from
        # "Dr Omar Haddad" before titles were read); not with a word more.
        (("Dr", "Omar Haddad"), "update"),
        (("Omar Haddad", ""), "update"),
        (("Omar", "Haddad Jr"), "park"),
        # A one-word name that is none of the submission's words: a contact staff keep under
        # the desk's name is not renamed after whoever writes from its address.
        (("Reception", ""), "park"),
        (("", "Ng"), "park"),
        (("", "Haddad"), "update"),
    ],
)
def test_overwrite_parks_a_contact_found_by_email_that_names_someone_else(theirs, action) -> None:
    draft = ContactDraft(
        email="reception@harbour.example",
        title="Dr",
        first_name="Omar",
        last_name="Haddad",
        phone_numbers=(PhoneNumber(number="0412 345 678"),),
    )
    staff = contact(
        "7", email="reception@harbour.example", first_name=theirs[0], last_name=theirs[1]
    )
    decision = foc.decide(draft, foc.lookup_for(draft), [staff], "overwrite")
    assert decision.action == action
    if action == "park":
        assert (decision.reason, decision.candidate_ids) == ("name_differs", ("7",))
    # Under fill_blanks nothing staff typed is replaced: the blanks are filled, as documented.
    assert foc.decide(draft, foc.lookup_for(draft), [staff], "fill_blanks").action == "update"


@pytest.mark.parametrize(
    ("ours", "action"),
    [
        # One word that is not the contact's name: anyone who knew the address could rename
        # the contact and replace its phones with a one-word answer (a full name is parked).
        (("Mallory", None), "park"),
        ((None, "Mallory"), "park"),
        (("Jane", None), "update"),  # what there is of the name agrees
        (("Smith", None), "update"),
        (("JANE", None), "update"),
        ((None, None), "update"),  # no name to compare
    ],
)
def test_overwrite_parks_a_one_word_name_that_is_not_the_contacts(ours, action) -> None:
    draft = ContactDraft(
        email="jane@acme.example",
        first_name=ours[0],
        last_name=ours[1],
        company_name="Evil Pty",
        phone_numbers=(PhoneNumber(number="0400 666 666"),),
    )
    jane = contact("7", email="jane@acme.example", first_name="Jane", last_name="Smith")
    decision = foc.decide(draft, foc.lookup_for(draft), [jane], "overwrite")
    assert decision.action == action
    if action == "park":
        assert (decision.reason, decision.candidate_ids) == ("name_differs", ("7",))
        assert not decision.changes


def test_overwrite_takes_a_name_in_another_unicode_composition_as_the_same() -> None:
    draft = ContactDraft(email="zoe@example.com", first_name="Zo\u00eb", last_name="M\u00fcller")
    staff = contact(
        "7", email="zoe@example.com", first_name="Zoe\u0308", last_name="Mu\u0308ller", city="x"
    )
    # Not parked as name_differs; and with nothing else to write, not rewritten either.
    assert foc.decide(draft, foc.lookup_for(draft), [staff], "overwrite").action == "unchanged"
    moved = dataclasses.replace(draft, city="Hobart")
    decision = foc.decide(moved, foc.lookup_for(moved), [staff], "overwrite")
    assert (decision.action, dict(decision.changes)) == ("update", {"city": "Hobart"})


def test_overwrite_updates_the_one_of_a_shared_address_that_carries_the_name() -> None:
    # Parked as name_differs, then given a contact of their own with the shared address by
    # staff: the replay updates that one (it could only be parked again).
    draft = ContactDraft(
        email="reception@harbour.example", first_name="Omar", last_name="Haddad", city="Hobart"
    )
    ruth = contact("7", email="reception@harbour.example", first_name="Ruth", last_name="Ng")
    omar = contact("8", email="reception@harbour.example", first_name="Omar", last_name="Haddad")
    decision = foc.decide(draft, foc.lookup_for(draft), [ruth, omar], "overwrite")
    assert (decision.action, decision.contact_id) == ("update", "8")
    # Other policies park two matches, as before.
    assert foc.decide(draft, foc.lookup_for(draft), [ruth, omar], "fill_blanks").action == "park"


def test_create_only_leaves_a_match_alone() -> None:
    draft = ContactDraft(email="ana@example.com", first_name="Ana")
    decision = foc.decide(
        draft, foc.lookup_for(draft), [contact(email="ana@example.com")], "create_only"
    )
    assert (decision.action, decision.contact_id) == ("unchanged", "1001")


# A create attempt that began at T0 and lost its answer 20 seconds later.
LOST = foc.CreateWindow(T0, T0 + timedelta(seconds=20))


def test_match_our_lost_create_made_is_adopted() -> None:
    draft = ContactDraft(email="Ana@Example.com", first_name="Ana", country_code="au")
    ours = contact(
        email="Ana@Example.com",
        first_name="Ana",
        country_code="AU",
        created_at="2026-11-23T12:00:01Z",
    )
    decision = foc.decide(draft, foc.lookup_for(draft), [ours], "fill_blanks", lost_create=LOST)
    assert (decision.action, decision.contact_id) == ("adopt", "1001")


def test_older_match_is_not_adopted_even_with_an_intent() -> None:
    draft = ContactDraft(email="ana@example.com", first_name="Ana")
    old = contact(email="ana@example.com", created_at="2025-01-01T00:00:00Z")
    decision = foc.decide(draft, foc.lookup_for(draft), [old], "fill_blanks", lost_create=LOST)
    assert decision.action == "update"


def test_a_match_made_after_the_attempt_is_not_adopted_even_with_our_fields() -> None:
    # Staff typed the same values an hour after the create's answer was lost.
    draft = ContactDraft(email="ana@example.com", first_name="Ana")
    later = contact(email="ana@example.com", first_name="Ana", created_at="2026-11-23T13:00:20Z")
    decision = foc.decide(draft, foc.lookup_for(draft), [later], "fill_blanks", lost_create=LOST)
    assert (decision.action, decision.contact_id) == ("unchanged", "1001")
    # An attempt that died without noting the loss ends at most ATTEMPT_LIMIT after it began.
    died = foc.CreateWindow(T0)
    assert not foc.made_by_create(draft, later, died)


def test_a_match_in_the_window_without_our_fields_is_not_adopted() -> None:
    draft = ContactDraft(
        email="ana@example.com",
        first_name="Ana",
        company_name="Lima Physio",
        phone_numbers=(PhoneNumber(number="0412 345 678"),),
    )
    staff = contact(email="ana@example.com", first_name="Ana", created_at="2026-11-23T12:00:05Z")
    decision = foc.decide(draft, foc.lookup_for(draft), [staff], "fill_blanks", lost_create=LOST)
    assert decision.action == "update"
    assert set(decision.changes) == {"company_name", "phone_numbers"}
    # The same fields as Cliniko returns them (a phone also carries its normalised form).
    ours = dict(
        staff,
        company_name="Lima Physio",
        phone_numbers=[
            {"number": "0412 345 678", "normalized_number": "+61412345678", "phone_type": "Mobile"}
        ],
    )
    assert foc.made_by_create(draft, ours, LOST)


def test_a_contact_in_the_window_with_more_numbers_or_another_kind_is_not_our_create() -> None:
    # Ours would hold the one number we sent, of the kind we sent: one with staff's landline
    # beside it, or with our number as a Home phone, is staff's, and adopted it would enter
    # the ledger the cleanup trusts as the intake's.
    draft = ContactDraft(
        email="ana@example.com",
        first_name="Ana",
        phone_numbers=(PhoneNumber(number="0412 345 678", phone_type="Mobile"),),
    )
    ours = contact(
        email="ana@example.com",
        first_name="Ana",
        created_at="2026-11-23T12:00:05Z",
        phone_numbers=[{"number": "0412 345 678", "phone_type": "Mobile"}],
    )
    assert foc.made_by_create(draft, ours, LOST)
    more = dict(
        ours,
        phone_numbers=[*ours["phone_numbers"], {"number": "(03) 9812 3456", "phone_type": "Home"}],
    )
    other_kind = dict(ours, phone_numbers=[{"number": "0412 345 678", "phone_type": "Home"}])
    for staffs in (more, other_kind):
        assert not foc.made_by_create(draft, staffs, LOST)
        decision = foc.decide(
            draft, foc.lookup_for(draft), [staffs], "fill_blanks", lost_create=LOST
        )
        assert decision.action != "adopt"


def test_recovery_without_identity_compares_fields_in_the_window() -> None:
    draft = ContactDraft(company_name="Acme Health Fund", type_code=2)
    ours = contact(
        "7", company_name="Acme Health Fund", type_code=2, created_at="2026-11-23T12:00:02Z"
    )
    before = contact(
        "6", company_name="Acme Health Fund", type_code=2, created_at="2026-11-23T11:00:00Z"
    )
    other = contact("8", company_name="Other Fund", type_code=2, created_at="2026-11-23T12:00:03Z")
    decision = foc.decide_recovery(draft, [before, ours, other], LOST)
    assert (decision.action, decision.contact_id) == ("adopt", "7")
    assert foc.decide_recovery(draft, [before, other], LOST).action == "create"
    twin = dict(ours, id="9")
    assert foc.decide_recovery(draft, [ours, twin], LOST).reason == "ambiguous_recovery"


def test_clock_skew_is_tolerated_on_both_sides() -> None:
    assert LOST.contains(T0 - timedelta(seconds=90))
    assert not LOST.contains(T0 - timedelta(minutes=5))
    assert LOST.contains(T0 + timedelta(seconds=20 + 90))
    assert not LOST.contains(T0 + timedelta(minutes=5))


def test_an_attempt_that_died_unnoted_spans_the_longest_invocation() -> None:
    # No lost_at (the invocation was killed): Cliniko may have saved the create at any time
    # up to the 15 minutes a Lambda invocation can last.
    died = foc.CreateWindow(T0)
    assert died.contains(T0 + timedelta(minutes=14))
    assert not died.contains(T0 + timedelta(minutes=18))


def test_present_fields_are_names_only() -> None:
    draft = ContactDraft(email="ana@example.com", phone_numbers=(PhoneNumber(number="1"),))
    assert foc.present_fields(draft) == ["email", "phone_numbers"]


def test_overwrite_keeps_the_phone_numbers_of_other_kinds() -> None:
    draft = ContactDraft(
        email="ana@example.com",
        first_name="Ana",
        phone_numbers=(PhoneNumber(number="02 9999 9999", phone_type="Work"),),
    )
    staff = contact(
        email="ana@example.com",
        first_name="Ana",
        phone_numbers=[
            {"number": "02 9999 9999", "phone_type": "Work"},
            {"number": "02 9999 0000", "phone_type": "Fax"},
        ],
    )
    # The same work number sent again: nothing to change, the fax stays.
    assert foc.plan_update(draft, staff, "overwrite") == {}
    # Another work number replaces Cliniko's work number; the fax goes with it.
    moved = ContactDraft(
        email="ana@example.com",
        first_name="Ana",
        phone_numbers=(PhoneNumber(number="02 8888 8888", phone_type="Work"),),
    )
    assert foc.plan_update(moved, staff, "overwrite") == {
        "phone_numbers": [
            {"number": "02 8888 8888", "phone_type": "Work"},
            {"number": "02 9999 0000", "phone_type": "Fax"},
        ]
    }


def test_overwrite_only_fills_blanks_with_what_the_person_did_not_answer() -> None:
    draft = ContactDraft(email="ana@example.com", first_name="Ana", type_code=2, notes="Form:")
    staff = contact(email="ana@example.com", first_name="Ana", type_code=1, notes="Staff's")
    unanswered = ("notes", "type_code")
    assert foc.plan_update(draft, staff, "overwrite", unanswered) == {}
    blank = contact(email="ana@example.com", first_name="Ana", type_code=None, notes="")
    assert foc.plan_update(draft, blank, "overwrite", unanswered) == {
        "type_code": 2,
        "notes": "Form:",
    }


@pytest.mark.parametrize("policy", ["fill_blanks", "overwrite"])
def test_a_lost_create_s_contact_corrected_since_is_parked_not_updated(policy) -> None:
    draft = ContactDraft(
        email="ana@example.com",
        first_name="Ana",
        last_name="Lima",
        phone_numbers=(PhoneNumber(number="0412 345 678"),),
    )
    # Made 1 s into the window; reception corrected its phone while the message waited.
    made = contact(
        email="ana@example.com",
        first_name="Ana",
        last_name="Lima",
        phone_numbers=[{"number": "0412 345 679", "phone_type": "Mobile"}],
        created_at=(T0 + timedelta(seconds=1)).isoformat(),
        updated_at=(T0 + timedelta(minutes=5)).isoformat(),
    )
    decision = foc.decide(draft, foc.lookup_for(draft), [made], policy, lost_create=LOST)
    # Before: unchanged, or under overwrite the mistyped phone put back over the correction,
    # and either way the contact this intake made never entered the ledger.
    assert (decision.action, decision.reason) == ("park", "ambiguous_recovery")
