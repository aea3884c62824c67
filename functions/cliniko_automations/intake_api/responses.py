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


# What a person sees when their browser posted the form from a page the source does not allow
# (no redirect: the error pages are the clinic's, and this page may not be): the why is in
# the log, for the clinic, not here.
ORIGIN_REFUSED_PAGE = """<!doctype html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>Your details were not sent</title>
</head>
<body>
<h1>Your details were not sent</h1>
<p>This form cannot send from the page it is on. Please contact the clinic another way, and
let them know the form did not work.</p>
</body>
</html>
"""


def page_response(status: int, page: str) -> Response[str]:
    return Response(
        status_code=status,
        content_type="text/html; charset=utf-8",
        body=page,
        headers={"Cache-Control": "no-store"},
    )


def wants_a_page(headers: dict[str, str]) -> bool:
    """Whether the request is a browser navigating (a form's own post), not a script."""
    lowered = {name.lower(): value for name, value in headers.items()}
    if "sec-fetch-mode" in lowered:
        return lowered["sec-fetch-mode"].strip().lower() == "navigate"
    return "text/html" in lowered.get("accept", "").lower()
