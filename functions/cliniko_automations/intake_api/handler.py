"""HTTP API Lambda for `POST /forms/{source}`: a verified submission is queued and answered 202.

Thin on purpose: it takes the raw bytes out of the API Gateway v2 event, hands them to the core
(`accept.accept`), queues what is accepted and maps every refusal to an answer in one place:

- 202 `{"submission_id": ...}` once SQS holds it (303 to the success page for a browser form);
  200 for an authentic delivery that is not a submission (Typeform partial responses);
- 400 malformed, 401 signature/token, 403 origin/captcha, 404 unknown source, 413 too large,
  415 content type, 422 `{"message": "Validation failed", "errors": {field: message}}`;
- 503 with Retry-After when SQS, Secrets Manager or the captcha service fails, or for any
  unexpected error: providers retry a 503 (Typeform, Tally, Webflow all do), so a passing
  outage or a bug loses nothing, where a 500 might not be retried. Never a 500; never a
  stack trace to the caller; the log gets the error's type and where it was raised, not its
  message (which could quote submitted values).

Logs carry source, provider, submission_id, outcome and field NAMES only.
"""

from __future__ import annotations

import base64
import binascii
import functools
import os
import traceback
from pathlib import Path
from typing import Any

from aws_lambda_powertools import Metrics
from aws_lambda_powertools.event_handler import APIGatewayHttpResolver, Response
from aws_lambda_powertools.event_handler.exceptions import NotFoundError
from aws_lambda_powertools.logging import correlation_paths
from aws_lambda_powertools.metrics import MetricUnit
from aws_lambda_powertools.utilities.typing import LambdaContext

from cliniko_automations.common.accounts import load_accounts
from cliniko_automations.common.config_file import ConfigError
from cliniko_automations.common.logs import function_logger
from cliniko_automations.common.misconfiguration import Misconfiguration, diagnose, report
from cliniko_automations.common.person_keys import email_hash
from cliniko_automations.common.secrets import SecretUnavailable, read_secret
from cliniko_automations.intake.config import FormSources, load_form_sources
from cliniko_automations.intake.submission import Submission
from cliniko_automations.intake_api.accept import (
    Accepted,
    Dropped,
    Ignored,
    IntakeRequest,
    Services,
    accept,
)
from cliniko_automations.intake_api.captcha import verify_captcha
from cliniko_automations.intake_api.errors import (
    FieldsInvalid,
    IntakeError,
    MalformedBody,
    ServiceUnavailable,
)
from cliniko_automations.intake_api.queue import SubmissionQueue
from cliniko_automations.intake_api.responses import (
    RETRY_AFTER_SECONDS,
    json_response,
    redirect,
    unavailable,
)
from cliniko_automations.intake_api.settings import ApiSettings, SettingsError

logger = function_logger("intake")
# A namespace is required to flush metrics; without one the flush would raise after the answer
# was built and API Gateway would turn that into a 500. The template sets the same value.
metrics = Metrics(
    service="intake",
    namespace=os.environ.get("POWERTOOLS_METRICS_NAMESPACE") or "ClinikoAutomations",
)
app = APIGatewayHttpResolver()


@functools.lru_cache(maxsize=8)
def _form_sources(path: str | None, accounts_path: str | None) -> FormSources:
    # Parsed once per container (and per file, so tests can point FORM_SOURCES_FILE elsewhere).
    return load_form_sources(path, load_accounts(accounts_path).accounts)


@app.post("/forms/<source>")
def post_form(source: str) -> Response[str]:
    settings = ApiSettings.from_env()
    sources = _form_sources(settings.form_sources_file, settings.cliniko_accounts_file)
    configured = sources.sources.get(source)
    # The path is the sender's text until it names a configured source: log only known names.
    logger.append_keys(
        source=configured.name if configured else "(unknown)",
        provider=configured.provider if configured else None,
    )
    event = app.current_event
    request = IntakeRequest(
        source=source,
        body=raw_body(event.raw_event),
        headers={name.lower(): value for name, value in (event.headers or {}).items()},
        query=dict(event.query_string_parameters or {}),
        source_ip=event.request_context.http.source_ip,
    )
    services = Services(
        sources=sources,
        read_secret=functools.partial(read_secret, prefix=settings.secrets_prefix),
        verify_captcha=verify_captcha,
        max_body_bytes=settings.max_body_bytes,
    )
    outcome = accept(request, services)

    if isinstance(outcome, Ignored):
        logger.info(
            "Delivery acknowledged, not a submission",
            extra={"outcome": "ignored", "reason": outcome.why},
        )
        return json_response(200, {"message": "Ignored: not a submission"})
    if isinstance(outcome, Dropped):
        # Answered exactly as an accepted submission so a bot learns nothing.
        _count_rejected(outcome.why)
        logger.info("Submission dropped", extra={"outcome": "dropped", "reason": outcome.why})
        return redirect(outcome.redirect_to, outcome.cors_origin)

    _queue(outcome, settings)
    submission = outcome.submission
    metrics.add_metric(name="SubmissionAccepted", unit=MetricUnit.Count, value=1)
    logger.info(
        "Submission accepted",
        extra={
            "outcome": "accepted",
            "submission_id": submission.submission_id,
            "fields": sorted(submission.draft.cliniko_fields()),
            "keyed_by": "content" if ":sha256:" in submission.idempotency_key else "provider_id",
        },
    )
    if outcome.redirect_to:
        return redirect(outcome.redirect_to, outcome.cors_origin)
    return json_response(202, {"submission_id": submission.submission_id})


