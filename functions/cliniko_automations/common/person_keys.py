"""Keys that recognise a person without holding their details (the erasure's pepper HMAC)."""

from __future__ import annotations

import hashlib
import hmac
import re
import unicodedata
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from typing import Any

from cliniko_automations.common.json_input import without_lone_surrogates


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
# Two numbers are one when one is the other with at most this many digits (a country code)
# in front.
MAX_PREFIX_DIGITS = 3


def text_of(value: object) -> str:
    """A value given as text, or "" for any other: a field of another JSON type (an answer off
    Cliniko's spec) holds no text to compare or key."""
    # A lone surrogate (a JSON escape Cliniko's answer may carry) is no text UTF-8 can hold, so
    # it could not be hashed: replaced as the intake's loader replaces it in what it stores.
    return without_lone_surrogates(value) if isinstance(value, str) else ""


def compared_email(value: object) -> str:
    """An email as the intake and the erasure compare one: cleaned, lower-cased (Cliniko's
    email filter compares the lower-cased stored email); "" for a value that is no text."""
    return clean_email(text_of(value)).lower()


def phone_entries(value: object) -> list[Mapping[str, Any]]:
    """A contact's phone numbers as Cliniko lists them; a value off the spec (an object, an
    entry that is not one) holds none."""
    return [p for p in value if isinstance(p, Mapping)] if isinstance(value, list) else []


# The apostrophes keyboards type for "'" ("O’Brien" from a phone, "O'Brien" from staff's desk).
APOSTROPHES = "'\u2018\u2019\u02bc\u2032"
TYPED_APOSTROPHES = str.maketrans(dict.fromkeys(APOSTROPHES[1:], "'"))


# Turkish spells "I" lower-cased as "ı" and "i" upper-cased as "İ"; casefold, which is not
# Turkish, makes "IŞIK" "işik" and "İlker" "i̇lker" (an "i" and a combining dot).
TURKISH_I = str.maketrans({"ı": "i"})


def fold_name(value: object) -> str:
    """A name as the intake compares and keys names: in its compatibility form, without
    invisible format characters, spaces collapsed, case folded, any apostrophe as "'" (a
    value that is not text, as an answer off Cliniko's spec may hold, is no name).

    One person's name reaches here in several spellings of the same letters: "José" composed
    from a desk or as "e" and an accent from some phones, "Ｊｏｈｎ" in full width from an
    IME, a zero-width space staff pasted with it, "IŞIK" typed in capitals for "Işık". Folded
    apart, the worker's match missed staff's contact and made a second one, and an erasure
    read from staff's contact missed the stored submission its keys were made from (reported
    erased, the body kept, a replay making the person again)."""
    if not isinstance(value, str):
        return ""
    if not normalisable(value):
        return _fold_before_unicode(value)
    compatible = without_format_characters(unicodedata.normalize("NFKC", value))
    # Again after casefold, which may leave a letter and its accent apart ("İ" → "i̇").
    folded = unicodedata.normalize("NFKC", _fold_before_unicode(compatible))
    return folded.replace("i\u0307", "i").translate(TURKISH_I)


def _fold_before_unicode(value: object) -> str:
    """`fold_name` without its compatibility form, format characters and Turkish "i": how
    names were keyed before those were folded (2026-12-06), which bodies and tombstones of
    then may still be kept under."""
    return _fold_as_typed(value.translate(TYPED_APOSTROPHES)) if isinstance(value, str) else ""


def _fold_as_typed(value: object) -> str:
    """`_fold_before_unicode` with each apostrophe as typed: how names were keyed before the
    apostrophes were folded (2026-12-04), which bodies and tombstones of then may still be
    kept under."""
    return " ".join(value.split()).casefold() if isinstance(value, str) else ""


def _fold_before_unicode_decomposed(value: object) -> str:
    return _fold_before_unicode(decomposed(value) if isinstance(value, str) else value)


def _fold_as_typed_decomposed(value: object) -> str:
    return _fold_as_typed(decomposed(value) if isinstance(value, str) else value)


# The folds names were keyed by before `fold_name`, newest first, each also of the name
# decomposed: before the intake composed answers (2026-12-06), it stored, and the worker
# wrote to Cliniko, a phone's "José" as "e" and an accent, and the erasure's tombstones of
# such a contact were keyed so. Composed since, a provider's redelivery of that submission
# keys the same name otherwise: unmet, the tombstones let the erased person be made again.
EARLIER_FOLDS: tuple[Callable[[object], str], ...] = (
    _fold_before_unicode,
    _fold_before_unicode_decomposed,
    _fold_as_typed,
    _fold_as_typed_decomposed,
)


