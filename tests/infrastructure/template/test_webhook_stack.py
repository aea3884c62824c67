"""The webhook stack that webhooks.yaml renders passes cfn-lint (resource types, properties,
the rule target's HttpParameters and RetryPolicy as CloudFormation knows them)."""

from __future__ import annotations

import json
import subprocess

import pytest
from cliniko_automations.changefeed.subscribers import DEFAULT_PATH, Subscribers
from cliniko_automations.changefeed.webhook_stack import render
from cliniko_automations.common.config_file import validated

from .conftest import ROOT, SAM_VENV, tool, tool_env

pytestmark = pytest.mark.sam

SUBSCRIBERS = {
    "subscribers": [
        {
            "name": "crm-sync",
            "url": "https://hooks.example.com/cliniko",
            "events": ["contact.created", "contact.updated"],
            "secret": "cliniko-automations/webhooks/crm-sync",
            "auth_secret": "cliniko-automations/webhooks/crm-sync-token",
        },
        {
            "name": "archive-log",
            "url": "https://log.example.com/in",
            "events": ["contact.archived"],
            "secret": "cliniko-automations/webhooks/archive-log",
            "rate_per_second": 1,
        },
    ]
}


def test_the_rendered_webhook_stack_passes_cfn_lint(tmp_path):
    path = tmp_path / "webhooks.json"
    path.write_text(json.dumps(render(validated(DEFAULT_PATH, Subscribers, SUBSCRIBERS))))
    result = subprocess.run(  # noqa: S603 - our own tool, fixed arguments
        [str(tool(SAM_VENV, "cfn-lint")), str(path)],
        cwd=ROOT,
        env=tool_env(),
        capture_output=True,
        text=True,
        timeout=240,
    )
    assert result.returncode == 0, result.stdout + result.stderr
