"""The intake's core: one verified request -> one Submission (or a reason to refuse it).

Plain Python: no API Gateway, no SQS. Secrets and captcha checks arrive as functions, so the
handler wires the real ones and tests pass their own. Checks run cheapest-first and nothing is
parsed before it is authenticated:

    source known (404) -> [html: origin allowed (403)] -> size (413) -> content type (415)
    -> signature / token (401) -> payload shape (400) -> non-submission events acknowledged
    -> [html: honeypot (dropped quietly)] -> mapping + Cliniko's rules (422)
    -> [html: captcha (403)]

Once a browser form's origin is trusted, every refusal carries the (allow-listed) error page
to send the browser to, instead of a bare status it would show as a blank page.
"""

from __future__ import annotations

import contextlib
import hmac
import uuid
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from urllib.parse import parse_qsl, urlencode, urlsplit, urlunsplit

from cliniko_automations.common.secret_text import trimmed
from cliniko_automations.intake.config import (
    ERROR_URL_FIELD,
    SUCCESS_URL_FIELD,
    Captcha,
    FormSource,
    FormSources,
    HtmlOptions,
)
from cliniko_automations.intake.submission import ContactDraft, Submission
from cliniko_automations.intake_api.errors import (
    BadSignature,
    BodyTooLarge,
    FieldsInvalid,
    IntakeError,
    OriginNotAllowed,
    ServiceUnavailable,
    UnknownSource,
    UnsupportedMediaType,
)
from cliniko_automations.intake_api.mapping import (
    answer_ids_for,
    given_differently,
    map_answers,
    unanswered_fields,
)
from cliniko_automations.intake_api.providers import ADAPTERS
from cliniko_automations.intake_api.providers.base import Answer, Delivery, as_text, sender_key
from cliniko_automations.intake_api.providers.forms import media_type
from cliniko_automations.intake_api.validation import validate_draft, without_unmatched_choices

# A Typeform delivery carries the form's whole definition beside the answers: a form of 40
# questions and one 249-country dropdown came to 37 kB, and two such dropdowns passed 64 KiB,
# the limit before, a 413 Typeform never delivers again.
DEFAULT_MAX_BODY_BYTES = 256 * 1024
# The stored submission is one DynamoDB item, 400 KB at most with its attribute names: one
# that would not fit is refused as too large here, not answered 503 by the store on every
# retry of its sender.
MAX_STORED_BYTES = 300 * 1024
# A source's submissions sent to the worker in an hour before the rest are held for staff
# (the template's IntakeSourceHourlyCeiling, a source's own `hourly_ceiling`): a busy
# clinic's form takes a few dozen an hour, a provider's redelivery after its outage a few
# hundred at once; the worker makes some 95 contacts a minute at most.
DEFAULT_SOURCE_HOURLY_CEILING = 300
HELD_OVER_CEILING = "source_hourly_ceiling"
# Providers whose submission id is the sender's own choice (a json source's Idempotency-Key,
# an HTML form's nonce field), not one a form service makes for each response.
SENDER_KEYED_PROVIDERS = frozenset({"json", "html"})
TOKEN_HEADER = "x-intake-token"  # noqa: S105 (a header name, not a secret)
TOKEN_QUERY = "token"  # noqa: S105 (a query parameter name)


@dataclass(frozen=True)
class IntakeRequest:
    source: str
    body: bytes  # the raw bytes as sent (base64 already undone)
    headers: Mapping[str, str]  # names lower-cased
    query: Mapping[str, str] = field(default_factory=dict)
    source_ip: str | None = None


@dataclass(frozen=True)
class Services:
    sources: FormSources
    read_secret: Callable[[str], str]
    verify_captcha: Callable[[Captcha, str, str | None, str | None], None]
    max_body_bytes: int = DEFAULT_MAX_BODY_BYTES
    clock: Callable[[], datetime] = lambda: datetime.now(UTC)
    # The values a signing secret or token may hold besides the cached one, asked for when a
    # delivery does not match it (`secrets.rotated_values`): just after a rotation.
    rotated_secret: Callable[[str], Sequence[str]] = lambda name: ()
    # Told whether each delivery checked against a source's secret matched it (True) or was
    # refused (False): FormSignatureRefusedAlarm tells a secret that no longer matches the
    # provider's (every delivery refused) from a forged post now and then.
    signature_checked: Callable[[bool], None] = lambda matched: None


