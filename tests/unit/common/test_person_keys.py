"""The email as the person meant it: every format character out, every visible one kept. The
keys an erasure finds a person's submissions by: the same for every spelling the worker takes
for the same person, other for anyone else."""

from __future__ import annotations

import hashlib
import hmac
import sys
import unicodedata

import pytest
from cliniko_automations.common.person_keys import (
    MAX_NORMALISED_LENGTH,
    PersonKeys,
    clean_email,
    composed,
    contact_keys,
    decomposed,
    earlier_contact_keys,
    fold_name,
    submission_keys,
)
from cliniko_automations.intake_worker.find_or_create import phone_digits, phones_match

PEPPER = "pepper-for-tests"


def test_every_format_character_is_taken_out_of_an_email():
    invisible = "".join(
        chr(code) for code in range(sys.maxunicode + 1) if unicodedata.category(chr(code)) == "Cf"
    )
    assert len(invisible) > 150
    assert clean_email(f" a{invisible}@b.org{invisible} ") == "a@b.org"


def test_an_address_keeps_every_visible_character():
    typed = "\u200b Ann.Lee+café@exam\u00adple.org\ufeff "
    assert clean_email(typed) == "Ann.Lee+café@example.org"


@pytest.mark.parametrize("apostrophe", ["\u2018", "\u2019", "\u02bc", "\u2032"])
def test_a_name_with_a_typed_apostrophe_has_the_keys_of_the_name_with_a_straight_one(apostrophe):
    # The worker finds "O'Brien" for "O’Brien": an erasure of one finds the other's submissions.
    stored = submission_keys(PEPPER, None, "Sean", f"O{apostrophe}Brien", ["0412 345 678"])
    probe = contact_keys(PEPPER, None, "Sean", "O'Brien", ["0412 345 678"])
    assert stored.name_hmac == probe.name_hmac
    assert set(stored.name_phone) & set(probe.name_phone)


# One person's name as a form and as staff spell it: composed or as a letter and its accent,
# full width from an IME, with a zero-width space pasted in, Turkish in capitals.
SPELLINGS = [
    ("José", "Núñez", unicodedata.normalize("NFD", "José"), unicodedata.normalize("NFD", "Núñez")),
    ("John", "Smith", "Ｊｏｈｎ", "Ｓｍｉｔｈ"),
    ("Ana", "Lima\u200b", "Ana", "Lima"),
    ("Ayşe", "IŞIK", "Ayşe", "Işık"),
    ("İLKER", "Demir", "ilker", "Demir"),
]


@pytest.mark.parametrize(("staff_first", "staff_last", "form_first", "form_last"), SPELLINGS)
def test_one_name_in_two_spellings_of_its_letters_has_one_set_of_keys(
    staff_first: str, staff_last: str, form_first: str, form_last: str
) -> None:
    # The worker matches staff's contact to the form's submission, and an erasure read from
    # staff's contact finds the submission: its body is purged, and a replay of it is dropped.
    assert fold_name(staff_first) == fold_name(form_first)
    assert fold_name(staff_last) == fold_name(form_last)
    stored = submission_keys(PEPPER, None, form_first, form_last, ["+61 412 987 654"])
    probe = contact_keys(PEPPER, None, staff_first, staff_last, ["0412 987 654"])
    assert stored.name_hmac == probe.name_hmac
    assert set(stored.name_phone) & set(probe.name_phone)


@pytest.mark.parametrize(
    ("one", "other"), [("Ana", "Ama"), ("Müller", "Muller"), ("Lee", "Li"), ("Işık", "Ilık")]
)
def test_two_names_stay_two_names(one: str, other: str) -> None:
    assert fold_name(one) != fold_name(other)


def test_a_name_keeps_the_keys_it_had_before_its_letters_were_folded() -> None:
    # Bodies and tombstones of before 2026-12-06 are keyed by the name as typed, case folded:
    # a submission still meets such a tombstone, and an erasure of a contact spelt so still
    # finds such a body.
    last = unicodedata.normalize("NFD", "Núñez")
    before = hmac.new(
        PEPPER.encode(),
        f"number\x00josé\x00{last.casefold()}\x00412987654".encode(),
        hashlib.sha256,
    ).hexdigest()
    assert before in submission_keys(PEPPER, None, "José", last, ["0412 987 654"]).name_phone
    earlier = earlier_contact_keys("José", last, ["0412 987 654"], pepper=PEPPER)
    assert any(before in keys.name_phone for keys in earlier)
    assert earlier_contact_keys("Ana", "Lima", ["0412 987 654"], pepper=PEPPER) == ()
    # And of before 2026-12-04, with the apostrophes as typed.
    typed = hmac.new(
        PEPPER.encode(), "number\x00mary\x00o’brien\x00412987654".encode(), hashlib.sha256
    ).hexdigest()
    assert typed in submission_keys(PEPPER, None, "Mary", "O’Brien", ["0412 987 654"]).name_phone
    as_typed = earlier_contact_keys("Mary", "O’Brien", ["0412 987 654"], pepper=PEPPER)
    assert any(typed in keys.name_phone for keys in as_typed)


