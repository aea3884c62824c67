"""Standard Webhooks signatures (https://www.standardwebhooks.com): what a receiver checks.

    webhook-id         the message id (the same on every retry: receivers dedupe on it)
    webhook-timestamp  Unix seconds when it was signed
    webhook-signature  "v1," + base64(HMAC-SHA256(key, "{id}.{timestamp}.{body}"))

The secret is "whsec_" + base64 of the key bytes, as the specification's libraries expect.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
from collections.abc import Callable

from cliniko_automations.common.secret_text import trimmed
from cliniko_automations.common.secrets import SecretMisconfigured

SECRET_PREFIX = "whsec_"  # noqa: S105 - the format's prefix, not a secret
MIN_KEY_BYTES = 24


class BadSigningSecret(ValueError):
    """The secret is not "whsec_" + base64 of a long enough key (the value is never quoted)."""


def signing_key(secret: str) -> bytes:
    text = trimmed(secret)
    if text.startswith(SECRET_PREFIX):
        text = text[len(SECRET_PREFIX) :]
    try:
        key = base64.b64decode(text, validate=True)
    except (binascii.Error, ValueError):
        raise BadSigningSecret("a webhook secret is 'whsec_' followed by base64") from None
    if len(key) < MIN_KEY_BYTES:
        raise BadSigningSecret(f"a webhook secret's key must have at least {MIN_KEY_BYTES} bytes")
    return key


def key_in_secret(read_secret: Callable[[str], str], secret: str) -> bytes:
    """The key of a subscriber's secret `secret`; a value that is no such key is an operator's
    mistake, named (never quoted) as a secret to fix, as a missing secret is."""
    try:
        return signing_key(read_secret(secret))
    except BadSigningSecret as error:
        raise SecretMisconfigured(f"secret {secret!r}: {error}", name=secret) from None


def sign(key: bytes, message_id: str, timestamp: int, body: str) -> str:
    """The `webhook-signature` header value for `body` (the exact text sent)."""
    signed = f"{message_id}.{timestamp}.{body}".encode()
    digest = hmac.new(key, signed, hashlib.sha256).digest()
    return "v1," + base64.b64encode(digest).decode("ascii")
