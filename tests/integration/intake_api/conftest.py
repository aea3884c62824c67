"""The intake API's world for handler tests: moto SQS + Secrets Manager, a captcha stand-in
on 127.0.0.1, a form-source file pointing at it, and the handler's logs captured."""

from __future__ import annotations

import io
import json
import logging
import threading
from collections.abc import Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs

import boto3
import pytest
import yaml
from cliniko_automations.intake.config import DEFAULT_PATH
from cliniko_automations.intake.submission import Submission
from cliniko_automations.intake_api import handler as api_handler

from tests.fixtures.apigw import LambdaContext, form_post_event
from tests.integration.intake_worker.resources import create_submission_store, stored_submission
from tests.unit.intake_api import samples

PEPPER = "intake-test-pepper-0123456789abcdef"
SIGNING_SECRETS = {
    "cliniko-automations/forms/referral-typeform/signing-secret": samples.SECRET,
    "cliniko-automations/forms/gp-referral-tally/signing-secret": samples.SECRET,
    "cliniko-automations/forms/website-webflow/signing-secret": samples.SECRET,
    "cliniko-automations/forms/insurer-formspree/signing-secret": samples.SECRET,
    "cliniko-automations/forms/partner-json/signing-secret": samples.SECRET,
    "cliniko-automations/forms/intake-jotform/token": samples.TOKEN,
    "cliniko-automations/forms/website-contact-html/turnstile-secret": samples.CAPTCHA_SECRET,
}


@dataclass
class CaptchaStandIn:
    """Answers siteverify like Turnstile: the token decides ("pass", "fail", "down")."""

    url: str = ""
    received: list[dict[str, list[str]]] = field(default_factory=list)


@pytest.fixture(scope="session")
def _captcha_server() -> Iterator[tuple[str, list[dict[str, list[str]]]]]:
    received: list[dict[str, list[str]]] = []

    class Handler(BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            length = int(self.headers.get("content-length") or 0)
            form = parse_qs(self.rfile.read(length).decode())
            received.append(form)
            token = form.get("response", [""])[0]
            ok = form.get("secret") == [samples.CAPTCHA_SECRET] and token.startswith("pass")
            if token == "down":
                self.send_response(500)
                self.end_headers()
                return
            answer: dict[str, Any] = {"success": ok, "hostname": "www.example-clinic.com.au"}
            if form.get("secret") != [samples.CAPTCHA_SECRET]:
                answer["error-codes"] = ["invalid-input-secret"]
            elif not ok:
                answer["error-codes"] = ["invalid-input-response"]
            body = json.dumps(answer).encode()
            self.send_response(200)
            self.send_header("content-type", "application/json")
            self.send_header("content-length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, *args: Any) -> None:  # keep test output quiet
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_address[1]}/turnstile/v0/siteverify", received
    server.shutdown()
    server.server_close()


@pytest.fixture
def captcha(_captcha_server) -> CaptchaStandIn:
    url, received = _captcha_server
    received.clear()
    return CaptchaStandIn(url=url, received=received)


@dataclass
class IntakeWorld:
    queue_url: str
    sqs: Any
    logs: io.StringIO
    captcha: CaptchaStandIn
    sources_file: Path
    submission_table: str = "intake-submission-store"

    def stored(self, message: dict[str, Any]) -> Submission:
        """The submission a queued message names: its body is in the submission store."""
        return stored_submission(boto3.client("dynamodb"), self.submission_table, message["Body"])

    def invoke(self, event: dict[str, Any]) -> dict[str, Any]:
        return api_handler.lambda_handler(event, LambdaContext())

    def post(self, source: str, body: bytes, headers: dict[str, str], **kwargs: Any):
        return self.invoke(form_post_event(source, body, headers, **kwargs))

    def messages(self) -> list[dict[str, Any]]:
        found = []
        while True:
            answer = self.sqs.receive_message(
                QueueUrl=self.queue_url,
                MaxNumberOfMessages=10,
                MessageAttributeNames=["All"],
                MessageSystemAttributeNames=["MessageGroupId"],
            )
            batch = answer.get("Messages", [])
            if not batch:
                return found
            found += batch
            for message in batch:
                self.sqs.delete_message(
                    QueueUrl=self.queue_url, ReceiptHandle=message["ReceiptHandle"]
                )

    def log_records(self) -> list[dict[str, Any]]:
        return [json.loads(line) for line in self.logs.getvalue().splitlines() if line.strip()]


@pytest.fixture
def intake(aws, captcha, tmp_path, monkeypatch) -> Iterator[IntakeWorld]:
    sqs = boto3.client("sqs")
    queue_url = sqs.create_queue(QueueName="intake-submissions")["QueueUrl"]
    secrets = boto3.client("secretsmanager")
    for name, value in SIGNING_SECRETS.items():
        secrets.create_secret(Name=name, SecretString=value)
    # The shipped sources, with the Turnstile check pointed at the local stand-in.
    data = yaml.safe_load(DEFAULT_PATH.read_text())
    data["sources"]["website-contact-html"]["html"]["captcha"]["verify_url"] = captcha.url
    sources_file = tmp_path / "form_sources.yaml"
    sources_file.write_text(yaml.safe_dump(data))
    create_submission_store(boto3.client("dynamodb"), "intake-submission-store")
    secrets.create_secret(Name="intake/pepper", SecretString=PEPPER)
    monkeypatch.setenv("SUBMISSION_QUEUE_URL", queue_url)
    monkeypatch.setenv("SUBMISSION_TABLE", "intake-submission-store")
    monkeypatch.setenv("PEPPER_SECRET_NAME", "intake/pepper")
    monkeypatch.setenv("FORM_SOURCES_FILE", str(sources_file))
    monkeypatch.delenv("MAX_BODY_BYTES", raising=False)
    logs = io.StringIO()
    handler = api_handler.logger.registered_handler
    assert isinstance(handler, logging.StreamHandler)
    previous = handler.setStream(logs)
    try:
        yield IntakeWorld(queue_url, sqs, logs, captcha, sources_file)
    finally:
        handler.setStream(previous)
