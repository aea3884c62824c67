"""The whole intake path for end-to-end tests: a genuine HTTP API v2 event into the intake
API handler, the message it queues in moto SQS, Lambda's SQS poller emulated into the worker
handler, and the Cliniko emulator over HTTP.

Uses the shipped form sources and Cliniko accounts (tests see what deploys), with one change:
the html source's captcha is dropped, since checking Turnstile is the API's business and is
tested there with a stand-in; here a browser post goes straight through.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml
from cliniko_automations.common.accounts import DEFAULT_PATH as ACCOUNTS_PATH
from cliniko_automations.common.accounts import load_accounts
from cliniko_automations.intake.config import DEFAULT_PATH, load_form_sources
from cliniko_automations.intake_api import handler as api_handler
from cliniko_automations.intake_worker import handler as worker_handler

from tests.fixtures.apigw import LambdaContext, form_post_event
from tests.integration.intake_worker.resources import (
    WORKER_TIMEOUT_MS,
    WorkerStack,
    create_worker_stack,
    poll_once,
    put_secrets,
    worker_environment,
)
from tests.unit.intake_api import samples

PERSONAL = [
    samples.NAME,
    samples.FIRST,
    samples.LAST,
    samples.EMAIL,
    samples.PHONE,
    samples.PHONE.replace(" ", ""),
    "0412987654",
    "412 987 654",
]
# The erasure pepper: the intake API hashes each submission's email with it for the store's
# index, so an erasure finds the body.
PEPPER_SECRET = "e2e/erasure-pepper"
PEPPER = "e2e-test-pepper-0123456789abcdef0123"
PROVIDER_SOURCES = {
    "typeform": "referral-typeform",
    "tally": "gp-referral-tally",
    "webflow": "website-webflow",
    "formspree": "insurer-formspree",
    "jotform": "intake-jotform",
    "html": "website-contact-html",
    "json": "partner-json",
}
HTML_FORM = (
    f"name={samples.NAME.replace(' ', '+')}&email={samples.EMAIL}&phone=0412987654"
    "&organisation=Harbour+Medical&message=Please+call&website="
)


def delivery(provider: str, email: str = samples.EMAIL) -> dict[str, Any]:
    """A correctly signed sample delivery of a provider, as an HTTP API v2 event.

    Another email makes another submission for typeform and json (their provider ids follow
    it) and for formspree and html (identified by content); the tally, webflow and jotform
    samples carry fixed provider ids, so another email there is a redelivery of the sample.
    """
    source = PROVIDER_SOURCES[provider]
    tag = hashlib.sha256(email.encode()).hexdigest()[:12]
    json_type = {"Content-Type": "application/json"}
    if provider == "typeform":
        body = samples.typeform_body(email=email, response_token=f"tf-{tag}")
        headers = {**json_type, "Typeform-Signature": samples.typeform_signature(body)}
    elif provider == "tally":
        body = samples.tally_body(email=email)
        headers = {**json_type, "Tally-Signature": samples.tally_signature(body)}
    elif provider == "webflow":
        body = samples.webflow_body(email=email)
        headers = {**json_type, **samples.webflow_headers(body)}
    elif provider == "formspree":
        body = samples.formspree_body(email=email)
        headers = {**json_type, "Formspree-Signature": samples.t_v1_signature(body)}
    elif provider == "json":
        body = samples.json_body(email=email)
        headers = {
            **json_type,
            "X-Signature": samples.t_v1_signature(body),
            "Idempotency-Key": f"partner-order-{tag}",
        }
    elif provider == "jotform":
        body, content_type = samples.jotform_body(email=email)
        return form_post_event(
            source,
            body,
            {"Content-Type": content_type},
            base64=True,
            query={"token": samples.TOKEN},
        )
    elif provider == "html":
        form = HTML_FORM.replace(samples.EMAIL, email)
        headers = {"Content-Type": "application/x-www-form-urlencoded", "Origin": samples.ORIGIN}
        # HTTP APIs hand url-encoded bodies to Lambda base64-encoded.
        return form_post_event(source, form.encode(), headers, base64=True)
    else:
        raise ValueError(provider)
    return form_post_event(source, body, headers)


@dataclass
class IntakePath:
    stack: WorkerStack
    cliniko: Any

    def post(self, event: dict[str, Any]) -> dict[str, Any]:
        return api_handler.lambda_handler(event, LambdaContext(function_name="IntakeApiFunction"))

    def work(self, rounds: int = 10) -> int:
        """Run the worker on whatever is queued until the queue is empty; messages handled."""
        handled = 0
        for _ in range(rounds):
            context = LambdaContext(
                function_name="IntakeWorkerFunction", timeout_ms=WORKER_TIMEOUT_MS
            )
            messages, _failed = poll_once(self.stack, worker_handler.lambda_handler, context)
            handled += len(messages)
            if not messages and self.stack.counts(self.stack.queue_url) == (0, 0):
                break
        return handled


def build_intake_path(cliniko: Any, monkeypatch: Any, tmp_path: Path) -> IntakePath:
    stack = create_worker_stack("e2e")
    data = yaml.safe_load(DEFAULT_PATH.read_text(encoding="utf-8"))
    for source in data["sources"].values():
        if source.get("html"):
            source["html"].pop("captcha", None)
    config = tmp_path / "form_sources.yaml"
    config.write_text(yaml.safe_dump(data), encoding="utf-8")
    sources = load_form_sources(config)
    accounts = load_accounts(ACCOUNTS_PATH)
    secrets = {secret: cliniko.api_key for _where, secret in accounts.secret_references()}
    for source in sources.sources.values():
        if source.signing_secret:
            secrets[source.signing_secret] = samples.SECRET
        if source.token_secret:
            secrets[source.token_secret] = samples.TOKEN
    secrets[PEPPER_SECRET] = PEPPER
    put_secrets(secrets)
    worker_environment(
        monkeypatch,
        stack,
        cliniko.base_url_template,
        ACCOUNTS_PATH,
        FORM_SOURCES_FILE=str(config),
        PEPPER_SECRET_NAME=PEPPER_SECRET,
    )
    monkeypatch.delenv("MAX_BODY_BYTES", raising=False)
    # As one deployed stack: the erasure's default account is main-clinic (the template's
    # ClinikoApiKeySecretName), and it searches every account of the same file.
    monkeypatch.setenv("CLINIKO_API_KEY_SECRET_NAME", accounts.key_secret("main-clinic") or "")
    return IntakePath(stack, cliniko)
