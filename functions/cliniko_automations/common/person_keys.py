"""Keys that recognise a person without holding their details (the erasure's pepper HMAC)."""

from __future__ import annotations

import hashlib
import hmac
import unicodedata


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