def test_text_longer_than_any_field_cliniko_keeps_is_left_as_it_came():
    # Normalising takes time growing with the square of a run of combining marks, and a
    # character may decompose into several (U+0F73 into two): 40,000 of them took 14 s at the
    # intake, past its timeout. Past MAX_NORMALISED_LENGTH, text is compared and keyed as sent.
    hostile = "a" + "\u0f73" * 40_000
    assert composed(hostile) == hostile and fold_name(hostile) == hostile.casefold()
    assert decomposed(hostile) == hostile
    longest = "Jose\u0301" + "a" * (MAX_NORMALISED_LENGTH - 5)
    assert composed(longest) == "José" + "a" * (MAX_NORMALISED_LENGTH - 5)
    assert composed(longest + "a") == longest + "a"


def test_only_text_with_accents_apart_is_composed_or_decomposed():
    # NFC maps a CJK compatibility ideograph to its unified one, which a name may be written
    # with on purpose; NFD takes Hangul's syllables apart into letters, a spelling nobody types.
    assert composed("Jose\u0301") == "José" and decomposed("José") == "Jose\u0301"
    assert composed("\uf929") == "\uf929" and composed("\u2126") == "\u2126"
    assert composed("\u1106\u1175\u11ab") == "민"  # a Mac's conjoining letters, composed
    assert decomposed("민준") == "민준" and decomposed("Ana") == "Ana"


def test_a_name_keeps_the_keys_it_had_when_the_intake_kept_it_decomposed() -> None:
    # Before the intake composed answers, a phone's decomposed "José Núñez" was stored so, and
    # the worker wrote it to Cliniko so; an erasure of that contact tombstoned the old fold of
    # the decomposed name. A provider's redelivery, composed now, still meets the tombstone,
    # and an erasure of staff's composed contact still finds the body stored then.
    first, last = (unicodedata.normalize("NFD", name) for name in ("José", "Núñez"))
    then = hmac.new(
        PEPPER.encode(),
        f"number\x00{first.casefold()}\x00{last.casefold()}\x00412987654".encode(),
        hashlib.sha256,
    ).hexdigest()
    assert then in submission_keys(PEPPER, None, "José", "Núñez", ["0412 987 654"]).name_phone
    earlier = earlier_contact_keys("José", "Núñez", ["0412 987 654"], pepper=PEPPER)
    assert any(then in keys.name_phone for keys in earlier)


PHONES = [
    "+61 412 345 678",
    "0412 345 678",
    "(02) 1234 5678",
    "(03) 9123 4567",
    "+61 3 9123 4567",
    "(07) 9123 4567",
    "+44 7912 345 678",
    "0011 61 412 345 678",
    "0412 345 679",
    "123",
    "0123",
    "5678",
    "61412345678",
    "1 61412345678",
    "+64 21 555 0199",
    "(02) 1234 5678 ext. 12",
]


@pytest.mark.parametrize("theirs", PHONES)
@pytest.mark.parametrize("ours", PHONES)
def test_a_submission_and_a_contact_share_a_key_exactly_when_the_worker_matches_them(
    ours: str, theirs: str
) -> None:
    # Whatever the worker matches a submission to a contact by, an erasure finds it by; and
    # nothing else: "(03) 9123 4567" and "(07) 9123 4567" are two people's.
    stored = submission_keys(PEPPER, None, "Ana", "Lima", [ours])
    probe = contact_keys(PEPPER, None, " ANA ", "lima", [theirs])
    assert stored.name_hmac == probe.name_hmac
    shared = bool(set(stored.name_phone) & set(probe.name_phone))
    assert shared is phones_match(phone_digits(ours), phone_digits(theirs))


@pytest.mark.parametrize(
    "typed", ["٠٤١٢ ٣٤٥ ٦٧٨", "۰۴۱۲ ۳۴۵ ۶۷۸", "０４１２ ３４５ ６７８", "+６１ ४१२ ३४५ ६७८"]
)
def test_a_number_in_another_scripts_digits_has_the_keys_of_the_ascii_one(typed: str) -> None:
    # The worker finds staff's "+61 412 345 678" for it: an erasure of that contact finds the
    # submission, and one of a contact made with it before (keyed as typed) finds that too.
    assert phones_match(phone_digits(typed), phone_digits("+61 412 345 678"))
    stored = submission_keys(PEPPER, None, "Ana", "Lima", [typed])
    for theirs in ("+61 412 345 678", "0412 345 678", typed):
        probe = contact_keys(PEPPER, None, "Ana", "Lima", [theirs])
        assert set(stored.name_phone) & set(probe.name_phone), theirs
    other = contact_keys(PEPPER, None, "Ana", "Lima", ["0412 345 679"])
    assert not set(stored.name_phone) & set(other.name_phone)


