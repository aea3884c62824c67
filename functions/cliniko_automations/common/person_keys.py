"""Keys that recognise a person without holding their details (the erasure's pepper HMAC)."""

from __future__ import annotations

import hashlib
import hmac
import re

# Unicode's format characters (category Cf, as of Unicode 15.1, Python 3.13's) as one class:
# `unicodedata.category(c) == "Cf"` without loading unicodedata, a shared library whose
# loading cost every cold start that cleans an email some 10 million instructions. The tests
# hold it to unicodedata's own set.
FORMAT_CHARACTERS = re.compile(
    "[\u00ad\u0600-\u0605\u061c\u06dd\u070f\u0890-\u0891\u08e2\u180e\u200b-\u200f"
    "\u202a-\u202e\u2060-\u2064\u2066-\u206f\ufeff\ufff9-\ufffb\U000110bd\U000110cd"
    "\U00013430-\U0001343f\U0001bca0-\U0001bca3\U0001d173-\U0001d17a\U000e0001"
    "\U000e0020-\U000e007f]"
)


def clean_email(email: str) -> str:
    """`email` without invisible format characters (Unicode category Cf) or surrounding space.

    A zero-width space, a byte-order mark, a direction mark or a soft hyphen pasted along with
    an address is invisible to the person and to staff but makes another string: kept, the
    worker's lookup would miss the existing contact (and create a second one) and an
    erasure's hash would miss the stored submission. Every email the intake takes and every
    email an erasure names goes through here, so both hash the same address.
    """
    return FORMAT_CHARACTERS.sub("", email).strip()


def email_hash(pepper: str, email: str) -> str:
    """HMAC-SHA256 of the cleaned, lower-cased email: lets the trail match repeats without
    the email."""
    key = clean_email(email).lower()
    return hmac.new(pepper.encode(), key.encode(), hashlib.sha256).hexdigest()
