"""The webhook stack that webhooks.yaml renders passes cfn-lint (resource types, properties,
the rule target's HttpParameters and RetryPolicy as CloudFormation knows them)."""

from __future__ import annotations

import fnmatch
import json
import subprocess
from typing import Any

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


# No subscribers yet is the shipped webhooks.yaml: the first stack a clinic renders and deploys.
@pytest.mark.parametrize("subscribers", [SUBSCRIBERS, {"subscribers": []}], ids=["two", "none"])
def test_the_rendered_webhook_stack_passes_cfn_lint(tmp_path, subscribers):
    path = tmp_path / "webhooks.json"
    path.write_text(json.dumps(render(validated(DEFAULT_PATH, Subscribers, subscribers))))
    result = subprocess.run(  # noqa: S603 - our own tool, fixed arguments
        [str(tool(SAM_VENV, "cfn-lint")), str(path)],
        cwd=ROOT,
        env=tool_env(),
        capture_output=True,
        text=True,
        timeout=240,
    )
    assert result.returncode == 0, result.stdout + result.stderr


def resolved(value: Any, stack_id: str) -> str:
    """A `_stack_named` Fn::Sub as CloudFormation resolves it for this stack id."""
    text, variables = value["Fn::Sub"]
    assert variables["StackId"]["Fn::Select"][0] == 0
    short = stack_id.split("/")[2].split("-")[0]
    return text.replace("${StackId}", short).replace("${AWS::AccountId}", "123456789012")


def test_every_name_the_subscribers_file_accepts_fits_eventbridges_64_characters():
    longest = "a" * 40  # the longest name subscribers.py accepts
    file = {"subscribers": [{**SUBSCRIBERS["subscribers"][0], "name": longest}]}
    resources = render(validated(DEFAULT_PATH, Subscribers, file))["Resources"]
    stack_id = (
        "arn:aws:cloudformation:eu-west-1:123456789012:stack/"
        + "a-stack-name-as-long-as-cloudformation-allows-" * 2
        + "/51af3dc0-da77-11e4-872e-1234567db123"
    )
    names = [
        resolved(resource["Properties"]["Name"], stack_id)
        for resource in resources.values()
        if resource["Type"] in ("AWS::Events::Connection", "AWS::Events::ApiDestination")
    ]
    assert names == [f"webhook-51af3dc0-{longest}"] * 2 and len(names[0]) <= 64
    # The delivery role may invoke exactly this stack's destinations, named as IAM names them.
    [policy] = resources["WebhookDeliveryRole"]["Properties"]["Policies"]
    [statement] = policy["PolicyDocument"]["Statement"]
    allowed = resolved(statement["Resource"], stack_id)
    assert allowed.endswith(":123456789012:api-destination/webhook-51af3dc0-*")
    assert fnmatch.fnmatchcase(f"api-destination/{names[0]}", allowed.rsplit(":", 1)[1])
