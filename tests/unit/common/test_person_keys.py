"""The email as the person meant it: every format character out, every visible one kept. The
keys an erasure finds a person's submissions by: the same for every spelling the worker takes
for the same person, other for anyone else."""

from __future__ import annotations

import sys
import unicodedata

import pytest
from cliniko_automations.common.person_keys import clean_email, person_keys
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


PHONES = [
    "+61 412 345 678",
    "0412 345 678",
    "(03) 9123 4567",
    "+61 3 9123 4567",
    "0011 61 412 345 678",
    "0412 345 679",
    "123",
    "0123",
    "5678",
    "61412345678",
    "+64 21 555 0199",
]


@pytest.mark.parametrize("left", PHONES)
@pytest.mark.parametrize("right", PHONES)
def test_numbers_the_worker_takes_for_one_share_a_key(left: str, right: str) -> None:
    # Whatever the worker matches a submission to a contact by, an erasure finds it by.
    ours = person_keys(PEPPER, None, "Ana", "Lima", [left]).name_phone
    theirs = person_keys(PEPPER, None, " ANA ", "lima", [right]).name_phone
    if phones_match(phone_digits(left), phone_digits(right)):
        assert ours == theirs


def test_a_name_and_phone_make_keys_only_together() -> None:
    keys = person_keys(
        PEPPER, "Ana@Example.com", "Ana", "Lima", ["0412 345 678", "+61 3 9123 4567"]
    )
    assert keys.email_hmac == person_keys(PEPPER, "ana@example.com", None, None, []).email_hmac
    assert keys.name_hmac and len(keys.name_phone) == 2
    assert keys.tombstone_keys == (keys.email_hmac, *keys.name_phone)
    # A namesake with another phone shares the name's key, not a name-and-phone one.
    namesake = person_keys(PEPPER, None, "Ana", "Lima", ["0499 999 999"])
    assert namesake.name_hmac == keys.name_hmac
    assert not set(namesake.name_phone) & set(keys.name_phone)
    # No name, no last name, or no phone with a digit: no name keys.
    for first, last, phones in [
        ("Ana", "", ["0412 345 678"]),
        ("", "Lima", ["1"]),
        ("Ana", "Lima", ["n/a"]),
    ]:
        assert person_keys(PEPPER, None, first, last, phones).tombstone_keys == ()
    # Hashes only: nothing of the person is in a key.
    assert all(len(key) == 64 and int(key, 16) >= 0 for key in keys.tombstone_keys)
