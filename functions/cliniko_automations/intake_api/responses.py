"""The intake API's answers: JSON bodies, browser redirects and the 503 providers retry."""

from __future__ import annotations

import json
from typing import Any

from aws_lambda_powertools.event_handler import Response

from cliniko_automations.intake_api.errors import ServiceUnavailable

# Providers retry a 503; this tells them when.
RETRY_AFTER_SECONDS = "30"


def unavailable() -> Response[str]:
    body = {"message": ServiceUnavailable.message}
    return json_response(503, body, {"Retry-After": RETRY_AFTER_SECONDS})


def json_response(
    status: int, body: dict[str, Any], headers: dict[str, str] | None = None
) -> Response[str]:
    return Response(
        status_code=status,
        content_type="application/json",
        body=json.dumps(body, ensure_ascii=False),
        headers=headers or {},
    )


def redirect(location: str, cors_origin: str | None) -> Response[str]:
    headers = {"Location": location, "Cache-Control": "no-store"}
    if cors_origin:
        headers |= {"Access-Control-Allow-Origin": cors_origin, "Vary": "Origin"}
    return Response(status_code=303, content_type="text/plain", body="", headers=headers)
