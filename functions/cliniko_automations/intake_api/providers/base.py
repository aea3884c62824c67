"""What every provider adapter shares: the delivery it reads, what it returns, HMAC checks.

An adapter verifies a delivery on its raw bytes (before anything is parsed) and turns the
payload into flat answers keyed by the provider's stable field ids. Mapping those answers to
Cliniko fields is the config's business (mapping.py), not the adapter's.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any, Protocol

from cliniko_automations.common.json_input import JsonRefused, load_json
from cliniko_automations.intake_api.errors import BadSignature, MalformedBody

# Deliveries whose scheme carries a timestamp are refused outside this window.
REPLAY_WINDOW_SECONDS = 300
# Unix time in milliseconds has 13 digits until the year 2286; more is not a timestamp (and a
# few hundred digits would overflow the float the window check compares with).
MAX_TIMESTAMP_DIGITS = 15

# An answer after normalisation: text, number, yes/no, several choices, or a compound answer
# (Jotform's {"first": ..., "last": ...}).
Answer = str | int | float | bool | list[str] | dict[str, str] | None


@dataclass(frozen=True)
class Delivery:
    body: bytes
    headers: Mapping[str, str]  # names lower-cased
    query: Mapping[str, str] = field(default_factory=dict)
    content_type: str = ""  # the whole header: multipart needs its boundary parameter

    def header(self, name: str) -> str | None:
        return self.headers.get(name.lower())


@dataclass(frozen=True)
class Parsed:
    answers: dict[str, Answer]
    # The provider's own id for this submission; None when it has none (a content hash is used).
    submission_id: str | None = None
    # Deliveries to acknowledge without queueing (Typeform partial responses, other events).
    ignored: str | None = None
    # When the person submitted, by the provider's own clock, where the payload says so.
    submitted_at: datetime | None = None


class Adapter(Protocol):
    # Read-only members (properties): an adapter is a module, whose `verify` is a function or
    # None, and a settable protocol attribute would demand exactly the declared union.
    @property
    def content_types(self) -> frozenset[str]: ...

    # Raises BadSignature unless the delivery is signed with the secret (and fresh); None for
    # providers that sign nothing (Jotform, browsers).
    @property
    def verify(self) -> Callable[[Delivery, str, float], None] | None: ...

    def parse(self, delivery: Delivery) -> Parsed:
        """The answers and the provider's id; MalformedBody when the payload is not its shape."""


def hmac_sha256(secret: str, message: bytes) -> bytes:
    return hmac.new(secret.encode("utf-8"), message, hashlib.sha256).digest()


def matches(expected: str, given: str | None) -> bool:
    """Constant-time comparison of a computed signature with the one received."""
    if given is None:
        return False
    # surrogatepass: a header the runtime decoded to a lone surrogate compares unequal, it
    # does not raise.
    return hmac.compare_digest(
        expected.encode("ascii"), given.strip().encode("utf-8", "surrogatepass")
    )


def hex_matches(expected: str, given: str | None) -> bool:
    """`matches` for a hex signature, whose digits may come in either case (.NET's
    `Convert.ToHexString` and Java's `printHexBinary` write upper case)."""
    return matches(expected, None if given is None else given.lower())


def b64_hmac(secret: str, message: bytes) -> str:
    return base64.b64encode(hmac_sha256(secret, message)).decode("ascii")


def hex_hmac(secret: str, message: bytes) -> str:
    return hmac_sha256(secret, message).hex()


def timestamp_digits(value: str | None) -> str | None:
    """`value` when it is a plausible unix timestamp: ASCII digits only (`isdigit()` also
    takes '١٧٠٠' and '¹²³', which `int()` or the ASCII encoding of the signed text refuse)."""
    if value is None:
        return None
    value = value.strip()
    if 0 < len(value) <= MAX_TIMESTAMP_DIGITS and value.isascii() and value.isdigit():
        return value
    return None


def check_window(timestamp_seconds: float, now: float) -> None:
    # Both directions: a far-future timestamp is as suspect as a stale one.
    if abs(now - timestamp_seconds) > REPLAY_WINDOW_SECONDS:
        raise BadSignature("signature timestamp is outside the 5-minute window")