@dataclass(frozen=True)
class Redirects:
    """Where a browser goes next: always one of the source's allow-listed pages."""

    success: str
    error: str

    @classmethod
    def pick(cls, html: HtmlOptions, success: Answer = None, error: Answer = None) -> Redirects:
        wanted_success, wanted_error = as_text(success), as_text(error)
        return cls(
            success=wanted_success if wanted_success in html.success_urls else html.success_urls[0],
            error=wanted_error if wanted_error in html.error_urls else html.error_urls[0],
        )

    def success_url(self, submission_id: str) -> str:
        return _with_query(self.success, {"submission_id": submission_id})

    def error_url(self, error: IntakeError, source: FormSource) -> str:
        if not isinstance(error, FieldsInvalid):
            return self.error_url_for(error.reason)
        # The form's own input names, so the page can point at them; never their values.
        names = [name for field_ in error.errors for name in answer_ids_for(field_, source)]
        return self.error_url_for(error.reason, list(dict.fromkeys(names)) or list(error.errors))

    def error_url_for(self, reason: str, fields: list[str] | None = None) -> str:
        params = {"error": reason}
        if fields:
            params["fields"] = ",".join(fields)
        return _with_query(self.error, params)


@dataclass
class _Browser:
    origin: str
    redirects: Redirects


@dataclass(frozen=True)
class Accepted:
    """Verified, mapped and valid: the handler queues `submission`."""

    submission: Submission
    redirects: Redirects | None = None
    cors_origin: str | None = None
    # Optional choice fields whose answer matched no choice, made without (their names).
    left_out: tuple[str, ...] = ()
    # Why it was held for staff instead of sent to the worker (its source's hourly ceiling),
    # once queued; None when the worker has it.
    held: str | None = None

    @property
    def redirect_to(self) -> str | None:
        return self.redirects.success_url(self.submission.submission_id) if self.redirects else None


@dataclass(frozen=True)
class Ignored:
    """Authentic, but not a submission (a Typeform partial response, another event type)."""

    source: str
    provider: str
    why: str


@dataclass(frozen=True)
class Dropped:
    """Spam caught by the honeypot: answered exactly like an accepted submission, not queued."""

    source: str
    provider: str
    submission_id: str
    redirect_to: str
    cors_origin: str
    why: str = "honeypot"


Outcome = Accepted | Ignored | Dropped


def accept(request: IntakeRequest, services: Services) -> Outcome:
    source = services.sources.sources.get(request.source)
    if source is None:
        raise UnknownSource()
    browser = None
    if source.html is not None:
        browser = _Browser(_trusted_origin(request, source.html), Redirects.pick(source.html))
    try:
        return _accept(request, source, services, browser)
    except IntakeError as exc:
        if browser is not None:
            exc.redirect_to = browser.redirects.error_url(exc, source)
            exc.cors_origin = browser.origin
        raise


