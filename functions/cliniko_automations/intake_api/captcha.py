"""Cloudflare Turnstile / Google reCAPTCHA token checks at the provider's siteverify endpoint.

Fail closed: a missing, rejected or unverifiable token means the submission is not accepted.
A token that the service refuses is the sender's problem (CaptchaFailed); a service that
cannot be reached is ours (ServiceUnavailable, so the browser is told to try again).
"""

from __future__ import annotations

import json
import time
from functools import cache
from typing import TYPE_CHECKING

from cliniko_automations.common.secrets import SecretMisconfigured
from cliniko_automations.common.tls import tls_context
from cliniko_automations.intake.config import Captcha
from cliniko_automations.intake_api.errors import CaptchaFailed, ServiceUnavailable

if TYPE_CHECKING:
    import httpx

# siteverify answers in milliseconds; the browser is waiting and the function times out at 10 s.
# The whole answer must arrive within it: httpx's read timeout bounds each read, so an answer
# trickled a byte at a time would otherwise outlast the function (API Gateway's 500).
TIMEOUT_SECONDS = 3.0
# siteverify's answer is a few hundred bytes.
MAX_ANSWER_BYTES = 65536
# siteverify's `error-codes` (Turnstile and reCAPTCHA alike) that are not the token's fault:
# our secret refused (every person is refused until an operator fixes it), or the service's
# own trouble ("the request can be retried").
SECRET_REFUSED = frozenset({"missing-input-secret", "invalid-input-secret"})
SERVICE_TROUBLE = frozenset({"internal-error"})


@cache
def _client() -> httpx.Client:
    # One pooled client per container, made on first use (not on every cold start). httpx is
    # imported here too: only HTML forms with a captcha need it, and it costs ~20 ms to import.
    import httpx

    from cliniko_automations.common.http_transport import Urllib3Transport

    return httpx.Client(
        # With a transport given, httpx reads no proxy from the environment: every request
        # goes through this one.
        transport=Urllib3Transport(tls_context()),
        timeout=TIMEOUT_SECONDS,
        follow_redirects=False,
    )


def verify_captcha(captcha: Captcha, secret: str, token: str | None, remote_ip: str | None) -> None:
    if not token:
        raise CaptchaFailed("captcha token missing")
    form = {"secret": secret, "response": token}
    if remote_ip:
        form["remoteip"] = remote_ip
    client = _client()
    import httpx  # loaded by _client() already

    from cliniko_automations.common.http_transport import ReadWithin

    deadline = time.monotonic() + TIMEOUT_SECONDS
    try:
        with client.stream(
            "POST", captcha.endpoint, data=form, extensions={"deadline": deadline}
        ) as answer:
            if answer.status_code != 200:
                raise ServiceUnavailable("captcha", f"HTTP {answer.status_code}")
            content = b""
            for chunk in ReadWithin(answer.iter_bytes(), deadline, answer.request):
                content += chunk
                if len(content) > MAX_ANSWER_BYTES:
                    raise ServiceUnavailable("captcha", "answer too large")
    except httpx.HTTPError as exc:
        raise ServiceUnavailable("captcha", type(exc).__name__) from None
    try:
        result = json.loads(content)
    except (ValueError, RecursionError):
        raise ServiceUnavailable("captcha", "not JSON") from None
    if not isinstance(result, dict):
        raise ServiceUnavailable("captcha", "not a JSON object")
    if result.get("success") is not True:
        listed = result.get("error-codes")
        codes = {c for c in listed if isinstance(c, str)} if isinstance(listed, list) else set()
        if codes & SECRET_REFUSED:
            refused = SecretMisconfigured(
                f"{captcha.provider} siteverify refused the secret", name=captcha.secret
            )
            raise ServiceUnavailable("captcha", "secret refused") from refused
        if codes & SERVICE_TROUBLE:
            raise ServiceUnavailable("captcha", "internal-error")
        raise CaptchaFailed("captcha token rejected")
    if captcha.min_score is not None:
        score = result.get("score")
        if isinstance(score, bool) or not isinstance(score, int | float):
            raise CaptchaFailed("captcha score missing")
        if score < captcha.min_score:
            raise CaptchaFailed("captcha score too low")
    if captcha.action is not None and result.get("action") != captcha.action:
        raise CaptchaFailed("captcha action does not match")
