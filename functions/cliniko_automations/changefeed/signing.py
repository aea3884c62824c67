"""Standard Webhooks signatures (https://www.standardwebhooks.com): what a receiver checks.

    webhook-id         the message id (the same on every retry: receivers dedupe on it)
    webhook-timestamp  Unix seconds when it was signed
    webhook-signature  "v1," + base64(HMAC-SHA256(key, "{id}.{timestamp}.{body}"))

The secret is "whsec_" + base64 of the key bytes, as the specification's libraries expect.
While a subscriber's secret is rotated it may hold two, the new one first, separated by a
space: each delivery is then signed with both ("v1,<new> v1,<old>"), and a receiver holding
either accepts it, so the receiver is switched to the new one without refusing a delivery.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
from collections.abc import Callable, Sequence

from cliniko_automations.common.secret_text import trimmed
from cliniko_automations.common.secrets import SecretMisconfigured

SECRET_PREFIX = "whsec_"  # noqa: S105 - the format's prefix, not a secret
MIN_KEY_BYTES = 24
# The new key and the old one, while a secret is rotated.
MAX_KEYS = 2


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


def signing_keys(secret: str) -> tuple[bytes, ...]:
    """The keys of a secret: one, or while it is rotated two (the new one first), separated
    by whitespace."""
    secrets = trimmed(secret).split()
    if not 1 <= len(secrets) <= MAX_KEYS:
        raise BadSigningSecret(
            "a webhook secret holds one key ('whsec_' followed by base64), or two separated by "
            "a space while it is rotated"
        )
    return tuple(signing_key(text) for text in secrets)


def keys_in_secret(read_secret: Callable[[str], str], secret: str) -> tuple[bytes, ...]:
    """The keys of a subscriber's secret `secret`; a value that is no such key is an
    operator's mistake, named (never quoted) as a secret to fix, as a missing secret is."""
    try:
        return signing_keys(read_secret(secret))
    except BadSigningSecret as error:
        raise SecretMisconfigured(f"secret {secret!r}: {error}", name=secret) from None


def sign(keys: Sequence[bytes], message_id: str, timestamp: int, body: str) -> str:
    """The `webhook-signature` header value for `body` (the exact text sent): a signature
    with each key, separated by a space as the specification lists them."""
    signed = f"{message_id}.{timestamp}.{body}".encode()
    return " ".join(
        "v1," + base64.b64encode(hmac.new(key, signed, hashlib.sha256).digest()).decode("ascii")
        for key in keys
    )