# Normalising takes time growing with the square of a run of combining marks (CPython orders
# each run by insertion; a character may decompose into several, U+0F73 into two): a form
# field of 40,000 of them took 14 s, past the intake's timeout, one request from a hostile
# sender. A longer text than this, longer than any field Cliniko keeps whole (255), is
# compared and keyed as it came; 500 such characters take 3 ms.
MAX_NORMALISED_LENGTH = 500


def normalisable(text: str) -> bool:
    """Whether `text` is normalised before it is compared, keyed or sent: not ASCII (which
    every form leaves as it is), and at most MAX_NORMALISED_LENGTH characters."""
    return not text.isascii() and len(text) <= MAX_NORMALISED_LENGTH


def composed(text: str) -> str:
    """`text` with each letter and its accents composed (NFC), the form most keyboards type
    and Cliniko's filters compare as typed. Only text holding combining marks or Hangul's
    conjoining letters is composed: NFC also maps a CJK compatibility ideograph (U+F929) to
    its unified one (U+6717), which a Japanese or Korean name may be written with on purpose."""
    if not normalisable(text) or not any(_composes(char) for char in text):
        return text
    return unicodedata.normalize("NFC", text)


def _composes(char: str) -> bool:
    return bool(unicodedata.combining(char)) or "\u1100" <= char <= "\u11ff"


def decomposed(text: str) -> str:
    """`text` with its letters and accents apart (NFD), where that is other than `text` by a
    combining mark (Hangul's syllables, which NFD takes apart into letters, are kept)."""
    if not normalisable(text):
        return text
    apart = unicodedata.normalize("NFD", text)
    return apart if any(unicodedata.combining(char) for char in apart) else text


def phone_digits(number: object) -> str:
    """A phone number reduced to comparable digits: no punctuation, no international prefix,
    no national trunk zero (a value that is not text is no number). Digits of any script are
    read as the ASCII ones they are: a phone's Arabic keyboard types "٠٤١٢", a Japanese IME
    "０４１２", and kept as typed they were another number than the "0412" staff typed, so a
    submission without an email made that person a second contact. An extension dialled
    after the number ("ext. 12", "x12", "#12") is left out: a practice's number with one is
    the line staff typed without it, and its digits joined to the number made another one
    (a second contact for a submission without an email)."""
    digits = _digits_of(EXTENSION.sub("", number) if isinstance(number, str) else number)
    if not digits.isascii():
        digits = "".join(str(unicodedata.decimal(digit)) for digit in digits)
    return _without_prefixes(digits)


# After a digit: "ext", "extension", "x" or "#", then the extension's digits, to the end.
EXTENSION = re.compile(r"(?<=\d)[\s.,;:]*(?:ext(?:ension)?|x|#)[\s.:]*\d+\s*$", re.IGNORECASE)


def _digits_as_typed(number: object) -> str:
    """`phone_digits` with each digit in its own script and an extension's digits kept: how
    numbers were keyed before other scripts' digits were read as ASCII (2026-12-05) and
    extensions left out (2026-12-06), which bodies and tombstones of then may still be kept
    under."""
    return _without_prefixes(_digits_of(number))


def _digits_of(number: object) -> str:
    # `\D` is every character but a Unicode decimal digit, of whatever script.
    return re.sub(r"\D", "", number) if isinstance(number, str) else ""


def _without_prefixes(digits: str) -> str:
    # Every leading zero: a national trunk "0" and an international "00" alike.
    return digits.lstrip("0")


@dataclass(frozen=True)
class PersonKeys:
    """The keyed hashes that find a person's stored submissions: their email's, and, for a
    submission without an email that has a first and last name and a phone (the identity the
    worker matches it on), their name's and the name-and-phone keys (`submission_keys`,
    `contact_keys`: a submission's and a contact's meet where the worker's do)."""

    email_hmac: str | None = None
    name_hmac: str | None = None
    name_phone: tuple[str, ...] = ()

    @property
    def tombstone_keys(self) -> tuple[str, ...]:
        """Every key an erasure's tombstone may be kept under."""
        return (*((self.email_hmac,) if self.email_hmac else ()), *self.name_phone)


