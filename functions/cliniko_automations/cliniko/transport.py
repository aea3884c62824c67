"""The httpx transport under the generated client: pacing, bounded retries, error mapping.

Every request the generated `cliniko_client` functions send passes through `ClinikoTransport`
(given to the generated client through `httpx_args={"transport": ...}`), so pagination,
gets, creates and updates all share one policy:

- Before each send: wait for a slot in the key's rate budget (pacing.py in one process,
  shared_pacing.py across processes).
- 429: Cliniko did not process the request, so any request (a create too) is sent again
  once the window resets: `X-RateLimit-Reset` (UNIX seconds), or `Retry-After` when present
  (the longer of the two when both are, 65 s at most: Cliniko's window is a minute); a whole
  window (a minute) when neither says anything believable. A bounded number of times; an
  announced wait longer than the policy allows is not waited at all: `RateLimited` at once.
  Either way the key's budget is held until the reset (shared_pacing.py: in every process of
  the key).
- 500/502/503/504, timeouts, dropped connections: jittered exponential backoff for safe
  operations only (Cliniko's 500 is "server trouble" like the others: a one-off one cost a
  cleanup rule a 30 s rest and a submission a trip back through the queue). Safe means
  idempotent: GET, PUT, PATCH (Cliniko's PATCH sets fields to given values: sending it twice
  leaves the same contact), DELETE and POST .../archive (archiving an archived contact
  changes nothing).
- A create (`POST /contacts`) is never re-sent once it may have reached Cliniko (no
  idempotency keys there): a timeout, a dropped connection or a 5xx answer after sending
  raises `CreateOutcomeUnknown`, and the caller deduplicates before trying again. A create
  whose connection was never made (connect error/timeout) is retried: nothing was sent.
- All sleeping one request does (pacing, 429 waits, backoff) stays within
  `RetryPolicy.max_total_wait`: a wait that would pass it is not started, and the typed error
  comes at once (a Lambda with a 29 s timeout must not be killed mid-wait).
- With `time_left` (the invocation's remaining time, less what the caller keeps for itself),
  the whole request ends within it, attempts included: each attempt's timeouts shrink to what
  is left, an answer still arriving when it runs out (trickled, a byte at a time, which the
  per-read timeout never ends) is cut off as a read timeout, and no wait or attempt starts
  with less than `MIN_ATTEMPT_SECONDS` left (`OutOfTime`, nothing more sent).
- Any other 4xx/5xx becomes the typed error of errors.py, so the generated code only ever
  parses success bodies (error bodies are "anything, not always JSON" at Cliniko).

Logs carry method, path (contact ids only), status, attempt and wait: never the query
string (filters hold emails), bodies or headers.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import email.utils
import json
import logging
import math
import random
import re
import threading
import time
import zlib
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from typing import Any, cast

import httpx

from cliniko_automations.common.http_transport import ReadWithin
from cliniko_automations.common.printable import printable

from . import errors
from .pacing import SYSTEM_CLOCK, Budget, BudgetExhausted, Clock
from .rules import WRITABLE_FIELDS

logger = logging.getLogger("cliniko_automations.cliniko")

RETRYABLE_STATUSES = frozenset({500, 502, 503, 504})
# No attempt or wait is started with less time left than this: it could only time out.
MIN_ATTEMPT_SECONDS = 1.0
# Seconds the caller still has (None: no bound).
TimeLeft = Callable[[], float | None]
# Cliniko's window is a minute: no 429 holds the key's budget longer than this, nor is any
# reset further off believed (`rate_limit_wait`): one is a clock or a header gone wrong.
LONGEST_HOLD_SECONDS = 65.0
# A 429 that says nothing believable of its reset (no header, an unreadable one, or one further
# off than a window could be: milliseconds read as seconds, a clock gone wrong) is taken to
# spend the whole of a window: a short backoff would only meet 429 after 429.
UNKNOWN_RESET_SECONDS = 60.0
LONGEST_BELIEVABLE_RESET_SECONDS = 3600.0
# A 429's Date further than this from this machine's clock is not believed (a proxy's, or a
# clock gone wrong): the reset is then read against this machine's clock.
BELIEVABLE_SKEW_SECONDS = 300.0
# A reset this close behind the 429's "now" (or at it) is the window ending within the second
# (a reset rounded down to whole seconds, clocks a little apart): the next second is waited.
# One further behind contradicts the 429, which says the window is spent now: a whole window.
RECENT_RESET_SECONDS = 5.0
NEXT_SECOND = 1.0
# The longest answer read, as decoded: a page of 100 contacts is some 100 kB (a contact about
# 800 bytes), and 8 MiB leaves room for long notes on every one of them. A longer answer (a
# broken or hostile one, or a few hundred kB of gzip that inflate to gigabytes) is refused,
# read no further: held whole, it would kill a 256 MB Lambda.
MAX_ANSWER_BYTES = 8 * 1024 * 1024
# The encoding the client asks for (client.py: gzip alone, since a "deflate" may be zlib's or
# raw, by the server), inflated here with a bound on each step.
_INFLATE_WBITS = {"gzip": 16 + zlib.MAX_WBITS, "x-gzip": 16 + zlib.MAX_WBITS}
_IDEMPOTENT_METHODS = frozenset({"GET", "HEAD", "OPTIONS", "PUT", "PATCH", "DELETE"})
_ARCHIVE_PATH = re.compile(r"/contacts/[^/]+/archive/?$")
_MESSAGE_LIMIT = 200
# Cliniko's contacts have 19 writable fields: a 422 naming more is not telling anything more.
_MAX_FIELD_ERRORS = 25
# A 422's field names, as a contact's fields (nested: "phone_numbers.number",
# "phone_numbers[0].number") or Rails' "base" for the whole record.
_FIELD_ERROR_KEY = re.compile(r"([a-z_]+)(?:[.\[][a-z0-9_.\[\]]{0,60})?")
_FIELD_ERROR_ROOTS = WRITABLE_FIELDS | {"base"}
# From where a run of such characters starts only, so the scan is linear (logs.EMAIL).
_EMAIL_LIKE = re.compile(r"(?<![^\s@'\"])[^\s@'\"]+@[^\s@'\"]+")


@dataclass(frozen=True, slots=True)
class RetryPolicy:
    """Bounds on waiting and retrying, per request (each page of a listing is one request).

    Time spent sleeping (pacing, 429 waits, backoff) never exceeds `max_total_wait`: a wait
    that would pass it is not started and the error is raised at once, so a Lambda with a
    short timeout gets a typed error rather than being killed mid-wait. Time inside attempts
    (up to the read timeout each) comes on top: at most `max_attempts` of them, plus a
    throttled request's `max_rate_limit_waits` re-sends.
    """

    # Tries of a safe request on 500/502/503/504, timeouts and drops, the first one included.
    max_attempts: int = 4
    backoff_base: float = 0.5
    backoff_cap: float = 8.0
    # How many 429s one request waits out, and the longest single wait it accepts (Cliniko's
    # window is a minute, so a reset is never much further away than that).
    max_rate_limit_waits: int = 3
    max_rate_limit_wait: float = 65.0
    # All sleeping one request may do, whatever the reason.
    max_total_wait: float = 75.0
    # Added to the announced reset: clocks differ a little, and one more 429 costs more.
    reset_margin: float = 0.25

    def __post_init__(self) -> None:
        if self.max_attempts < 1 or self.max_rate_limit_waits < 0:
            raise ValueError("a retry policy needs max_attempts >= 1 and max_rate_limit_waits >= 0")
        delays = (
            self.backoff_base,
            self.backoff_cap,
            self.max_rate_limit_wait,
            self.max_total_wait,
            self.reset_margin,
        )
        if any(delay < 0 for delay in delays):
            raise ValueError("retry delays must not be negative")

    @classmethod
    def within(cls, seconds: float) -> RetryPolicy:
        """A policy that sleeps at most `seconds` per request (e.g. for a 29 s Lambda)."""
        return cls(max_total_wait=seconds, max_rate_limit_wait=min(65.0, seconds))

    def backoff(self, retry: int, rng: random.Random) -> float:
        """Full-jitter exponential backoff before retry number `retry` (1-based)."""
        ceiling = min(self.backoff_cap, self.backoff_base * (2 ** (retry - 1)))
        return rng.uniform(0.0, ceiling)


def is_idempotent(method: str, path: str) -> bool:
    """Whether sending the request twice leaves Cliniko as sending it once (see module doc)."""
    method = method.upper()
    if method in _IDEMPOTENT_METHODS:
        return True
    return method == "POST" and bool(_ARCHIVE_PATH.search(path))


def rate_limit_wait(headers: Mapping[str, str], now: float) -> tuple[float, float]:
    """From a 429's headers: (seconds to wait, when that is as UNIX time on this machine's
    clock `now`); the next second for a reset at or just behind Cliniko's "now"; a whole
    window (UNKNOWN_RESET_SECONDS) when they tell nothing believable (a reset long past
    included); never more than LONGEST_HOLD_SECONDS. Every wait on a 429 comes from here: the
    budget's hold, the request's own wait, and `RateLimited.reset_at` (the worker's message
    hidden on its queue, the cleanup's wait between steps).

    Cliniko's window is a minute, so a reset further off than that is Cliniko's clock and
    ours apart (its `Date` missing or further than BELIEVABLE_SKEW_SECONDS: the reset read
    against our clock), or a stand-in's header: believed, a clock 10 minutes ahead hid every
    submission of the clinic 10 minutes a receive, and kept the cleanup waiting as long, for
    a window that had reset within the minute. Capped, a reset that is real after all costs
    one more 429, which holds the budget again.

    `X-RateLimit-Reset` is Cliniko's documented header (UNIX seconds, UTC), a moment on
    Cliniko's clock: it is read against the answer's `Date` (Cliniko's clock too), not this
    machine's, which may run seconds ahead of it; a reset that looked past then had every
    process of the key send again into the spent window, 429 after 429. `Retry-After` is not
    documented; when present it is honoured too (seconds or an HTTP date), and when both are
    present the longer wait wins, so the retry does not meet another 429.
    """
    # Cliniko's "now": whole seconds, so waiting until the reset from it is never too short.
    server_now = served_at(headers, now)
    if server_now is None:
        server_now = now
    waits: list[float] = []
    raw_reset = headers.get("x-ratelimit-reset")
    if raw_reset is not None:
        with contextlib.suppress(ValueError):
            waits.append(float(raw_reset.strip()) - server_now)
    raw_retry = headers.get("retry-after")
    if raw_retry is not None:
        text = raw_retry.strip()
        try:
            waits.append(float(text))
        except ValueError:
            retry_at = _http_date(text)
            if retry_at is not None:
                waits.append(retry_at - server_now)
    # A reset already past is no reason to send again at once (every process did, 429 after
    # 429): the next second when it is just past, else as unbelievable as one an hour off.
    waits = [
        NEXT_SECOND if -RECENT_RESET_SECONDS <= w <= 0 else w
        for w in waits
        if math.isfinite(w) and -RECENT_RESET_SECONDS <= w <= LONGEST_BELIEVABLE_RESET_SECONDS
    ]
    wait = min(max(waits), LONGEST_HOLD_SECONDS) if waits else UNKNOWN_RESET_SECONDS
    return wait, now + wait


def served_at(headers: Mapping[str, str], now: float) -> float | None:
    """Cliniko's clock when it answered (its `Date`, UNIX seconds, whole ones: never later
    than it was), or None when the answer has none or one further than
    BELIEVABLE_SKEW_SECONDS from this machine's clock `now` (a proxy's, or a clock gone
    wrong), as a 429's reset is read."""
    moment = _http_date(headers.get("date"))
    if moment is None or abs(moment - now) > BELIEVABLE_SKEW_SECONDS:
        return None
    return moment


