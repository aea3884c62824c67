"""Cloudflare Turnstile / Google reCAPTCHA token checks at the provider's siteverify endpoint.

Fail closed: a missing, rejected or unverifiable token means the submission is not accepted.
A token that the service refuses is the sender's problem (CaptchaFailed); a service that
cannot be reached is ours (ServiceUnavailable, so the browser is told to try again).
"""

from __future__ import annotations

from functools import cache
from typing import TYPE_CHECKING

from cliniko_automations.common.tls import tls_context
from cliniko_automations.intake.config import Captcha
from cliniko_automations.intake_api.errors import CaptchaFailed, ServiceUnavailable

if TYPE_CHECKING:
    import httpx

# siteverify answers in milliseconds; the browser is waiting and the function times out at 10 s.
TIMEOUT_SECONDS = 3.0


@cache
def _client() -> httpx.Client:
    # One pooled client per container, made on first use (not on every cold start). httpx is
    # imported here too: only HTML forms with a captcha need it, and it costs ~20 ms to import.
    import httpx

    from cliniko_automations.common.http_transport import Urllib3Transport

    return httpx.Client(
        transport=Urllib3Transport(tls_context()),
        verify=tls_context(),  # for a proxy from the environment, which has its own transport
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

    try:
        answer = client.post(captcha.endpoint, data=form)
    except httpx.HTTPError as exc:
        raise ServiceUnavailable("captcha", type(exc).__name__) from None
    if answer.status_code != 200:
        raise ServiceUnavailable("captcha", f"HTTP {answer.status_code}")
    try:
        result = answer.json()
    except ValueError:
        raise ServiceUnavailable("captcha", "not JSON") from None
    if not isinstance(result, dict):
        raise ServiceUnavailable("captcha", "not a JSON object")
    if result.get("success") is not True:
        raise CaptchaFailed("captcha token rejected")
    if captcha.min_score is not None:
        score = result.get("score")
        if not isinstance(score, int | float) or score < captcha.min_score:
            raise CaptchaFailed("captcha score too low")
    if captcha.action is not None and result.get("action") != captcha.action:
        raise CaptchaFailed("captcha action does not match")