def verify_t_v1(header: str | None, body: bytes, secret: str, now: float) -> None:
    """`t=<unix seconds>,v1=<hex HMAC-SHA256(secret, "<t>.<body>")>` (Formspree, own scripts).

    Several v1 values may be present while a secret rotates; one match is enough.
    """
    if not header:
        raise BadSignature("signature header missing")
    timestamp = None
    signatures = []
    for item in header.split(","):
        key, _, value = item.strip().partition("=")
        if key == "t":
            timestamp = value
        elif key == "v1":
            signatures.append(value)
    timestamp = timestamp_digits(timestamp)
    if timestamp is None or not signatures:
        raise BadSignature("signature header is not t=<unix>,v1=<hex>")
    expected = hex_hmac(secret, timestamp.encode("ascii") + b"." + body)
    # Check every candidate so timing does not depend on which one matched.
    if not any([hex_matches(expected, candidate) for candidate in signatures]):
        raise BadSignature("signature does not match")
    if abs(now - int(timestamp) / 1000) <= REPLAY_WINDOW_SECONDS:
        # Signed, with the time in milliseconds (JavaScript's Date.now()): told what to fix,
        # not sent looking for a clock gone wrong.
        raise BadSignature("t= is in milliseconds; it takes Unix seconds")
    check_window(int(timestamp), now)


def json_object(body: bytes) -> dict[str, Any]:
    data = json_value(body, "body")
    if not isinstance(data, dict):
        raise MalformedBody("body is not a JSON object")
    return data


def json_value(raw: bytes | str, what: str) -> Any:
    """`raw` as JSON (see common.json_input); MalformedBody naming `what` otherwise."""
    try:
        return load_json(raw)
    except JsonRefused as exc:
        raise MalformedBody(f"{what} is {exc.problem}") from None


def object_at(data: Mapping[str, Any], key: str) -> dict[str, Any]:
    value = data.get(key)
    if not isinstance(value, dict):
        raise MalformedBody(f"`{key}` is missing or not an object")
    return value


def list_at(data: Mapping[str, Any], key: str) -> list[Any]:
    value = data.get(key)
    if not isinstance(value, list):
        raise MalformedBody(f"`{key}` is missing or not a list")
    return value


def provider_id(value: Any) -> str | None:
    """A usable provider submission id, or None (then the content hash stands in)."""
    if isinstance(value, bool) or not isinstance(value, str | int):
        return None
    text = str(value).strip()
    return text if 0 < len(text) <= 200 and text.isprintable() else None


def sender_key(value: str | None) -> str | None:
    """A sender's own key for its submission (a json source's `Idempotency-Key`) as an id.

    A key longer than a provider id may be (Stripe takes 255 characters) or holding what one
    may not (a script joining an order number and a date with a tab) still names the
    submission: it is kept as its hash. Dropped for the content hash, it let the retry of a
    post whose other fields had changed through as another submission."""
    text = (value or "").strip()
    if not text:
        return None
    return (
        provider_id(text)
        or "sha256:" + hashlib.sha256(text.encode("utf-8", "surrogatepass")).hexdigest()
    )


def provider_time(value: Any) -> datetime | None:
    """An ISO 8601 time with a zone (`2026-01-31T09:30:00Z`) as UTC, else None: a time we
    cannot read, or one without a zone, is ignored (the receive time stands in)."""
    if not isinstance(value, str) or len(value) > 40:
        return None
    try:
        moment = datetime.fromisoformat(value.strip())
        # A time at the calendar's very edge (year 1 or 9999) may not fit once in UTC.
        return moment.astimezone(UTC) if moment.tzinfo is not None else None
    except (ValueError, OverflowError):
        return None


def normalise(value: Any) -> Answer:
    """Any JSON value as an Answer: nested structures flatten to text."""
    if value is None or isinstance(value, str | bool | int | float):
        return value
    if isinstance(value, list):
        return [text for item in value if (text := as_text(item))]
    if isinstance(value, dict):
        return {str(key): as_text(item) for key, item in value.items()}
    return as_text(value)


# A whole float below this is written as the integer it is (3.0 -> "3"); above, as Python
# writes floats (1e+308), not as the 309 digits 5 bytes of JSON would become.
WHOLE_FLOAT_LIMIT = 1e15


def as_text(value: Any) -> str:
    """An answer as text: lists joined with ', ', compound answers with spaces."""
    if value is None:
        return ""
    if isinstance(value, bool):
        return "Yes" if value else "No"
    if isinstance(value, float) and value.is_integer() and abs(value) < WHOLE_FLOAT_LIMIT:
        return str(int(value))
    if isinstance(value, str):
        return value.strip()
    if isinstance(value, list):
        return ", ".join(text for item in value if (text := as_text(item)))
    if isinstance(value, dict):
        if as_text(value.get("full")):
            return as_text(value["full"])
        return " ".join(text for item in value.values() if (text := as_text(item)))
    return str(value)
