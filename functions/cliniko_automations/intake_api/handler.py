"""HTTP API Lambda for `POST /forms/{source}`: a verified submission is queued and answered 202.

Thin on purpose: the route hands the request to the core (`accept.accept`), queues what is
accepted (`wiring.py`), and every refusal is mapped to an answer once, by the exception
handlers below (their log lines and metrics in `telemetry.py`):

- 202 `{"submission_id": ...}` once SQS holds it (303 to the success page for a browser form),
  with `"left_out": [field, ...]` when an optional choice's answer matched none of Cliniko's,
  `"held": "source_hourly_ceiling"` when its source's hourly ceiling was reached and it waits
  on the parked queue for staff;
  200 for an authentic delivery that is not a submission (Typeform partial responses);
- 400 malformed (an event that is not API Gateway's too: `common/http_events.py`),
  401 signature/token, 403 origin/captcha, 404 unknown source, 413 too large, 415 content type,
  422 `{"message": "Validation failed", "errors": {field: message}}`;
- 503 with Retry-After when SQS, Secrets Manager or the captcha service fails, or for any
  unexpected error: providers retry a 503 (Typeform, Tally, Webflow all do), so a passing
  outage or a bug loses nothing, where a 500 might not be retried. Never a 500; never a
  stack trace to the caller.
"""

from __future__ import annotations

from typing import Any

from aws_lambda_powertools.event_handler import APIGatewayHttpResolver, Response
from aws_lambda_powertools.event_handler.exceptions import NotFoundError
from aws_lambda_powertools.logging import correlation_paths
from aws_lambda_powertools.utilities.typing import LambdaContext

from cliniko_automations.common.config_file import ConfigError
from cliniko_automations.common.http_events import is_http_api_event, refusal
from cliniko_automations.common.import_collector import import_finished
from cliniko_automations.common.secrets import prefetch_secrets
from cliniko_automations.intake_api import telemetry, wiring
from cliniko_automations.intake_api.accept import Dropped, Ignored, accept
from cliniko_automations.intake_api.errors import IntakeError, OriginNotAllowed
from cliniko_automations.intake_api.http_request import intake_request
from cliniko_automations.intake_api.misconfiguration import secret_misconfiguration
from cliniko_automations.intake_api.responses import (
    ORIGIN_REFUSED_PAGE,
    RETRY_AFTER_SECONDS,
    json_response,
    page_response,
    redirect,
    unavailable,
    wants_a_page,
)
from cliniko_automations.intake_api.settings import ApiSettings, SettingsError

logger, metrics = telemetry.logger, telemetry.metrics
# debug=False whatever POWERTOOLS_DEV or POWERTOOLS_EVENT_HANDLER_DEBUG say: debug mode
# prints every event, submitted values included, past the logs' redaction.
app = APIGatewayHttpResolver(debug=False)


@app.post("/forms/<source>")
def post_form(source: str) -> Response[str]:
    settings = ApiSettings.from_env()
    services = wiring.services(settings)
    telemetry.name_source(services.sources.sources.get(source))
    outcome = accept(intake_request(source, app.current_event), services)
    if isinstance(outcome, Ignored):
        telemetry.report_ignored(outcome)
        return json_response(200, {"message": "Ignored: not a submission"})
    if isinstance(outcome, Dropped):
        # Answered exactly as an accepted submission so a bot learns nothing.
        telemetry.report_dropped(outcome)
        return redirect(outcome.redirect_to, outcome.cors_origin)
    outcome = wiring.queue_accepted(outcome, settings)
    telemetry.report_accepted(outcome)
    if outcome.redirect_to:
        # Held or not, the person's details are kept: the page thanks them either way.
        return redirect(outcome.redirect_to, outcome.cors_origin)
    answer: dict[str, Any] = {"submission_id": outcome.submission.submission_id}
    if outcome.left_out:  # a script's developer sees what its answers did not match
        answer["left_out"] = list(outcome.left_out)
    if outcome.held:  # kept for staff, not sent to Cliniko: a sender need not send it again
        answer["held"] = outcome.held
    return json_response(202, answer)


@app.exception_handler(IntakeError)  # type: ignore[untyped-decorator]  # Powertools: exception_handler is unannotated
def _refused(exc: IntakeError) -> Response[str]:
    telemetry.report_refused(exc, secret_misconfiguration(exc))
    if exc.redirect_to:
        return redirect(exc.redirect_to, exc.cors_origin)
    if isinstance(exc, OriginNotAllowed) and wants_a_page(app.current_event.headers or {}):
        return page_response(exc.status, ORIGIN_REFUSED_PAGE)
    headers = {"Retry-After": RETRY_AFTER_SECONDS} if exc.status == 503 else {}
    return json_response(exc.status, exc.body(), headers)


@app.not_found
def _no_route(exc: NotFoundError) -> Response[str]:
    telemetry.count_rejected("no_route")
    return json_response(404, {"message": "Not found"})


@app.exception_handler([ConfigError, SettingsError])  # type: ignore[untyped-decorator]  # Powertools: exception_handler is unannotated
def _misconfigured(exc: Exception) -> Response[str]:
    telemetry.report_misconfigured(exc)
    return unavailable()


@app.exception_handler(Exception)  # type: ignore[untyped-decorator]  # Powertools: exception_handler is unannotated
def _unexpected(exc: Exception) -> Response[str]:
    telemetry.report_unexpected(exc)
    return unavailable()


# log_event=False whatever POWERTOOLS_LOGGER_LOG_EVENT says: an event holds personal data.
@logger.inject_lambda_context(
    correlation_id_path=correlation_paths.API_GATEWAY_HTTP, clear_state=True, log_event=False
)
@metrics.log_metrics
def lambda_handler(event: dict[str, Any], context: LambdaContext) -> dict[str, Any]:
    if not is_http_api_event(event):
        telemetry.count_rejected("not_an_http_event")
        return refusal(400, "not an API Gateway HTTP API (payload 2.0) request")
    return app.resolve(event, context)


# The pepper's read starts now, during Lambda's init, and overlaps the first call's work.
prefetch_secrets(lambda: [ApiSettings.from_env().pepper_secret_name])

# Last: the import is over (common/import_collector.py).
import_finished()
