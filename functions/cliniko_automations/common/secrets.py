"""Secrets Manager reads, cached for five minutes in the container (Powertools parameters).

A rotated secret is picked up within `SECRET_MAX_AGE` seconds without a cold start, and a warm
container does not call Secrets Manager on every invocation. Values are never logged.

A cold start can start its first call's reads during Lambda's init (`prefetch_secrets`): each
round trip then overlaps the rest of the import instead of adding to the first call.

Failures an operator must fix (the secret does not exist, the function may not read it, it lies
outside `SECRETS_PREFIX`, it is empty, it holds a JSON object or a quoted string rather than
the value alone) have their own classes: retrying cannot help. Anything
else (throttling, a network error) stays a plain `SecretUnavailable`, worth retrying.
"""

from __future__ import annotations

import contextlib
import json
import os
import threading
import time
from collections.abc import Callable, Iterable
from datetime import UTC, datetime
from typing import Any

from aws_lambda_powertools.utilities import parameters
from aws_lambda_powertools.utilities.parameters.constants import DEFAULT_PROVIDERS
from aws_lambda_powertools.utilities.parameters.exceptions import GetParameterError
from aws_lambda_powertools.utilities.parameters.secrets import SecretsProvider
from botocore.exceptions import BotoCoreError, ClientError

from cliniko_automations.common import aws
from cliniko_automations.common.logs import register_secret
from cliniko_automations.common.secret_text import trimmed

SECRET_MAX_AGE = 300
# A signing secret's values read past the cache when a delivery does not match the cached one
# (`rotated_values`) are kept this long: one read serves every delivery meanwhile, and forged
# deliveries cannot make more reads than one a period.
ROTATION_RECHECK_SECONDS = 30
# While a secret's current value is younger than this, its previous one is accepted too: a
# provider's settings are changed after Secrets Manager, by hand. Bounded, so a secret rotated
# because it leaked stops working soon after.
ROTATION_GRACE_SECONDS = 900


class SecretUnavailable(RuntimeError):
    """The secret could not be read, or holds nothing usable. The message names the secret,
    never its value."""

    def __init__(self, message: str, *, name: str | None = None) -> None:
        super().__init__(message)
        self.name = name


class SecretMisconfigured(SecretUnavailable):
    """A secret problem only an operator can fix; `reason` is a fixed code."""

    reason = "secret_misconfigured"


class SecretMissing(SecretMisconfigured):
    reason = "secret_missing"


class SecretDenied(SecretMisconfigured):
    reason = "secret_access_denied"


class SecretOutsidePrefix(SecretMisconfigured):
    reason = "secret_outside_prefix"

    def __init__(self, message: str, *, name: str, prefix: str) -> None:
        super().__init__(message, name=name)
        self.prefix = prefix


class SecretEmpty(SecretMisconfigured):
    reason = "secret_empty"


class SecretNotPlainText(SecretMisconfigured):
    """A JSON object (the console's "Key/value" tab, its default, stores the pairs typed so) or
    a quoted string where every secret read here is the value alone: taken as written, a
    signing secret refused every delivery 401 and a Cliniko key was sent with its braces."""

    reason = "secret_not_plain_text"

    def __init__(self, message: str, *, name: str, holds: str) -> None:
        super().__init__(message, name=name)
        self.holds = holds  # what it holds instead, e.g. "a JSON object": never the value


class SecretDeleted(SecretMisconfigured):
    """Deleted, within its recovery window: Secrets Manager answers InvalidRequestException
    (not ResourceNotFoundException) until the window ends."""

    reason = "secret_deleted"


class SecretUndecryptable(SecretMisconfigured):
    """Its KMS key will not decrypt it (disabled, or scheduled for deletion: Secrets Manager
    answers DecryptionFailure) until someone acts: retried as a moment's outage, the change
    feed failed every minute with a stack trace, and the worker handed its submissions back
    with no fix to make."""

    reason = "secret_not_decryptable"


