"""HTTP API for erasure requests (both routes behind AWS_IAM authorisation).

POST /erasure-requests        body: {request_id, contact_id?, email?, account?, reason,
                                     dry_run?, erase_all_matches?}
GET  /erasure-requests/{id}   status and outcome of a request (with its due date and receipt)
POST /erasure-requests/{id}/extension   body: {reason}; due date + 2 months, within the first

The handler is thin: identity check, parse (api_io.py), call the core (wiring in
service.py), map domain errors to HTTP once.
"""

from __future__ import annotations

from http import HTTPStatus
from typing import Any

from aws_lambda_powertools import Metrics
from aws_lambda_powertools.event_handler import APIGatewayHttpResolver, Response
from aws_lambda_powertools.event_handler.exceptions import ServiceError
from aws_lambda_powertools.metrics import MetricUnit
from aws_lambda_powertools.utilities.idempotency.exceptions import (
    IdempotencyPersistenceLayerError,
)
from aws_lambda_powertools.utilities.typing import LambdaContext
from botocore.exceptions import BotoCoreError, ClientError

from cliniko_automations.cliniko.errors import ClinikoError, ConfigurationError
from cliniko_automations.common.http_events import is_http_api_event, refusal
from cliniko_automations.common.import_collector import import_finished
from cliniko_automations.common.logs import function_logger
from cliniko_automations.common.misconfiguration import report_account_key
from cliniko_automations.common.plain_data import as_data
from cliniko_automations.common.secrets import SecretUnavailable, prefetch_secrets
from cliniko_automations.erasure.api_io import (
    Unauthenticated,
    extension_reason,
    iam_caller,
    json_answer,
    request_body,
    unavailable,
)
from cliniko_automations.erasure.errors import (
    ExtensionRefused,
    InvalidRequest,
    OverHourlyLimit,
    RequestIdConflict,
    RequestInProgress,
    RequestNotFound,
    SeveralMatches,
)
from cliniko_automations.erasure.models import ErasureRequest, Outcome
from cliniko_automations.erasure.service import build_eraser, secrets_read
from cliniko_automations.erasure.settings import ErasureSettings, SettingsError
from cliniko_automations.erasure.workflow import Eraser

logger = function_logger("erasure")
metrics = Metrics(service="erasure")
# debug=False whatever POWERTOOLS_DEV or POWERTOOLS_EVENT_HANDLER_DEBUG say: debug mode
# prints every event, submitted values included, past the logs' redaction.
app = APIGatewayHttpResolver(debug=False)
UNAUTHENTICATED = "a SigV4-signed IAM caller is required"


def _eraser() -> Eraser:
    return build_eraser(ErasureSettings.from_env(), app.lambda_context, on_key_refused=_key_refused)


def _key_refused(account: str, secret: str, error: ClinikoError) -> None:
    # The caller is answered 502 naming the key, but the same key stops the account's intake:
    # the on-call hears of it the same day (ErasureMisconfigurationAlarm), as from the intake,
    # the cleanup and the change feed, not a month on when the request falls overdue.
    report_account_key(error, account, secret, logger=logger, metrics=metrics)


def _outcome_response(outcome: Outcome) -> Response[str]:
    status = HTTPStatus.BAD_GATEWAY if outcome.status == "failed" else HTTPStatus.OK
    return json_answer(status, as_data(outcome))


