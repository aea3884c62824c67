"""Keys that recognise a person without holding their details (the erasure's pepper HMAC)."""

from __future__ import annotations

import hashlib
import hmac


def email_hash(pepper: str, email: str) -> str:
    """HMAC-SHA256 of the lower-cased email: lets the trail match repeats without the email."""
    return hmac.new(pepper.encode(), email.strip().lower().encode(), hashlib.sha256).hexdigest()