def _accept(
    request: IntakeRequest, source: FormSource, services: Services, browser: _Browser | None
) -> Outcome:
    adapter = ADAPTERS[source.provider]
    if len(request.body) > services.max_body_bytes:
        raise BodyTooLarge(f"the limit is {services.max_body_bytes} bytes")
    content_type = _once(request.headers.get("content-type", ""))
    if media_type(content_type) not in adapter.content_types:
        raise UnsupportedMediaType(
            f"{source.provider} sources take {' or '.join(sorted(adapter.content_types))}"
        )
    delivery = Delivery(request.body, request.headers, request.query, content_type)
    now = services.clock()
    if source.signing_secret is not None and adapter.verify is not None:
        verify, at = adapter.verify, now.timestamp()
        _authenticate(services, source.signing_secret, lambda secret: verify(delivery, secret, at))
    if source.token_secret is not None:
        _authenticate(services, source.token_secret, lambda secret: _check_token(delivery, secret))

    parsed = adapter.parse(delivery)
    if parsed.ignored is not None:
        return Ignored(source.name, source.provider, parsed.ignored)
    answers = dict(parsed.answers)
    provider_submission_id = parsed.submission_id
    captcha_token: Answer = None
    if browser is not None and source.html is not None:
        html = source.html
        browser.redirects = Redirects.pick(
            html, answers.pop(SUCCESS_URL_FIELD, None), answers.pop(ERROR_URL_FIELD, None)
        )
        if html.nonce_field is not None:
            provider_submission_id = sender_key(as_text(answers.pop(html.nonce_field, None)))
        if html.honeypot_field is not None and as_text(answers.pop(html.honeypot_field, None)):
            dropped_id = str(uuid.uuid4())
            return Dropped(
                source.name,
                source.provider,
                dropped_id,
                browser.redirects.success_url(dropped_id),
                browser.origin,
            )
        if html.captcha is not None:
            captcha_token = answers.pop(html.captcha.token_field, None)

    fields = map_answers(answers, source)
    left_out: tuple[str, ...] = ()
    if browser is None:
        fields, left_out = without_unmatched_choices(fields, source)
    draft = validate_draft(fields, source, given_differently(answers, source))
    if browser is not None and source.html is not None and source.html.captcha is not None:
        # After the fields are found valid: siteverify takes a token once, and the person
        # sent back to fix a field returns to the page still holding it (the back button).
        captcha = source.html.captcha
        services.verify_captcha(
            captcha, _secret(services, captcha.secret), _first(captcha_token), request.source_ip
        )
    submission = Submission(
        submission_id=str(uuid.uuid4()),
        idempotency_key=idempotency_key(
            source.name,
            provider_submission_id,
            draft,
            sender_chosen=source.provider in SENDER_KEYED_PROVIDERS,
        ),
        source=source.name,
        provider=source.provider,
        account=source.account,
        received_at=now,
        update_policy=source.update_policy,
        draft=draft,
        submitted_at=parsed.submitted_at,
        # A default standing in for an answer left out is not the person's answer either.
        unanswered=tuple(
            sorted({*unanswered_fields(fields, answers, source), *set(left_out) & set(fields)})
        ),
    )
    if len(submission.to_json().encode("utf-8")) > MAX_STORED_BYTES:
        raise BodyTooLarge(f"the submission's fields come to over {MAX_STORED_BYTES} bytes")
    return Accepted(
        submission,
        browser.redirects if browser else None,
        browser.origin if browser else None,
        left_out,
    )


def idempotency_key(
    source: str, provider_submission_id: str | None, draft: ContactDraft, *, sender_chosen: bool
) -> str:
    """`<source>:<provider id>`; `<source>:<sender's key>:<hash of whom the draft names>` when
    the sender chose the id (`sender_chosen`: a json source's Idempotency-Key, an HTML form's
    nonce); `<source>:sha256:<hash of the draft>` when there is none.

    The content hash covers the normalised draft (not the raw body), so a redelivery, a double
    click or a re-serialised payload with the same content all land on the same key. A form
    service makes one id per response; a sender's key may come again for another person (a
    constant, a counter reset by a restart, a nonce on a cached page): taken for a
    redelivery, that person would be answered from the first one's outcome and never reach
    Cliniko. Qualified by the person (`ContactDraft.person_digest`), not by every field, a
    retry of the same person stays a redelivery when its other fields or the source's
    mapping changed in between, and so stays dropped after that person's erasure.
    """
    if provider_submission_id and sender_chosen:
        return f"{source}:{provider_submission_id}:{draft.person_digest()}"
    if provider_submission_id:
        return f"{source}:{provider_submission_id}"
    return f"{source}:sha256:{draft.digest()}"


