"""Typed errors of the Cliniko client runtime.

Every failure the runtime knows about is one of these; nothing answers None in their place.
Messages carry statuses, shards, field names and Cliniko's own wording, never the API key,
nor names, emails or phone numbers (Cliniko's messages name fields, not values).
"""

from __future__ import annotations

from collections.abc import Mapping


class ClinikoError(Exception):
    """Base of every error the client raises. `status_code` is None when no response came."""

    def __init__(self, message: str, *, status_code: int | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.status_code = status_code


class ConfigurationError(ClinikoError):
    """The client cannot be built as asked: malformed key suffix, bad User-Agent, bad base URL.
    `setting` names what to fix: "api_key", "user_agent", "base_url" from the client itself, or
    the environment variable when a settings reader raised it."""

    def __init__(self, message: str, *, setting: str | None = None) -> None:
        super().__init__(message)
        self.setting = setting


class BadRequest(ClinikoError):
    """400: typically a `q[]` filter on a field that is not filterable, or a malformed filter."""


class Unauthorized(ClinikoError):
    """401: a bad key, or a good key sent to the wrong shard (Cliniko cannot tell them apart)."""

    def __init__(self, message: str, *, shard: str, status_code: int | None = 401) -> None:
        super().__init__(message, status_code=status_code)
        self.shard = shard


class Forbidden(ClinikoError):
    """403: the Cliniko user behind the key lacks the permission."""


class UserAgentRefused(Forbidden):
    """Cliniko refused the request for its User-Agent ("Requires a user agent"): Cliniko blocks
    requests that do not name the app and a contact email. Not the key's fault."""


class NotFound(ClinikoError):
    """404: no such contact (or it is hidden, e.g. archived)."""


class ValidationFailed(ClinikoError):
    """422: Cliniko refused the body. `errors` maps a field to its message (or None)."""

    def __init__(
        self,
        message: str,
        errors: Mapping[str, str | None],
        *,
        status_code: int | None = 422,
    ) -> None:
        super().__init__(message, status_code=status_code)
        self.errors: dict[str, str | None] = dict(errors)

    def __str__(self) -> str:
        fields = ", ".join(f"{name}: {text}" for name, text in self.errors.items())
        return f"{self.message} ({fields})" if fields else self.message


class RateLimited(ClinikoError):
    """429 after the bounded waits were used up. `reset_at` is the UNIX time the window resets,
    on this machine's clock (Cliniko's `X-RateLimit-Reset` read against its answer's `Date`)."""

    def __init__(
        self, message: str, *, reset_at: float | None, status_code: int | None = 429
    ) -> None:
        super().__init__(message, status_code=status_code)
        self.reset_at = reset_at


class ServerError(ClinikoError):
    """5xx (after the bounded retries for safe operations), or no usable answer at all."""


class ConnectionFailed(ServerError):
    """Timeouts or dropped connections outlasted the retries (status_code is None)."""


class OutOfTime(ConnectionFailed):
    """The invocation's time ran out before Cliniko answered (the transport's `time_left`):
    nothing more was sent. Retryable, like any failure to reach Cliniko."""


class CreateOutcomeUnknown(ServerError):
    """A create was sent but no answer says whether Cliniko made the contact.

    Cliniko has no idempotency keys, so the runtime never re-sends a create that may have been
    processed (a dropped connection or timeout after sending, a 5xx answer).
    Callers deduplicate first (search by email) before trying again. It is a ServerError so
    code that treats server trouble as transient still retries, through its dedupe path.
    """


class UnexpectedResponse(ClinikoError):
    """A success status whose body does not match the spec, or a status the spec lacks."""


class AnswerTooLong(UnexpectedResponse):
    """A success longer than the client holds (`MAX_ANSWER_BYTES` once decoded): a page of
    contacts whose notes (unbounded) are long, which a smaller page may bring within it."""


class PaginationMismatch(ClinikoError):
    """A listing saw a different number of contacts than `total_entries` promised."""

    def __init__(self, message: str, *, seen: int, total_entries: int) -> None:
        super().__init__(message)
        self.seen = seen
        self.total_entries = total_entries


def access_hint(error: ClinikoError) -> str | None:
    """What an operator does about Cliniko refusing the key (401) or its user (403), else None.

    Safe to log and to show: it names the shard, never the key."""
    if isinstance(error, Unauthorized):
        return (
            f"Cliniko refused the API key on shard {error.shard} (401): the key is wrong or "
            "revoked, or belongs to another shard. Paste the whole key as Cliniko showed it, "
            "shard suffix included (the part after the last '-', e.g. '-au2'; a key without "
            "one is sent to au1)"
        )
    if isinstance(error, UserAgentRefused):
        return (
            f"Cliniko refused the request's User-Agent ({error.status_code}): set the stack "
            "parameter ClinikoUserAgent (CLINIKO_USER_AGENT) to your app's name and a contact "
            "email, 'Name (email)', e.g. 'Acme Clinic Intake (it@acme.example)'"
        )
    if isinstance(error, Forbidden):
        return (
            "Cliniko refused the request (403): the Cliniko user who owns the API key lacks the "
            "permission. Use the key of a user whose role may view, create, edit and archive "
            "contacts"
        )
    return None


# The kind of a refusal of a key its secret no longer holds (rotated within the secrets' cache,
# common.cliniko_accounts.key_replaced): nothing to fix, sent again it uses the new key.
KEY_ROTATED = "cliniko_key_rotated"


def error_kind(error: ClinikoError) -> str:
    """What went wrong, safe to log and store: the class name (and for a 422 the field names)
    only, since Cliniko's messages may quote values."""
    kind = "cliniko_" + type(error).__name__
    if isinstance(error, ValidationFailed) and error.errors:
        kind += ": " + ", ".join(sorted(error.errors))
    return kind