def _http_date(text: str | None) -> float | None:
    if not text:
        return None
    try:
        moment = email.utils.parsedate_to_datetime(text.strip())
        if moment.tzinfo is None:
            # `-0000` (RFC 5322's UTC, source zone unknown) is read without a zone, which
            # `.timestamp()` takes for this machine's local time: hours out off Lambda's UTC.
            moment = moment.replace(tzinfo=dt.UTC)
        return moment.timestamp()
    except (TypeError, ValueError, IndexError, OverflowError):
        return None


def _body_json(content: bytes) -> Any:
    try:
        return json.loads(content)
    except (ValueError, UnicodeDecodeError, RecursionError):
        return None


def _short(text: str) -> str:
    # Cliniko's messages name fields, but a refused filter may be quoted back whole, and a
    # filter can hold an email: errors end up in logs, so email-shaped text is masked.
    # Cut before it is read: a proxy's page or a hostile answer may be megabytes long. A word
    # the cut goes through is left out: half an address no longer reads as one to be masked.
    window = text[: 4 * _MESSAGE_LIMIT]
    words = window.split()
    cut_through_a_word = len(window) < len(text) and not (
        window[-1].isspace() or text[len(window)].isspace()
    )
    if words and cut_through_a_word:
        words.pop()
    # Escaped, as text an operator's terminal shows and SQS takes in a dead letter's reason.
    text = printable(_EMAIL_LIKE.sub("<email>", " ".join(words)))
    return text if len(text) <= _MESSAGE_LIMIT else text[: _MESSAGE_LIMIT - 1] + "…"


