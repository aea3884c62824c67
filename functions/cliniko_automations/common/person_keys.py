"""Keys that recognise a person without holding their details (the erasure's pepper HMAC)."""

from __future__ import annotations

import hashlib
import hmac

# Unicode's format characters (category Cf, as of Unicode 15.1, Python 3.13's), as ranges of
# code points: `unicodedata.category(c) == "Cf"` without loading unicodedata (a shared library,
# some 10 million instructions at every cold start that cleans an email) or compiling a regex
# class of them (5 million). The tests hold it to unicodedata's own set.
FORMAT_RANGES = (
    (0x00AD, 0x00AD), (0x0600, 0x0605), (0x061C, 0x061C), (0x06DD, 0x06DD), (0x070F, 0x070F),
    (0x0890, 0x0891), (0x08E2, 0x08E2), (0x180E, 0x180E), (0x200B, 0x200F), (0x202A, 0x202E),
    (0x2060, 0x2064), (0x2066, 0x206F), (0xFEFF, 0xFEFF), (0xFFF9, 0xFFFB), (0x110BD, 0x110BD),
    (0x110CD, 0x110CD), (0x13430, 0x1343F), (0x1BCA0, 0x1BCA3), (0x1D173, 0x1D17A),
    (0xE0001, 0xE0001), (0xE0020, 0xE007F),
)  # fmt: skip
# str.translate's table: each of them deleted.
_WITHOUT_FORMAT = dict.fromkeys(c for low, high in FORMAT_RANGES for c in range(low, high + 1))


def clean_email(email: str) -> str:
    """`email` without invisible format characters (Unicode category Cf) or surrounding space.

    A zero-width space, a byte-order mark, a direction mark or a soft hyphen pasted along with
    an address is invisible to the person and to staff but makes another string: kept, the
    worker's lookup would miss the existing contact (and create a second one) and an
    erasure's hash would miss the stored submission. Every email the intake takes and every
    email an erasure names goes through here, so both hash the same address.
    """
    return email.translate(_WITHOUT_FORMAT).strip()


def email_hash(pepper: str, email: str) -> str:
    """HMAC-SHA256 of the cleaned, lower-cased email: lets the trail match repeats without
    the email."""
    key = clean_email(email).lower()
    return hmac.new(pepper.encode(), key.encode(), hashlib.sha256).hexdigest()