# Secrets Manager's error codes that no retry can change.
_PERMANENT = {
    "ResourceNotFoundException": SecretMissing,
    "AccessDeniedException": SecretDenied,
    # GetSecretValue's only InvalidRequestException: the secret is marked for deletion.
    "InvalidRequestException": SecretDeleted,
    "DecryptionFailure": SecretUndecryptable,
}


def check_secret_prefix(name: str, prefix: str | None) -> None:
    """Refuse a secret the function's IAM policy (`SecretsPrefix*`) will not let it read, before
    asking Secrets Manager (which would answer a bare AccessDenied)."""
    if prefix and not name.startswith(prefix):
        raise SecretOutsidePrefix(
            f"secret {name!r} is outside SecretsPrefix {prefix!r}", name=name, prefix=prefix
        )


def _use_shared_session() -> None:
    """Make Powertools' default Secrets Manager provider (the one `parameters.get_secret` and
    `parameters.clear_caches` use) a client of the process's shared session: left to itself it
    builds a boto3 session of its own on the first read.

    Its client fails fast (`aws.FAIL_FAST`): every function reads its secrets while someone
    waits (a form provider on the intake API's 10 s timeout, an erasure caller on 29 s), and
    each treats a secret it cannot read as a dependency failure to retry (503, the queue's
    redelivery, the next run), which a stalled read held for botocore's 60 s never became."""
    if "secrets" not in DEFAULT_PROVIDERS:
        DEFAULT_PROVIDERS["secrets"] = SecretsProvider(
            boto3_client=aws.client("secretsmanager", config=aws.FAIL_FAST)
        )


def _in_snapshot_init() -> bool:
    """Lambda's init for a SnapStart snapshot (the environment Lambda documents)."""
    return os.environ.get("AWS_LAMBDA_INITIALIZATION_TYPE") == "snap-start"


# Secrets read ahead by one `prefetch_secrets`, at most.
MAX_PREFETCHED = 8
# Reads started by `prefetch_secrets` and not yet waited for, by secret name.
_prefetching: dict[str, threading.Thread] = {}


def prefetch_secrets(names: Callable[[], Iterable[str | None]]) -> None:
    """Start reading the secrets `names()` lists, each on a thread of its own, into the cache
    `read_secret` reads: called at import, a cold start's first call finds them there instead
    of waiting on one round trip after another. `read_secret` waits for a read in flight.

    Inside a Lambda only (AWS_LAMBDA_FUNCTION_NAME set): imported anywhere else (tests, the
    command line) no AWS endpoint or credentials need be set yet, and a client made now would
    keep them. Not in an init that SnapStart snapshots: the values would be in the snapshot.

    Never raises, so an import cannot fail here: names that cannot be worked out (settings
    not set) are skipped, and a read that fails is made again, and reported, by
    `read_secret`. The prefix check stays with `read_secret`: a secret outside it may be read
    here (or refused by IAM), and is never handed out.
    """
    if not os.environ.get("AWS_LAMBDA_FUNCTION_NAME") or _in_snapshot_init():
        return
    try:
        wanted = [n for n in dict.fromkeys(names()) if isinstance(n, str) and n.strip()]
        # Each read holds a connection: stay inside boto3's pool of 10 (the rest are read
        # on first use).
        wanted = wanted[:MAX_PREFETCHED]
        if not wanted:
            return
        # The client is made here, on this thread: a boto3 session may not make clients on
        # two threads at once, and the import goes on making its own.
        _use_shared_session()
        for name in wanted:
            if name in _prefetching:
                continue
            reader = threading.Thread(
                target=_prefetch_one, args=(name,), name="secret-prefetch", daemon=True
            )
            _prefetching[name] = reader
            reader.start()
    except Exception:  # an optimisation only: the first call reads whatever is missing
        return


