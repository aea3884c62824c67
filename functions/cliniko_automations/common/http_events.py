"""The one check an HTTP API function makes before Powertools' resolver reads its event.

API Gateway's HTTP API (payload 2.0) always sends what the resolver reads to route a request
(`requestContext.http.method`, `requestContext.stage` and `rawPath`) and what the handlers
read of it (`requestContext.http.sourceIp`, the headers). Anything else (a direct
invoke with a hand-made or v1 event, a console test) would fail inside the resolver, before any
route or exception handler of ours runs, as an unhandled error and Lambda's stack trace: it is
answered here instead, with a fixed JSON message.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import Any


def is_http_api_event(event: Any) -> bool:
    """Whether `event` has the shape API Gateway gives it: what the resolver reads to route
    it, its headers, and the request's other parts (each absent, or of the type API Gateway
    sends)."""
    if not isinstance(event, Mapping):
        return False
    context = event.get("requestContext")
    if not isinstance(context, Mapping):
        return False
    http = context.get("http")
    cookies = event.get("cookies")
    return (
        isinstance(http, Mapping)
        and isinstance(http.get("method"), str)
        and isinstance(http.get("sourceIp"), str)
        and isinstance(context.get("stage"), str)
        and isinstance(event.get("rawPath"), str)
        and isinstance(event.get("headers"), Mapping)  # never without: Host at least
        and isinstance(event.get("rawQueryString", ""), str)
        and all(
            _text_mapping(event.get(part))
            for part in ("headers", "queryStringParameters", "pathParameters")
        )
        and (cookies is None or (isinstance(cookies, list) and all(_is_text(c) for c in cookies)))
        and (event.get("body") is None or _is_text(event["body"]))
        and isinstance(event.get("isBase64Encoded", False), bool)
    )


def _is_text(value: Any) -> bool:
    return isinstance(value, str)


def _text_mapping(value: Any) -> bool:
    return value is None or (
        isinstance(value, Mapping) and all(_is_text(k) and _is_text(v) for k, v in value.items())
    )


def refusal(status: int, message: str) -> dict[str, Any]:
    """An HTTP API answer (payload 2.0) for an event the resolver cannot read."""
    return {
        "statusCode": status,
        "headers": {"Content-Type": "application/json"},
        "body": json.dumps({"message": message}),
        "isBase64Encoded": False,
    }
