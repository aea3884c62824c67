"""An API Gateway (HTTP API, payload v2) event -> the core's `IntakeRequest`."""

from __future__ import annotations

import base64
import binascii
from typing import Any

from aws_lambda_powertools.utilities.data_classes import APIGatewayProxyEventV2

from cliniko_automations.intake_api.accept import IntakeRequest
from cliniko_automations.intake_api.errors import MalformedBody


def intake_request(source: str, event: APIGatewayProxyEventV2) -> IntakeRequest:
    return IntakeRequest(
        source=source,
        body=raw_body(event.raw_event),
        headers={name.lower(): value for name, value in (event.headers or {}).items()},
        query=dict(event.query_string_parameters or {}),
        source_ip=event.request_context.http.source_ip,
    )


def raw_body(event: dict[str, Any]) -> bytes:
    """The body's bytes as the sender sent them: signatures are checked on these."""
    body = event.get("body")
    if not body:
        return b""
    if event.get("isBase64Encoded"):
        try:
            return base64.b64decode(body, validate=True)
        except (binascii.Error, ValueError):
            raise MalformedBody("body is not valid base64") from None
    # surrogatepass: a lone surrogate in the event's text becomes bytes that are not UTF-8,
    # refused by the parsers as malformed instead of raising here.
    text: str = body
    return text.encode("utf-8", "surrogatepass")