def _prefetch_one(name: str) -> None:
    # A failed read is made again, and reported, by read_secret.
    with contextlib.suppress(Exception):
        _read(name)


def read_secret(name: str, *, prefix: str | None = None) -> str:
    """The SecretString (or UTF-8 SecretBinary) of secret `name`, which must start with
    `prefix` when one is given."""
    if not isinstance(name, str) or not name.strip():
        raise SecretUnavailable("a secret name is required")
    check_secret_prefix(name, prefix)
    in_flight = _prefetching.pop(name, None)
    if in_flight is not None:
        in_flight.join()
    return _read(name)


def reread_secret(name: str, *, prefix: str | None = None) -> str:
    """`read_secret`, past the cache (which it refreshes): a value that was refused (a Cliniko
    key archived once its successor was put in the secret) may have been rotated since."""
    check_secret_prefix(name, prefix)
    return _read(name, force_fetch=True)


def _read(name: str, *, force_fetch: bool = False) -> str:
    _use_shared_session()
    try:
        # Powertools annotates this overload as str, but a SecretBinary comes back as bytes.
        value: str | bytes = parameters.get_secret(
            name, max_age=SECRET_MAX_AGE, force_fetch=force_fetch
        )
    except GetParameterError as exc:
        # Powertools re-raises inside its handler, so the AWS error is the context.
        cause = exc.__cause__ or exc.__context__
        code = (
            cause.response.get("Error", {}).get("Code") if isinstance(cause, ClientError) else None
        )
        kind = _PERMANENT.get(code or "", SecretUnavailable)
        raise kind(
            f"secret {name!r} could not be read ({code or _named(cause)})", name=name
        ) from exc
    if isinstance(value, bytes):
        try:
            value = value.decode("utf-8")
        except UnicodeDecodeError as exc:
            raise SecretEmpty(f"secret {name!r} is binary, not text", name=name) from exc
    if not isinstance(value, str) or not trimmed(value):
        raise SecretEmpty(f"secret {name!r} is empty", name=name)
    # The logs' redacting filter blanks it from now on, as stored and as used.
    register_secret(value)
    register_secret(trimmed(value))
    _refuse_wrapped(name, value)
    return value


def _wrapped(value: str) -> tuple[str, list[str]] | None:
    """What wraps `value` when it is not the value alone: ("a JSON object", its string
    members) or ("a quoted string", [the text inside]); None for a plain value. No secret the
    functions read is either: a Cliniko key, a provider's signing secret, a token, a captcha
    secret, a `whsec_` secret, the stack's own two (letters and digits)."""
    text = trimmed(value)
    if len(text) < 2:
        return None
    if text[0] == text[-1] == "'" and "'" not in text[1:-1]:
        # cmd.exe quotes with double quotes only: --secret-string 'KEY' stores the quotes.
        return "a quoted string", [text[1:-1]]
    if (text[0], text[-1]) not in (("{", "}"), ('"', '"')):
        return None
    try:
        parsed = json.loads(text)
    except (ValueError, RecursionError):  # braces or quotes that are part of the value
        return None
    if isinstance(parsed, dict):
        return "a JSON object", [v for v in parsed.values() if isinstance(v, str)]
    if isinstance(parsed, str):
        return "a quoted string", [parsed]
    return None


def _refuse_wrapped(name: str, value: str) -> None:
    wrapped = _wrapped(value)
    if wrapped is None:
        return
    holds, inside = wrapped
    for text in inside:  # the value meant, which the operator will store next: never logged
        register_secret(text)
    raise SecretNotPlainText(f"secret {name!r} holds {holds}", name=name, holds=holds)


# Values read by `rotated_values`, by secret name: (when, on the monotonic clock and on the
# wall clock; the values, or the failure to read them). Both clocks: a Lambda thawed after an
# hour may find its monotonic clock moved only by the time it ran (Firecracker does not
# promise either way), and a read from before the freeze must not stand for one after it.
_rotation_reads: dict[str, tuple[float, float, tuple[str, ...] | SecretUnavailable]] = {}