@app.post("/erasure-requests")
def create_request() -> Response[str]:
    caller = iam_caller(app.current_event)
    request = ErasureRequest.parse(request_body(app.current_event))
    logger.append_keys(erasure_request_id=request.request_id)
    outcome = _eraser().submit(request, caller)
    logger.info(
        "erasure request handled",
        extra={
            "status": outcome.status,
            "result": outcome.result,
            "dry_run": outcome.dry_run,
            "contact_ids": outcome.contact_ids,
            "accounts": sorted(outcome.accounts),
            "cliniko_requests": outcome.cliniko_requests,
        },
    )
    metrics.add_metric(name=f"Erasure{outcome.status.title()}", unit=MetricUnit.Count, value=1)
    # ContactsErasedAlarm: a caller that stays under the hourly ceiling (one erasure every few
    # minutes) is never refused; the day's count tells of it. A stored outcome answered again
    # made no Cliniko request and erased nobody now.
    erased = (
        sum(1 for contact in outcome.contacts if contact.action == "scrubbed_and_archived")
        if outcome.cliniko_requests and not outcome.dry_run
        else 0
    )
    metrics.add_metric(name="ContactsErased", unit=MetricUnit.Count, value=erased)
    return _outcome_response(outcome)


@app.get("/erasure-requests/<request_id>")
def get_request(request_id: str) -> Response[str]:
    iam_caller(app.current_event)
    outcome = _eraser().status(request_id)
    return json_answer(HTTPStatus.OK, as_data(outcome, exclude={"cliniko_requests"}))


@app.post("/erasure-requests/<request_id>/extension")
def extend_request(request_id: str) -> Response[str]:
    caller = iam_caller(app.current_event)
    reason = extension_reason(app.current_event)
    outcome = _eraser().extend(request_id, reason, caller)
    logger.info("erasure request extended", extra={"erasure_request_id": request_id})
    return json_answer(HTTPStatus.OK, as_data(outcome, exclude={"cliniko_requests"}))


def _refused(reason: str) -> None:
    metrics.add_dimension(name="reason", value=reason)
    metrics.add_metric(name="ErasureRequestRefused", unit=MetricUnit.Count, value=1)


@app.exception_handler(Unauthenticated)  # type: ignore[untyped-decorator]  # Powertools: exception_handler is unannotated
def _unauthenticated(_: Unauthenticated) -> Response[str]:
    logger.warning("erasure call without IAM identity refused")
    _refused("unauthenticated")
    return json_answer(HTTPStatus.FORBIDDEN, {"message": UNAUTHENTICATED})


@app.exception_handler(InvalidRequest)  # type: ignore[untyped-decorator]  # Powertools: exception_handler is unannotated
def _invalid(error: InvalidRequest) -> Response[str]:
    # Field names and rule messages only: the input values are never echoed or logged.
    logger.info("erasure request rejected", extra={"fields": sorted(error.problems)})
    _refused("invalid")
    return json_answer(
        HTTPStatus.UNPROCESSABLE_ENTITY, {"message": "invalid request", "errors": error.problems}
    )


@app.exception_handler(SeveralMatches)  # type: ignore[untyped-decorator]  # Powertools: exception_handler is unannotated
def _several(error: SeveralMatches) -> Response[str]:
    logger.info("several contacts match", extra={"contact_ids": error.contact_ids})
    _refused("several_matches")
    return json_answer(
        HTTPStatus.CONFLICT,
        {
            "request_id": error.request_id,
            "status": "open",
            "result": "awaiting_confirmation",
            "contact_ids": error.contact_ids,
            "accounts": error.accounts,
            "message": str(error),
        },
    )


@app.exception_handler(OverHourlyLimit)  # type: ignore[untyped-decorator]  # Powertools: exception_handler is unannotated
def _over_hourly_limit(error: OverHourlyLimit) -> Response[str]:
    # ErasureHourlyLimitAlarm: a script looping over the wrong list, or a leaked credential,
    # is stopped at the ceiling and the on-call told within minutes, not at the month's end.
    logger.warning(
        "erasure refused: the stack's hourly ceiling",
        extra={"limit": error.limit, "used": error.used, "contacts": error.wanted},
    )
    _refused("hourly_limit")
    headers = {"Retry-After": str(error.retry_after)} if error.retry_after is not None else None
    return json_answer(HTTPStatus.TOO_MANY_REQUESTS, error.answer(), headers)


