"""The erasure API's side of HTTP: who calls (the IAM identity), what they send (JSON bodies,
refused as InvalidRequest naming the field, never echoing it) and the JSON answers."""

from __future__ import annotations

import json
from http import HTTPStatus
from typing import Any

from aws_lambda_powertools.event_handler import Response, content_types
from aws_lambda_powertools.utilities.data_classes import APIGatewayProxyEventV2

from cliniko_automations.common.json_input import JsonRefused, load_json
from cliniko_automations.erasure.errors import InvalidRequest

# Every dependency failure (settings, secrets, DynamoDB) answers 503 with this: the same
# request id may be sent again once it passes.
RETRY_AFTER_SECONDS = "30"
# A request is a few hundred bytes (its longest field, an email, 255 characters). The HTTP
# API lets 10 MB through: parsed whole, 10 MB of `{},` held over 500 MB, past the function's
# 256 MB, and took seconds of CPU, so the size is checked first.
MAX_BODY_BYTES = 16 * 1024


class Unauthenticated(Exception):
    """The event carries no IAM identity (the route's AWS_IAM authoriser was bypassed)."""


def iam_caller(event: APIGatewayProxyEventV2) -> str:
    # API Gateway fills requestContext.authorizer.iam only for SigV4-signed calls to an
    # AWS_IAM route. Anything else reaching this function (a misconfigured route, a direct
    # invoke with a hand-made event) is refused rather than trusted.
    try:
        iam = event.request_context.authorizer.iam
        user_arn, account_id = iam.user_arn, iam.account_id
    except (AttributeError, KeyError, TypeError):  # a context of another shape: no identity
        raise Unauthenticated from None
    if not isinstance(user_arn, str) or not user_arn or not account_id:
        raise Unauthenticated
    return user_arn


def request_body(event: APIGatewayProxyEventV2) -> Any:
    try:
        body = event.decoded_body or ""
        # Characters, not bytes: 4 times the limit at most, still far below what costs.
        if len(body) > MAX_BODY_BYTES:
            raise InvalidRequest({"body": f"must be at most {MAX_BODY_BYTES} bytes"})
        return load_json(body)
    except (JsonRefused, UnicodeDecodeError, ValueError):
        raise InvalidRequest({"body": "must be a JSON object"}) from None


def extension_reason(event: APIGatewayProxyEventV2) -> str:
    # The same loader as a request's body: a lone surrogate or a deep nesting is refused or
    # repaired here, not left to fail later when the reason is hashed into the audit chain.
    try:
        body = request_body(event)
    except InvalidRequest:
        body = None
    if not isinstance(body, dict) or not isinstance(body.get("reason"), str):
        raise InvalidRequest({"reason": "give the reason for the extension (no personal data)"})
    reason: str = body["reason"]
    return reason


def json_answer(
    status: HTTPStatus, body: dict[str, Any], headers: dict[str, str] | None = None
) -> Response[str]:
    return Response(
        status_code=status.value,
        content_type=content_types.APPLICATION_JSON,
        body=json.dumps(body),
        headers=headers or {},
    )


def unavailable(message: str) -> Response[str]:
    return json_answer(
        HTTPStatus.SERVICE_UNAVAILABLE, {"message": message}, {"Retry-After": RETRY_AFTER_SECONDS}
    )