def submission_keys(
    pepper: str,
    email: str | None,
    first_name: str | None,
    last_name: str | None,
    phone_numbers: Iterable[str | None],
) -> PersonKeys:
    """The keys a submission is stored under: its email's when it has one (the worker knows it
    by its email alone, so a namesake with a shared phone and another email is someone
    else); else its name's and, per phone, the name with the number and with each shorter
    number it is the same as (a country code dropped), plus the name with the number as the
    shorter one of a pair."""
    if email and clean_email(email):
        return PersonKeys(email_hash(pepper, email))
    phones = list(phone_numbers)
    keys = _name_keys(pepper, first_name, last_name, phones, stored=True)
    # Also the keys of the name as it was folded before (the same keys for most names): a
    # tombstone written under them then is found.
    earlier = (
        key
        for fold in EARLIER_FOLDS
        for key in _name_keys(
            pepper, first_name, last_name, phones, stored=True, fold=fold
        ).name_phone
    )
    return PersonKeys(None, keys.name_hmac, tuple(sorted({*keys.name_phone, *earlier})))


def contact_keys(
    pepper: str,
    email: str | None,
    first_name: str | None,
    last_name: str | None,
    phone_numbers: Iterable[str | None],
) -> PersonKeys:
    """The keys that find a person's submissions (a Cliniko contact's, or a request's email):
    the email's, and per phone the name with the number and with each shorter number it is
    the same as, tagged as the shorter one. One of them is among a submission's keys exactly
    when the worker would match the two (`find_or_create.phones_match`: the numbers equal, or
    one at least MIN_SUFFIX_DIGITS long and the other that with 1-MAX_PREFIX_DIGITS digits in
    front)."""
    names = _name_keys(pepper, first_name, last_name, phone_numbers, stored=False)
    email_hmac = email_hash(pepper, email) if email and clean_email(email) else None
    return PersonKeys(email_hmac, names.name_hmac, names.name_phone)


def earlier_contact_keys(
    first_name: str | None,
    last_name: str | None,
    phone_numbers: Iterable[str | None],
    *,
    pepper: str,
) -> tuple[PersonKeys, ...]:
    """`contact_keys`' name keys with the name folded as it was before (EARLIER_FOLDS): the
    bodies stored then are indexed under them. Only the folds whose keys differ from the
    current one's and from each other's (none for most names)."""
    phones = list(phone_numbers)
    seen = {_name_keys(pepper, first_name, last_name, phones, stored=False).name_hmac}
    found = []
    for fold in EARLIER_FOLDS:
        keys = _name_keys(pepper, first_name, last_name, phones, stored=False, fold=fold)
        if keys.name_hmac not in seen:
            seen.add(keys.name_hmac)
            found.append(keys)
    return tuple(found)


def _name_keys(
    pepper: str,
    first_name: str | None,
    last_name: str | None,
    phone_numbers: Iterable[str | None],
    *,
    stored: bool,
    fold: Callable[[object], str] = fold_name,
) -> PersonKeys:
    first, last = fold(first_name), fold(last_name)
    if not first or not last:
        return PersonKeys()
    numbers = list(phone_numbers)
    keys: set[str] = set()
    # With each number's digits as typed too (the same for ASCII ones): what a body or a
    # tombstone of before other scripts' digits were read as ASCII is keyed under.
    as_typed = {_digits_as_typed(number) for number in numbers}
    for digits in {phone_digits(number) for number in numbers} | as_typed:
        if not digits:
            continue
        keys.add(_keyed(pepper, f"number\0{first}\0{last}\0{digits}"))
        shorter = _shorter_numbers(digits)
        if stored:
            keys.update(_keyed(pepper, f"number\0{first}\0{last}\0{s}") for s in shorter)
            keys.add(_keyed(pepper, f"shorter\0{first}\0{last}\0{digits}"))
        else:
            keys.update(_keyed(pepper, f"shorter\0{first}\0{last}\0{s}") for s in shorter)
    if not keys:
        return PersonKeys()
    return PersonKeys(None, _keyed(pepper, f"name\0{first}\0{last}"), tuple(sorted(keys)))


def _shorter_numbers(digits: str) -> list[str]:
    """The numbers `digits` is the same as with its first 1-MAX_PREFIX_DIGITS digits (a
    country code) dropped, each at least MIN_SUFFIX_DIGITS long."""
    return [
        digits[drop:]
        for drop in range(1, MAX_PREFIX_DIGITS + 1)
        if len(digits) - drop >= MIN_SUFFIX_DIGITS
    ]


def _keyed(pepper: str, material: str) -> str:
    return hmac.new(pepper.encode(), material.encode(), hashlib.sha256).hexdigest()