def _email_hmac(submission: Submission, settings: ApiSettings) -> str | None:
    """The keyed hash erasure finds this submission's body by (the erasure's own helper)."""
    email = submission.draft.lookup_email
    if not email:
        return None
    try:
        return email_hash(read_secret(settings.pepper_secret_name), email)
    except SecretUnavailable:
        raise ServiceUnavailable("secrets", "pepper") from None


def _queue(outcome: Accepted, settings: ApiSettings) -> None:
    try:
        SubmissionQueue(settings.submission_queue_url, settings.submission_table).send(
            outcome.submission, _email_hmac(outcome.submission, settings)
        )
    except ServiceUnavailable as exc:
        if outcome.redirects is not None:
            exc.redirect_to = outcome.redirects.error_url_for(exc.reason)
            exc.cors_origin = outcome.cors_origin
        raise


def raw_body(event: dict[str, Any]) -> bytes:
    """The body's bytes as the sender sent them: signatures are checked on these."""
    body: str | None = event.get("body")
    if not body:
        return b""
    if event.get("isBase64Encoded"):
        try:
            return base64.b64decode(body, validate=True)
        except (binascii.Error, ValueError):
            raise MalformedBody("body is not valid base64") from None
    # surrogatepass: a lone surrogate in the event's text becomes bytes that are not UTF-8,
    # refused by the parsers as malformed instead of raising here.
    return body.encode("utf-8", "surrogatepass")


@app.exception_handler(IntakeError)  # type: ignore[untyped-decorator]  # Powertools: exception_handler is unannotated
def _refused(exc: IntakeError) -> Response[str]:
    _count_rejected(exc.reason)
    extra: dict[str, Any] = {"outcome": "rejected", "reason": exc.reason, "status": exc.status}
    if exc.detail:
        extra["detail"] = exc.detail
    if isinstance(exc, FieldsInvalid):
        extra["fields"] = sorted(exc.errors)
    problem = _misconfiguration(exc)
    if problem is not None:
        report(problem, logger=logger, metrics=metrics, **extra)
    elif isinstance(exc, ServiceUnavailable):
        extra |= {"dependency": exc.dependency, "error_type": exc.error_type}
        logger.error("Submission not accepted: a dependency failed", extra=extra)
    else:
        logger.info("Submission refused", extra=extra)
    headers = {"Retry-After": RETRY_AFTER_SECONDS} if exc.status == 503 else {}
    if exc.redirect_to:
        return redirect(exc.redirect_to, exc.cors_origin)
    return json_response(exc.status, exc.body(), headers)


def _misconfiguration(exc: IntakeError) -> Misconfiguration | None:
    """A secret the operator must create or rename (the provider is answered 503 and retries)."""
    if not isinstance(exc, ServiceUnavailable) or exc.__cause__ is None:
        return None
    name = getattr(exc.__cause__, "name", None)
    settings = ApiSettings.from_env()
    sources = _form_sources(settings.form_sources_file, settings.cliniko_accounts_file)
    where = ", ".join(w for w, n in sources.secret_references() if n == name) or None
    return diagnose(exc.__cause__, where=f"form_sources.yaml {where}" if where else None)


@app.not_found
def _no_route(exc: NotFoundError) -> Response[str]:
    _count_rejected("no_route")
    return json_response(404, {"message": "Not found"})


@app.exception_handler([ConfigError, SettingsError])  # type: ignore[untyped-decorator]  # Powertools: exception_handler is unannotated
def _misconfigured(exc: Exception) -> Response[str]:
    # These messages name settings and config paths, never request content: log them whole.
    _count_rejected("misconfigured")
    logger.error(
        "Deployment misconfigured",
        extra={"outcome": "error", "error_type": type(exc).__name__, "problem": str(exc)},
    )
    return unavailable()


@app.exception_handler(Exception)  # type: ignore[untyped-decorator]  # Powertools: exception_handler is unannotated
def _unexpected(exc: Exception) -> Response[str]:
    # The message may quote submitted values: log the type and the raising line only.
    # The deepest frame in our own code says most; a library frame if ours is not involved.
    frames = traceback.extract_tb(exc.__traceback__)
    ours = [frame for frame in frames if "cliniko_automations" in frame.filename]
    frame = (ours or frames)[-1] if (ours or frames) else None
    where = f"{Path(frame.filename).name}:{frame.lineno}" if frame else None
    _count_rejected("internal")
    logger.error(
        "Unexpected error",
        extra={"outcome": "error", "error_type": type(exc).__name__, "at": where},
    )
    return unavailable()


def _count_rejected(reason: str) -> None:
    # One outcome per invocation, so the dimension only ever applies to this metric.
    metrics.add_dimension(name="reason", value=reason)
    metrics.add_metric(name="SubmissionRejected", unit=MetricUnit.Count, value=1)


@logger.inject_lambda_context(
    correlation_id_path=correlation_paths.API_GATEWAY_HTTP, clear_state=True
)
@metrics.log_metrics
def lambda_handler(event: dict[str, Any], context: LambdaContext) -> dict[str, Any]:
    return app.resolve(event, context)