def error_for_response(
    status: int,
    content: bytes,
    headers: Mapping[str, str],
    *,
    shard: str,
    method: str,
    path: str,
    now: float,
) -> errors.ClinikoError:
    """The typed error for a final (not retried) 4xx/5xx answer."""
    body = _body_json(content)
    message = body.get("message") if isinstance(body, dict) else None
    detail = f": {_short(message)}" if isinstance(message, str) and message.strip() else ""
    where = f"{method} {path}"
    if status in (400, 403) and b"user agent" in content[:_MESSAGE_LIMIT].lower():
        # Cliniko's block of an unnamed client ("Requires a user agent"), JSON or plain text.
        return errors.UserAgentRefused(
            f"Cliniko refused {where} for its User-Agent ({status}): it must name the app and "
            "a contact email, 'Name (email)'",
            status_code=status,
        )
    if status == 400:
        return errors.BadRequest(
            f"Cliniko refused {where} as a bad request (400){detail}", status_code=400
        )
    if status == 401:
        return errors.Unauthorized(
            f"Cliniko refused the API key for {where} (401). The key may be wrong or revoked, or "
            f"belong to another shard than '{shard}': the shard comes from the key's suffix "
            "(e.g. '-au2'); a key without one is sent to au1",
            shard=shard,
        )
    if status == 403:
        return errors.Forbidden(
            f"Cliniko forbade {where} (403): the key's Cliniko user lacks the permission{detail}",
            status_code=403,
        )
    if status == 404:
        return errors.NotFound(
            f"Cliniko has no such resource: {where} (404){detail}", status_code=404
        )
    if status == 422:
        raw = body.get("errors") if isinstance(body, dict) else None
        field_errors: dict[str, str | None] = {}
        if isinstance(raw, dict):
            # Shortened and masked as the message is: a text may quote the value refused.
            for name, text in list(raw.items())[:_MAX_FIELD_ERRORS]:
                if isinstance(text, list):  # tolerated: some APIs send lists of messages
                    text = "; ".join(str(item) for item in text[:_MAX_FIELD_ERRORS])
                field_errors[_field_name(name)] = None if text is None else _short(str(text))
        title = message if isinstance(message, str) and message.strip() else "Validation Failed"
        return errors.ValidationFailed(_short(title), field_errors, status_code=422)
    if status == 429:
        _, reset_at = rate_limit_wait(headers, now)
        return errors.RateLimited(
            f"Cliniko's rate limit held {where} (429) beyond the retry policy",
            reset_at=reset_at,
        )
    if status >= 500:
        return errors.ServerError(f"Cliniko failed {where} ({status})", status_code=status)
    return errors.UnexpectedResponse(
        f"Cliniko answered {where} with an unexpected status {status}", status_code=status
    )