@app.exception_handler([RequestIdConflict, RequestInProgress, ExtensionRefused])  # type: ignore[untyped-decorator]  # Powertools: exception_handler is unannotated
def _conflict(error: RequestIdConflict | RequestInProgress | ExtensionRefused) -> Response[str]:
    logger.info("erasure request conflict", extra={"error": type(error).__name__})
    _refused("conflict")
    return json_answer(HTTPStatus.CONFLICT, {"request_id": error.request_id, "message": str(error)})


@app.exception_handler(RequestNotFound)  # type: ignore[untyped-decorator]  # Powertools: exception_handler is unannotated
def _not_found(error: RequestNotFound) -> Response[str]:
    return json_answer(HTTPStatus.NOT_FOUND, {"message": str(error)})


@app.exception_handler([SettingsError, SecretUnavailable, ConfigurationError])  # type: ignore[untyped-decorator]  # Powertools: exception_handler is unannotated
def _misconfigured(error: Exception) -> Response[str]:
    # These messages name variables and secrets, never their values.
    logger.error("erasure function misconfigured", extra={"problem": str(error)})
    _refused("misconfigured")  # ErasureUnavailableAlarm: answered, so no Lambda error
    return unavailable("erasure is not configured")


@app.exception_handler([BotoCoreError, ClientError, IdempotencyPersistenceLayerError])  # type: ignore[untyped-decorator]  # Powertools: exception_handler is unannotated
def _aws_failed(
    error: BotoCoreError | ClientError | IdempotencyPersistenceLayerError,
) -> Response[str]:
    # The audit or idempotency table (or another AWS service) failed or is missing: a
    # dependency failure, answered 503 so the caller sends the same request id again later.
    # Log the type and AWS's error code only: botocore's messages may quote request data.
    cause = error.__cause__ if isinstance(error, IdempotencyPersistenceLayerError) else error
    code = cause.response.get("Error", {}).get("Code") if isinstance(cause, ClientError) else None
    logger.error(
        "erasure request failed: an AWS dependency failed",
        extra={"error": type(error).__name__, "code": code},
    )
    _refused("unavailable")  # ErasureUnavailableAlarm: answered, so no Lambda error
    return unavailable("erasure is temporarily unavailable; send the same request again later")


@app.exception_handler(ServiceError)  # type: ignore[untyped-decorator]  # Powertools: exception_handler is unannotated
def _service_error(error: ServiceError) -> Response[str]:
    # Powertools' own errors (unknown route, wrong method) keep their status.
    return json_answer(HTTPStatus(error.status_code), {"message": error.msg})


@app.exception_handler(Exception)  # type: ignore[untyped-decorator]  # Powertools: exception_handler is unannotated
def _unexpected(error: Exception) -> Response[str]:
    # Log the type only: some exception texts (boto3, httpx) quote request data.
    logger.error("erasure request failed unexpectedly", extra={"error": type(error).__name__})
    _refused("internal")  # ErasureUnavailableAlarm: answered, so no Lambda error
    return json_answer(
        HTTPStatus.INTERNAL_SERVER_ERROR,
        {"message": "internal error; the request can be retried with the same request id"},
    )


# log_event=False whatever POWERTOOLS_LOGGER_LOG_EVENT says: an event holds personal data.
@logger.inject_lambda_context(clear_state=True, log_event=False)
@metrics.log_metrics
def lambda_handler(event: dict[str, Any], context: LambdaContext) -> dict[str, Any]:
    if not is_http_api_event(event):
        # Not from the API's AWS_IAM routes, so no identity either: refused as one without.
        logger.warning("erasure call without IAM identity refused")
        _refused("unauthenticated")
        return refusal(HTTPStatus.FORBIDDEN, UNAUTHENTICATED)
    return app.resolve(event, context)


# The key's and the pepper's reads start now, during Lambda's init, and overlap the first call.
prefetch_secrets(lambda: secrets_read(ErasureSettings.from_env()))

# Last: the import is over (common/import_collector.py).
import_finished()
