"""Turnstile / reCAPTCHA verification over real HTTP against a 127.0.0.1 stand-in."""

from __future__ import annotations

import json
import socket
import threading
import time
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest
from cliniko_automations.common.secrets import SecretMisconfigured
from cliniko_automations.intake.config import Captcha
from cliniko_automations.intake_api.captcha import verify_captcha
from cliniko_automations.intake_api.errors import CaptchaFailed, ServiceUnavailable


@pytest.fixture(scope="module")
def siteverify() -> Iterator[tuple[str, dict]]:
    """Answers with whatever `reply` holds: {"status": int, "body": bytes}."""
    reply: dict = {}

    class Handler(BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            self.rfile.read(int(self.headers.get("content-length") or 0))
            self.send_response(reply["status"])
            self.send_header("content-length", str(len(reply["body"])))
            self.end_headers()
            self.wfile.write(reply["body"])

        def log_message(self, *args) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    yield f"http://127.0.0.1:{server.server_address[1]}/siteverify", reply
    server.shutdown()
    server.server_close()


def answer(reply: dict, status: int = 200, **body) -> None:
    reply.update(status=status, body=json.dumps(body).encode())


def recaptcha(url: str, **options) -> Captcha:
    return Captcha(provider="recaptcha", secret="s", verify_url=url, **options)


def test_success(siteverify):
    url, reply = siteverify
    answer(reply, success=True)
    verify_captcha(recaptcha(url), "secret", "token", "203.0.113.1")


def test_rejected_token_and_missing_token(siteverify):
    url, reply = siteverify
    answer(reply, success=False, **{"error-codes": ["invalid-input-response"]})
    with pytest.raises(CaptchaFailed):
        verify_captcha(recaptcha(url), "secret", "token", None)
    with pytest.raises(CaptchaFailed, match="missing"):
        verify_captcha(recaptcha(url), "secret", None, None)


def test_v3_score_and_action(siteverify):
    url, reply = siteverify
    answer(reply, success=True, score=0.4, action="contact")
    with pytest.raises(CaptchaFailed, match="score"):
        verify_captcha(recaptcha(url, min_score=0.5), "secret", "token", None)
    verify_captcha(recaptcha(url, min_score=0.3, action="contact"), "secret", "token", None)
    with pytest.raises(CaptchaFailed, match="action"):
        verify_captcha(recaptcha(url, action="signup"), "secret", "token", None)


@pytest.mark.parametrize("score", [None, "0.9", True], ids=["left-out", "as-text", "a-boolean"])
def test_a_score_that_is_no_number_fails_a_minimum(siteverify, score):
    # A v2 secret answers no score, a v3 threshold asks one: the minimum is not met.
    url, reply = siteverify
    answer(reply, success=True, **({} if score is None else {"score": score}))
    with pytest.raises(CaptchaFailed, match="score"):
        verify_captcha(recaptcha(url, min_score=0.5), "secret", "token", None)
    verify_captcha(recaptcha(url), "secret", "token", None)


@pytest.mark.parametrize(("status", "body"), [(500, b"{}"), (200, b"<html>"), (200, b"[true]")])
def test_service_trouble_fails_closed(siteverify, status, body):
    url, reply = siteverify
    reply.update(status=status, body=body)
    with pytest.raises(ServiceUnavailable):
        verify_captcha(recaptcha(url), "secret", "token", None)


def test_unreachable_service_fails_closed():
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    with pytest.raises(ServiceUnavailable) as caught:
        verify_captcha(recaptcha(f"http://127.0.0.1:{port}/x"), "secret", "token", None)
    assert caught.value.dependency == "captcha"


@pytest.mark.parametrize(
    ("codes", "refused"),
    [
        # Our secret refused: every person is refused until an operator fixes it.
        (["invalid-input-secret"], SecretMisconfigured),
        (["missing-input-secret", "invalid-input-response"], SecretMisconfigured),
        # The service's own trouble, which its docs say may be retried.
        (["internal-error"], None),
    ],
)
def test_a_refusal_that_is_not_the_tokens_fault_is_no_failed_captcha(siteverify, codes, refused):
    url, reply = siteverify
    answer(reply, success=False, **{"error-codes": codes})
    with pytest.raises(ServiceUnavailable) as caught:
        verify_captcha(recaptcha(url), "secret", "token", None)
    if refused is not None:  # told to the operator as a misconfigured secret
        assert isinstance(caught.value.__cause__, refused)
    answer(reply, success=False, **{"error-codes": ["timeout-or-duplicate", 7]})
    with pytest.raises(CaptchaFailed):
        verify_captcha(recaptcha(url), "secret", "token", None)


@pytest.mark.parametrize("trickled", ["body", "headers"])
def test_an_answer_trickled_past_the_timeout_fails_closed(trickled):
    # Each byte within httpx's read timeout, the whole far past it: the function (10 s) would
    # have been cut off waiting, and API Gateway answered its own error, not the error page.
    class Trickling(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def do_POST(self) -> None:
            self.rfile.read(int(self.headers.get("content-length") or 0))
            body = b'{"success": true,' + b" " * 40 + b"}"
            head = b"HTTP/1.1 200 OK\r\nx-pad: %s\r\ncontent-length: %d\r\n\r\n" % (
                b"p" * 40,
                len(body),
            )
            fast, slow = (head, body) if trickled == "body" else (b"", head + body)
            self.wfile.write(fast)
            self.wfile.flush()
            for byte in slow:
                time.sleep(0.25)
                try:
                    self.wfile.write(bytes([byte]))
                    self.wfile.flush()
                except OSError:  # given up on, as it should be
                    return

        def log_message(self, *args) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Trickling)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        started = time.monotonic()
        with pytest.raises(ServiceUnavailable) as caught:
            verify_captcha(
                recaptcha(f"http://127.0.0.1:{server.server_address[1]}/x"), "s", "t", None
            )
        assert caught.value.error_type == "ReadTimeout"
        # Given up at the 3 s deadline, not once the headers' 20 s were over.
        assert time.monotonic() - started < 10
    finally:
        server.shutdown()
        server.server_close()