def test_a_number_in_another_scripts_digits_keeps_the_keys_it_had_as_typed() -> None:
    # Bodies and tombstones of before 2026-12-05 are indexed under the digits as typed (the
    # HMAC of "number", the folded name and the digits, NUL-separated): an erasure still
    # finds them, and a submission still meets such a tombstone.
    typed = "０４１２ ３４５ ６７８"
    before = hmac.new(
        PEPPER.encode(), "number\0ana\0lima\0０４１２３４５６７８".encode(), hashlib.sha256
    ).hexdigest()
    assert before in submission_keys(PEPPER, None, "Ana", "Lima", [typed]).name_phone
    assert before in contact_keys(PEPPER, None, "Ana", "Lima", [typed]).name_phone


@pytest.mark.parametrize(
    "typed", ["(02) 9876 5432 ext. 12", "(02) 9876 5432 x12", "(02) 9876 5432, Extension: 12"]
)
def test_a_number_with_an_extension_is_the_line_without_it(typed: str) -> None:
    # A practice's number with the doctor's extension is the line staff typed without it.
    assert phone_digits(typed) == phone_digits("(02) 9876 5432")
    stored = submission_keys(PEPPER, None, "Ana", "Lima", [typed])
    probe = contact_keys(PEPPER, None, "Ana", "Lima", ["+61 2 9876 5432"])
    assert set(stored.name_phone) & set(probe.name_phone)
    # Keyed before 2026-12-06 with the extension's digits, as typed: still found.
    before = contact_keys(PEPPER, None, "Ana", "Lima", ["02 9876 5432 12"])
    assert set(stored.name_phone) & set(before.name_phone)
    # Another line is another number.
    assert phone_digits("(02) 9876 5433 ext. 12") != phone_digits(typed)


def test_a_number_shorter_than_eight_digits_is_not_taken_for_a_longer_ones_end() -> None:
    # "123 4567" ends too many numbers: taken for "+61 123 4567", the worker would update a
    # namesake's contact and an erasure reach the namesake's submissions. Eight digits may.
    for short, long, same in [
        ("123 4567", "+61 123 4567", False),
        ("1234 5678", "+61 1234 5678", True),
    ]:
        stored = submission_keys(PEPPER, None, "Ana", "Lima", [short])
        probe = contact_keys(PEPPER, None, "Ana", "Lima", [long])
        assert bool(set(stored.name_phone) & set(probe.name_phone)) is same
        assert phones_match(phone_digits(short), phone_digits(long)) is same


def test_a_submission_with_an_email_is_stored_under_its_email_alone() -> None:
    # The worker knows it by its email: a namesake sharing a landline, with another email, is
    # someone else, whose erasure must not reach it.
    keys = submission_keys(PEPPER, "Ana@Example.com", "Ana", "Lima", ["0412 345 678"])
    assert keys == PersonKeys(contact_keys(PEPPER, "ana@example.com", None, None, []).email_hmac)
    # A contact's keys hold both: its email finds the submissions with it, its name and phones
    # those without one.
    contact = contact_keys(PEPPER, "Ana@Example.com", "Ana", "Lima", ["0412 345 678"])
    assert contact.email_hmac == keys.email_hmac and contact.name_hmac and contact.name_phone
    assert contact.tombstone_keys == (contact.email_hmac, *contact.name_phone)


def test_a_name_and_phone_make_keys_only_together() -> None:
    # A namesake with another phone shares the name's key, not a name-and-phone one.
    ana = submission_keys(PEPPER, None, "Ana", "Lima", ["0412 345 678"])
    namesake = contact_keys(PEPPER, None, "Ana", "Lima", ["0499 999 999"])
    assert namesake.name_hmac == ana.name_hmac
    assert not set(namesake.name_phone) & set(ana.name_phone)
    # No first name, no last name, or no phone with a digit: no name keys.
    for first, last, phones in [
        ("Ana", "", ["0412 345 678"]),
        ("", "Lima", ["1"]),
        ("Ana", "Lima", ["n/a"]),
    ]:
        assert submission_keys(PEPPER, None, first, last, phones) == PersonKeys()
    # Hashes only: nothing of the person is in a key.
    assert all(len(key) == 64 and int(key, 16) >= 0 for key in ana.tombstone_keys)