def _field_name(name: object) -> str:
    """A 422's key for a refused field, as the errors name it in logs, dead letters and the
    erasure's trail: the contact's field it names ("phone_numbers" for
    "phone_numbers[0].number"), or "other". The keys are free text to whoever
    answers, and one that keyed its errors by a value ("Zebedee Quigglesworth": "is already a
    patient") put the value in every line that names the refused fields."""
    match = _FIELD_ERROR_KEY.fullmatch(name) if isinstance(name, str) else None
    # The field alone: what follows it ("phone_numbers.0412345678") is free text too.
    return match.group(1) if match and match.group(1) in _FIELD_ERROR_ROOTS else "other"


class ClinikoTransport(httpx.BaseTransport):
    """Wraps a real httpx transport with pacing, bounded retries and typed errors."""

    def __init__(
        self,
        inner: httpx.BaseTransport,
        *,
        shard: str,
        budget: Budget,
        policy: RetryPolicy | None = None,
        clock: Clock = SYSTEM_CLOCK,
        rng: random.Random | None = None,
        time_left: TimeLeft | None = None,
    ) -> None:
        self._inner = inner
        self.time_left: TimeLeft = _unbounded
        self.finish_within(time_left)
        self._shard = shard
        self._budget = budget
        self._policy = policy or RetryPolicy()
        self._clock = clock
        self._rng = rng or random.Random()  # noqa: S311 - jitter, not security
        self._count = 0
        self._count_lock = threading.Lock()

    @property
    def request_count(self) -> int:
        """Requests handed to the network, retries included."""
        with self._count_lock:
            return self._count

    def handle_request(self, request: httpx.Request) -> httpx.Response:
        method = request.method.upper()
        path = request.url.path
        safe = is_idempotent(method, path)
        policy = self._policy
        failures = 0
        throttles = 0
        waited = 0.0
        while True:
            left = self._left(method, path)
            max_wait = policy.max_total_wait - waited
            if left is not None:
                max_wait = min(max_wait, left - MIN_ATTEMPT_SECONDS)
            try:
                waited += self._budget.acquire(max_wait=max_wait)
            except BudgetExhausted as exc:
                raise errors.RateLimited(
                    f"the key's rate budget has no room for {method} {path} within the retry "
                    f"policy (next slot in {exc.wait:.1f}s); nothing was sent",
                    reset_at=self._clock.time() + exc.wait,
                    status_code=None,
                ) from None
            with self._count_lock:
                self._count += 1
            left = self._left(method, path)
            deadline = None
            if left is not None:
                # The whole answer, its headers and its body, within the time left.
                deadline = time.monotonic() + left
                request.extensions["timeout"] = _shrunk(request.extensions.get("timeout"), left)
                request.extensions["deadline"] = deadline
            try:
                answer = self._inner.handle_request(request)
                if deadline is not None:
                    answer.stream = ReadWithin(answer.stream, deadline, request)
                # Read the body here, not later in httpx's client: a connection lost halfway
                # through a create's 201 must count as "sent, outcome unknown", and a GET's
                # as retryable, like any other drop.
                try:
                    response = _read_bounded(answer, request, method, path)
                finally:
                    answer.close()
            except (httpx.ConnectError, httpx.ConnectTimeout, httpx.PoolTimeout) as exc:
                # No connection was made, so nothing reached Cliniko: safe for every method.
                failures += 1
                delay = self._retry_delay(failures, waited)
                if delay is None:
                    raise errors.ConnectionFailed(
                        f"could not reach Cliniko for {method} {path} after {failures} attempts "
                        f"({type(exc).__name__})"
                    ) from exc
                waited += self._back_off(delay, failures, method, path, type(exc).__name__)
                continue
            except httpx.TransportError as exc:
                if not safe:
                    raise errors.CreateOutcomeUnknown(
                        f"{method} {path} was sent but no answer came ({type(exc).__name__}); "
                        "Cliniko may or may not have made the contact: deduplicate before retrying"
                    ) from exc
                failures += 1
                delay = self._retry_delay(failures, waited)
                if delay is None:
                    raise errors.ConnectionFailed(
                        f"no answer from Cliniko for {method} {path} after {failures} attempts "
                        f"({type(exc).__name__})"
                    ) from exc
                waited += self._back_off(delay, failures, method, path, type(exc).__name__)
                continue

            status = response.status_code
            if status < 400:
                return response

            if status == 429:
                throttles += 1
                wait, reset_at = rate_limit_wait(response.headers, self._clock.time())
                wait += policy.reset_margin
                # Hold the budget (the process's, and the shared one when there is one) even
                # when this request gives up: the window is spent for every sender of the key,
                # and a process that kept sending into it would only collect more 429s. Never
                # longer than a window: a reset further off is a header or a clock gone wrong,
                # and a 429 after the hold brings a fresh one.
                self._budget.hold(min(wait, LONGEST_HOLD_SECONDS))
                left = self.time_left()
                if (
                    throttles > policy.max_rate_limit_waits
                    or wait > policy.max_rate_limit_wait
                    or waited + wait > policy.max_total_wait
                    or (left is not None and wait > left - MIN_ATTEMPT_SECONDS)
                ):
                    raise errors.RateLimited(
                        f"Cliniko's rate limit held {method} {path} (429); the window resets in "
                        f"{wait:.1f}s, beyond the retry policy",
                        reset_at=reset_at,
                    )
                logger.info(
                    "Cliniko throttled %s %s (429); waiting %.2fs for the window to reset "
                    "(wait %d of %d)",
                    method,
                    path,
                    wait,
                    throttles,
                    policy.max_rate_limit_waits,
                )
                # The hold above makes every thread (and process) wait, not just this one; the
                # next acquire() does the sleeping (and counts it).
                continue

            if status >= 500 and not safe:
                raise errors.CreateOutcomeUnknown(
                    f"Cliniko answered {method} {path} with {status}; the contact may or may not "
                    "have been made: deduplicate before retrying",
                    status_code=status,
                )
            if status in RETRYABLE_STATUSES and safe:
                failures += 1
                delay = self._retry_delay(failures, waited)
                if delay is not None:
                    waited += self._back_off(delay, failures, method, path, str(status))
                    continue
            raise error_for_response(
                status,
                response.content,
                response.headers,
                shard=self._shard,
                method=method,
                path=path,
                now=self._clock.time(),
            )

    def _retry_delay(self, failures: int, waited: float) -> float | None:
        """The backoff before the next attempt, or None when the policy says stop."""
        if failures >= self._policy.max_attempts:
            return None
        delay = self._policy.backoff(failures, self._rng)
        if waited + delay > self._policy.max_total_wait:
            return None
        left = self.time_left()
        if left is not None and delay > left - MIN_ATTEMPT_SECONDS:
            return None
        return delay

    def finish_within(self, time_left: TimeLeft | None) -> None:
        """Bound every request from now on by `time_left()` (None: no bound). A client kept
        across invocations is given each invocation's."""
        self.time_left = time_left or _unbounded

    def _left(self, method: str, path: str) -> float | None:
        """The time left for the next attempt; `OutOfTime` when too little is."""
        left = self.time_left()
        if left is not None and left < MIN_ATTEMPT_SECONDS:
            raise errors.OutOfTime(
                f"no time left in this invocation for {method} {path} ({max(left, 0):.1f}s); "
                "nothing more was sent"
            )
        return left

    def _back_off(self, delay: float, failures: int, method: str, path: str, reason: str) -> float:
        logger.info(
            "Cliniko %s %s failed (%s); retrying in %.2fs (attempt %d of %d)",
            method,
            path,
            reason,
            delay,
            failures + 1,
            self._policy.max_attempts,
        )
        self._clock.sleep(delay)
        return delay

    def close(self) -> None:
        self._inner.close()