def _trusted_origin(request: IntakeRequest, html: HtmlOptions) -> str:
    origin = (request.headers.get("origin") or "").strip()
    if not origin:
        # Fetch has browsers send Origin with every POST, unless a privacy setting stops it
        # (Firefox's network.http.sendOriginHeader=0); the page's address still comes as
        # Referer, which no other page can make a browser send either (Django's CSRF check
        # reads it the same way).
        origin = _referer_origin(request.headers.get("referer") or "") or ""
        if not origin:
            raise OriginNotAllowed("Origin header missing")
    for allowed in html.allowed_origins:
        if origin.lower() == allowed.lower():
            return allowed
    if origin == "null":
        # What a browser sends for a form posted from a page whose Referrer-Policy is
        # no-referrer or same-origin (Fetch, "append a request Origin header"): the clinic's
        # own page, refused, unless the log says why.
        raise OriginNotAllowed(
            "Origin null: the page's Referrer-Policy (no-referrer or same-origin) hides it"
        )
    raise OriginNotAllowed()


def _referer_origin(referer: str) -> str | None:
    """`scheme://host[:port]` of a Referer; None when it is no http(s) URL."""
    try:
        parts = urlsplit(referer.strip())
    except ValueError:  # a malformed IPv6 host
        return None
    if parts.scheme not in ("http", "https") or not parts.netloc or "@" in parts.netloc:
        return None
    return f"{parts.scheme}://{parts.netloc}"


def _check_token(delivery: Delivery, expected: str) -> None:
    given = delivery.header(TOKEN_HEADER) or delivery.query.get(TOKEN_QUERY)
    if not given:
        raise BadSignature("token missing (X-Intake-Token header or ?token=)")
    if not hmac.compare_digest(given.encode("utf-8", "surrogatepass"), expected.encode("utf-8")):
        raise BadSignature("token does not match")


def _authenticate(services: Services, name: str, check: Callable[[str], None]) -> None:
    """`check` the delivery with secret `name`; when it does not match, with the values the
    secret may hold besides the cached one: a delivery signed just after a rotation is not
    refused (a 401 is not delivered again), a forged one still is."""
    try:
        check(_secret(services, name))
    except BadSignature as refused:
        try:
            others = services.rotated_secret(name)
        except Exception as exc:  # as any failure to read a secret: the provider should retry
            raise ServiceUnavailable("secrets", type(exc).__name__) from exc
        for value in others:
            with contextlib.suppress(BadSignature):
                check(trimmed(value))
                services.signature_checked(True)
                return
        services.signature_checked(False)
        raise refused
    services.signature_checked(True)


def _secret(services: Services, name: str) -> str:
    try:
        value = services.read_secret(name)
    except Exception as exc:  # any failure to read a secret: the provider should retry
        # Chained: the handler tells an operator's mistake (a missing secret) from an outage.
        raise ServiceUnavailable("secrets", type(exc).__name__) from exc
    # A secret stored from a file (`--secret-string file://...`) keeps the file's last line
    # break (and its byte-order mark), which no provider signs with: every delivery was
    # refused 401. The Cliniko keys are read so too.
    value = trimmed(value)
    if not value:
        raise ServiceUnavailable("secrets", "empty secret")
    return value


def _once(header: str) -> str:
    """A header a sender set twice alike (a proxy adding its own Content-Type beside the
    client's): API Gateway joins the two with a comma, and "application/json,application/json"
    is no media type. Values that differ stay as sent, refused as they are."""
    values = {value.strip().lower() for value in header.split(",")}
    return header.split(",", 1)[0].strip() if len(values) == 1 else header


def _first(answer: Answer) -> str | None:
    if isinstance(answer, list):
        answer = answer[0] if answer else None
    return as_text(answer) or None


def _with_query(url: str, params: Mapping[str, str]) -> str:
    parts = urlsplit(url)
    query = [*parse_qsl(parts.query, keep_blank_values=True), *params.items()]
    return urlunsplit(parts._replace(query=urlencode(query)))
