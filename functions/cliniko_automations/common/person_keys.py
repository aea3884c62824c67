"""Keys that recognise a person without holding their details (the erasure's pepper HMAC)."""

from __future__ import annotations

import hashlib
import hmac
import re
import unicodedata
from collections.abc import Iterable
from dataclasses import dataclass


def clean_email(email: str) -> str:
    """`email` without invisible format characters (Unicode category Cf) or surrounding space.

    A zero-width space, a byte-order mark, a direction mark or a soft hyphen pasted along with
    an address is invisible to the person and to staff but makes another string: kept, the
    worker's lookup would miss the existing contact (and create a second one) and an
    erasure's hash would miss the stored submission. Every email the intake takes and every
    email an erasure names goes through here, so both hash the same address.
    """
    return without_format_characters(email).strip()


def without_format_characters(text: str) -> str:
    """`text` without the invisible format characters (Unicode category Cf) in it."""
    return "".join(char for char in text if unicodedata.category(char) != "Cf")


def email_hash(pepper: str, email: str) -> str:
    """HMAC-SHA256 of the cleaned, lower-cased email: lets the trail match repeats without
    the email."""
    key = clean_email(email).lower()
    return hmac.new(pepper.encode(), key.encode(), hashlib.sha256).hexdigest()


# Digit strings shorter than this never match by suffix (too many false positives).
MIN_SUFFIX_DIGITS = 8


def fold_name(value: str | None) -> str:
    """A name as the intake compares names: spaces collapsed, case folded."""
    return " ".join((value or "").split()).casefold()


def phone_digits(number: str | None) -> str:
    """A phone number reduced to comparable digits: no punctuation, no international prefix,
    no national trunk zero."""
    digits = re.sub(r"\D", "", number or "")
    if digits.startswith("00"):
        digits = digits[2:]
    return digits.lstrip("0")


@dataclass(frozen=True)
class PersonKeys:
    """The keyed hashes that find a person's stored submissions: their email's, and, for a
    person with a first and last name and a phone, their name's and one per phone of name and
    phone together (the identity the worker matches an email-less submission on)."""

    email_hmac: str | None = None
    name_hmac: str | None = None
    name_phone: tuple[str, ...] = ()

    @property
    def tombstone_keys(self) -> tuple[str, ...]:
        """Every key an erasure's tombstone may be kept under."""
        return (*((self.email_hmac,) if self.email_hmac else ()), *self.name_phone)


def person_keys(
    pepper: str,
    email: str | None,
    first_name: str | None,
    last_name: str | None,
    phone_numbers: Iterable[str | None],
) -> PersonKeys:
    """The keys of one person's details (a submission's, or a Cliniko contact's).

    One name-and-phone key per phone, made of the name and the phone's last MIN_SUFFIX_DIGITS
    digits: two numbers the worker takes for the same (`find_or_create.phones_match`: equal,
    or one a country-code prefix longer) share them.
    """
    email_hmac = email_hash(pepper, email) if email and clean_email(email) else None
    first, last = fold_name(first_name), fold_name(last_name)
    if not first or not last:
        return PersonKeys(email_hmac)
    suffixes = {phone_digits(number)[-MIN_SUFFIX_DIGITS:] for number in phone_numbers}
    name_phone = tuple(
        sorted(_keyed(pepper, f"name-phone\0{first}\0{last}\0{s}") for s in suffixes if s)
    )
    if not name_phone:
        return PersonKeys(email_hmac)
    return PersonKeys(email_hmac, _keyed(pepper, f"name\0{first}\0{last}"), name_phone)


def _keyed(pepper: str, material: str) -> str:
    return hmac.new(pepper.encode(), material.encode(), hashlib.sha256).hexdigest()