def clear_secret_caches() -> None:
    """Forget every value read (Powertools' cache and `rotated_values`')."""
    parameters.clear_caches()  # type: ignore[no-untyped-call]  # Powertools: untyped
    _rotation_reads.clear()


def rotated_values(name: str, *, prefix: str | None = None) -> tuple[str, ...]:
    """The values a sender may sign with when the cached value of secret `name` no longer
    matches: it may have been rotated since the cache read it (up to `SECRET_MAX_AGE` ago), and
    a form provider does not deliver again after a 401. Its current value read past the cache
    and, while that is younger than `ROTATION_GRACE_SECONDS`, its previous one (`AWSPREVIOUS`).
    Read at most once every `ROTATION_RECHECK_SECONDS` for each secret."""
    check_secret_prefix(name, prefix)
    now, wall = time.monotonic(), time.time()
    read = _rotation_reads.get(name)
    if (
        read is not None
        and now - read[0] < ROTATION_RECHECK_SECONDS
        and 0 <= wall - read[1] < ROTATION_RECHECK_SECONDS
    ):
        if isinstance(read[2], SecretUnavailable):
            # A failed read counts too: forged deliveries must not make one each.
            raise read[2].with_traceback(None)
        return read[2]
    try:
        values = _read_rotation(name)
    except SecretUnavailable as failed:
        _rotation_reads[name] = (now, wall, failed)
        raise
    _rotation_reads[name] = (now, wall, values)
    return values


def _read_rotation(name: str) -> tuple[str, ...]:
    client = aws.client("secretsmanager", config=aws.FAIL_FAST)
    try:
        current = client.get_secret_value(SecretId=name)
        values = [_stored_text(current)]
        created = current.get("CreatedDate")
        age = (datetime.now(UTC) - created).total_seconds() if created else None
        if age is not None and age < ROTATION_GRACE_SECONDS:
            with contextlib.suppress(client.exceptions.ResourceNotFoundException):
                # None yet: the secret was never rotated.
                previous = client.get_secret_value(SecretId=name, VersionStage="AWSPREVIOUS")
                values.append(_stored_text(previous))
    except (BotoCoreError, ClientError) as exc:
        code = exc.response.get("Error", {}).get("Code") if isinstance(exc, ClientError) else None
        raise _PERMANENT.get(code or "", SecretUnavailable)(
            f"secret {name!r} could not be read ({code or _named(exc)})", name=name
        ) from exc
    texts = tuple(v for v in values if v is not None and trimmed(v))
    for text in texts:
        register_secret(text)
        register_secret(trimmed(text))
    current = values[0]
    if current is not None and trimmed(current):
        _refuse_wrapped(name, current)  # as `_read` refuses it
    # A previous value so stored is passed over: the current one replaced it.
    return tuple(text for text in texts if _wrapped(text) is None)


def _stored_text(answer: dict[str, Any]) -> str | None:
    """A GetSecretValue answer's SecretString, or its SecretBinary as UTF-8 (as `_read` takes
    a secret), None when it holds neither."""
    value = answer.get("SecretString")
    if value is None and isinstance(answer.get("SecretBinary"), bytes):
        with contextlib.suppress(UnicodeDecodeError):
            value = answer["SecretBinary"].decode("utf-8")
    return value if isinstance(value, str) else None


def _named(cause: BaseException | None) -> str:
    """What went wrong, for the operator: the cause's class, and for botocore's own errors
    (no credentials, no region, an endpoint out of reach) its message too, which is a fixed
    template holding no secret. Another cause's message might quote what was read: never."""
    if cause is None:
        return "error"
    if isinstance(cause, BotoCoreError):
        return f"{type(cause).__name__}: {cause}"
    return type(cause).__name__
