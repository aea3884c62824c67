"""Why the intake turned a request away: one exception per answer, mapped to HTTP once.

Each carries the status, a metric `reason` and a message safe to show a caller: messages
name fields and rules, never submitted values.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, ClassVar


class IntakeError(Exception):
    status: ClassVar[int] = 400
    reason: ClassVar[str] = "bad_request"
    message: ClassVar[str] = "Bad request"

    def __init__(self, detail: str | None = None) -> None:
        # detail is for the caller and the log: it names rules and fields, never values.
        self.detail = detail
        # Set by the core once a browser form's origin is trusted: where to send the browser.
        self.redirect_to: str | None = None
        self.cors_origin: str | None = None
        super().__init__(detail or self.message)

    def body(self) -> dict[str, Any]:
        body: dict[str, Any] = {"message": self.message}
        if self.detail:
            body["detail"] = self.detail
        return body


class UnknownSource(IntakeError):
    status, reason, message = 404, "unknown_source", "Unknown form source"


class BodyTooLarge(IntakeError):
    status, reason, message = 413, "too_large", "Request body too large"


class UnsupportedMediaType(IntakeError):
    status, reason, message = 415, "unsupported_media_type", "Unsupported content type"


class MalformedBody(IntakeError):
    status, reason, message = 400, "malformed", "Malformed request body"


class BadSignature(IntakeError):
    status, reason, message = 401, "unauthenticated", "Missing or invalid signature"


class OriginNotAllowed(IntakeError):
    status, reason, message = 403, "origin", "Origin not allowed"


class CaptchaFailed(IntakeError):
    status, reason, message = 403, "captcha", "Captcha verification failed"


class FieldsInvalid(IntakeError):
    status, reason, message = 422, "validation", "Validation failed"

    def __init__(self, errors: Mapping[str, str]) -> None:
        super().__init__()
        self.errors = dict(sorted(errors.items()))

    def body(self) -> dict[str, Any]:
        return {"message": self.message, "errors": self.errors}


class ServiceUnavailable(IntakeError):
    """Something we depend on failed: answer 503 so the provider delivers again later."""

    status, reason, message = 503, "unavailable", "Service temporarily unavailable"

    def __init__(self, dependency: str, error_type: str) -> None:
        super().__init__()
        # Both are logged; neither reaches the caller.
        self.dependency = dependency
        self.error_type = error_type
        # Of a submission its source's hourly ceiling counted: "given_back" or "kept".
        self.hour_count: str | None = None
