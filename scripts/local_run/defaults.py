"""The local run's embedded defaults: parameter values, secret values, a local form-source file.

Nothing here is a production value. Secrets are made up per name (stable, so a curl printed
once keeps working across restarts), the Cliniko keys are registered in the emulator, and the
form-source file is the repository's own with the browser form pointed at the local website.
"""

from __future__ import annotations

import hashlib
import uuid
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import yaml
from cliniko_automations.common.timestamps import iso

STACK_NAME = "cliniko-automations-local"
REGION = "eu-west-1"
ACCOUNT_ID = "123456789012"  # moto's default account
USER_AGENT = "Cliniko automations local run (local-run@example.com)"
# The html source that the sample page posts to.
HTML_SOURCE = "website-contact-html"


def scheduled_event(rule: str | None = None) -> dict[str, Any]:
    """The event a scheduled EventBridge rule named `rule` (None: unnamed) sends its target
    now, in the local account and region."""
    return {
        "version": "0",
        "id": str(uuid.uuid4()),
        "detail-type": "Scheduled Event",
        "source": "aws.events",
        "account": ACCOUNT_ID,
        "time": iso(datetime.now(UTC)),
        "region": REGION,
        "resources": [f"arn:aws:events:{REGION}:{ACCOUNT_ID}:rule/{rule}"] if rule else [],
        "detail": {},
    }


def secret_value(name: str) -> str:
    """A made-up, stable value for a secret the template or form sources name."""
    return "local-" + hashlib.sha256(f"local-run:{name}".encode()).hexdigest()[:32]


def cliniko_key(account: str, index: int) -> str:
    """An emulator key per account; accounts alternate between two shards to show routing."""
    shard = ("au1", "au2")[index % 2]
    body = hashlib.sha256(f"local-run:{account}".encode()).hexdigest()[:24]
    return f"MS0x{body}-{shard}"


def parameter_overrides(site_origin: str, started_at: datetime) -> dict[str, Any]:
    """Values for the template's parameters that have no default, or need a local one. The
    change feed starts from the local run's start (`started_at`), not from its first fire:
    the contacts posted before that fire are the ones a person wants to see it publish."""
    return {
        "ClinikoUserAgent": USER_AGENT,
        "AllowedOrigins": site_origin,
        "ChangeFeedBackfillFrom": iso(started_at),  # the feed's own form of a time
    }


# Cloudflare's documented test token: what the Turnstile widget yields with a test site key.
CAPTCHA_TEST_TOKEN = "XXXX.DUMMY.TOKEN.XXXX"  # noqa: S105 - a public test value


def local_form_sources(source_file: Path, target: Path, site_url: str) -> Path:
    """The repository's form sources, with every html source's browser settings pointed at the
    local website: its origin allowed, its thank-you and problem pages first (the defaults),
    and its captcha checked by the website's stand-in for siteverify (which is on the
    internet), which accepts Cloudflare's test token with the local secret.
    """
    data = yaml.safe_load(source_file.read_text())
    for source in data.get("sources", {}).values():
        html = source.get("html")
        if source.get("provider") != "html" or not html:
            continue
        html["allowed_origins"] = [site_url, *html.get("allowed_origins", [])]
        html["success_urls"] = [f"{site_url}/thanks", *html.get("success_urls", [])]
        html["error_urls"] = [f"{site_url}/problem", *html.get("error_urls", [])]
        captcha = html.get("captcha")
        if captcha:
            captcha["verify_url"] = f"{site_url}/_local/siteverify"
    target.parent.mkdir(parents=True, exist_ok=True)
    target.write_text(
        "# Written by the local run from form_sources.yaml; edits are overwritten.\n"
        + yaml.safe_dump(data, sort_keys=False)
    )
    return target
