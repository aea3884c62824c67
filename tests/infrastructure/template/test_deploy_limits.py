"""What a real `sam deploy` refuses, or a deployed stack does wrong, that cfn-lint and
`sam validate` cannot see: names and sizes once the stack's name and the rendered webhook
stack are known, rollback behaviour, and parameter values EventBridge would refuse."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
import yaml
from cliniko_automations.changefeed.subscribers import (
    DEFAULT_PATH,
    EVENT_TYPES,
    MAX_SUBSCRIBERS_PER_EVENT,
    Subscribers,
)
from cliniko_automations.changefeed.webhook_stack import render
from cliniko_automations.common.config_file import validated
from local_run.template import load

ROOT = Path(__file__).resolve().parents[3]
TEMPLATE = load(ROOT / "template.yaml")
RESOURCES = TEMPLATE["Resources"]
README = (ROOT / "README.md").read_text(encoding="utf-8")

# CloudFormation's longest stack name; Step Functions' longest state machine name
# (CreateStateMachine `name`: "Maximum length of 80").
STACK_NAME_MAX = 128
STATE_MACHINE_NAME_MAX = 80
# SAM CLI: "Templates with a size greater than 51,200 bytes must be deployed via an S3 Bucket".
SAM_INLINE_TEMPLATE_MAX = 51_200


def _longest_stack_name_the_readme_allows() -> int:
    found = re.search(r"stack\s+name\s+of\s+at\s+most\s+(\d+)\s+characters", README)
    return int(found.group(1)) if found else STACK_NAME_MAX


def test_the_state_machine_name_fits_for_every_stack_name_the_readme_allows():
    name = RESOURCES["CleanupStateMachine"]["Properties"]["Name"]["Fn::Sub"]
    longest = name.replace("${AWS::StackName}", "s" * _longest_stack_name_the_readme_allows())
    assert len(longest) <= STATE_MACHINE_NAME_MAX, (
        f"a {_longest_stack_name_the_readme_allows()}-character stack name makes the state "
        f"machine {len(longest)} characters: CreateStateMachine refuses it and the first deploy "
        "rolls back"
    )


def test_the_state_machine_logs_to_a_vendedlogs_group():
    # Step Functions adds the log group to the account's one CloudWatch Logs resource policy
    # (5,120 characters) unless its name starts with /aws/vendedlogs/.
    name = RESOURCES["CleanupStateMachineLogGroup"]["Properties"]["LogGroupName"]["Fn::Sub"]
    assert name.startswith("/aws/vendedlogs/"), name


@pytest.mark.parametrize("name", ["ErasureAuditTable", "LedgerTable", "PepperSecret"])
def test_what_is_kept_past_the_stack_is_not_kept_from_a_rolled_back_first_deploy(name: str):
    # Retain keeps them on the rollback of the create that made them too: the named secrets
    # then make every retry of the first deploy fail ("already exists") until deleted by hand.
    resource = RESOURCES[name]
    assert resource["DeletionPolicy"] == "RetainExceptOnCreate"
    assert resource["UpdateReplacePolicy"] == "Retain"


def test_the_change_feed_hash_key_goes_with_the_stack():
    # The hashes it keys are in ChangeFeedTable, deleted with the stack: kept, the key would
    # serve nothing and its name, the stack's, refuse a stack of that name deployed again.
    assert "DeletionPolicy" not in RESOURCES["ChangeFeedTable"]
    assert "DeletionPolicy" not in RESOURCES["ChangeFeedHashKeySecret"]


VALID = ["rate(1 minute)", "rate(1 day)", "rate(2 hours)", "rate(12 days)", "cron(0 3 * * ? *)"]
INVALID = ["rate(1 days)", "rate(2 day)", "rate(0 minutes)", "rate(1 week)"]


@pytest.mark.parametrize(
    ("value", "accepted"), [(v, True) for v in VALID] + [(v, False) for v in INVALID]
)
def test_the_cleanup_schedule_parameter_refuses_what_eventbridge_refuses(value, accepted):
    pattern = TEMPLATE["Parameters"]["CleanupSchedule"]["AllowedPattern"]
    assert bool(re.fullmatch(pattern, value)) is accepted


def test_the_readme_deploys_the_largest_webhook_stack_through_s3():
    # The file accepts MAX_SUBSCRIBERS_PER_EVENT subscribers per event type.
    subscribers = {
        "subscribers": [
            {
                "name": f"receiver-{i:02d}",
                "url": f"https://hooks{i}.example.com/cliniko/webhooks",
                "events": [EVENT_TYPES[i % len(EVENT_TYPES)]],
                "secret": f"cliniko-automations/webhooks/receiver-{i:02d}/signing-secret",
            }
            for i in range(MAX_SUBSCRIBERS_PER_EVENT * len(EVENT_TYPES))
        ]
    }
    rendered = render(validated(DEFAULT_PATH, Subscribers, subscribers))
    # As `sam deploy` re-writes it (block YAML) before it measures it.
    assert (
        len(yaml.safe_dump(rendered, default_flow_style=False).encode()) > SAM_INLINE_TEMPLATE_MAX
    )
    # Each place that shows the command (the change feed's section, set-up's step 4).
    commands = re.findall(r"sam deploy --template-file build/webhooks\.json[^`]*", README)
    assert commands
    for command in commands:
        assert "--resolve-s3" in command or "--s3-bucket" in command, command