def _read_bounded(
    answer: httpx.Response, request: httpx.Request, method: str, path: str
) -> httpx.Response:
    """`answer` read and decoded, as a response httpx will not decode again, never more than
    MAX_ANSWER_BYTES of it held (httpx's own read inflates each chunk whole and joins them all,
    whatever their size). A success longer than that, or one that does not decode, is an
    `UnexpectedResponse` with its status (a create's 2xx may still have made the contact); of
    an error only its beginning is kept, which is all error_for_response reads."""
    status = answer.status_code
    coding = answer.headers.get("content-encoding", "identity").strip().lower()
    inflate = zlib.decompressobj(_INFLATE_WBITS[coding]) if coding in _INFLATE_WBITS else None
    body = bytearray()
    problem = None
    too_long = False
    if inflate is None and coding not in ("", "identity"):
        problem = "is in an encoding not asked for"
    else:
        try:
            # Its stream, not iter_raw(): an answer a test's transport has read already is
            # read again, as it came.
            for raw in cast(Iterable[bytes], answer.stream):
                while raw and len(body) <= MAX_ANSWER_BYTES:
                    room = MAX_ANSWER_BYTES + 1 - len(body)
                    if inflate is None:
                        body += raw[:room]
                        raw = b""
                    else:
                        body += inflate.decompress(raw, room)
                        raw = inflate.unconsumed_tail
                if len(body) > MAX_ANSWER_BYTES:
                    break
            else:
                if inflate is not None:
                    body += inflate.flush()
        except zlib.error:
            problem = f"does not decode as {coding}"
        if len(body) > MAX_ANSWER_BYTES:
            problem = f"is longer than {MAX_ANSWER_BYTES // 2**20} MiB; it was not read further"
            too_long = True
    if problem is not None:
        if status < 400:
            refused = errors.AnswerTooLong if too_long else errors.UnexpectedResponse
            raise refused(f"Cliniko's answer to {method} {path} {problem}", status_code=status)
        del body[MAX_ANSWER_BYTES:]
    headers = [
        (name, value)
        for name, value in answer.headers.raw
        if name.lower() not in (b"content-encoding", b"content-length")
    ]
    return httpx.Response(
        status, headers=headers, content=bytes(body), request=request, extensions=answer.extensions
    )


def _unbounded() -> float | None:
    return None


def _shrunk(timeout: Any, left: float) -> dict[str, float | None]:
    """httpx's per-request timeouts (connect, read, write, pool), none longer than `left`."""
    given = timeout if isinstance(timeout, dict) else {}
    return {
        name: left if given.get(name) is None else min(given[name], left)
        for name in ("connect", "read", "write", "pool")
    }
