"""What the internet-facing intake API's role lets it read, resolved as a stack deployed with
the template's defaults: the form sources' secrets and the pepper, not what a compromise of
the public route would take further (every clinic's Cliniko key, the webhook signing secrets)."""

from __future__ import annotations

from fnmatch import fnmatchcase
from pathlib import Path

import pytest
from cliniko_automations.changefeed.subscribers import load_subscribers
from cliniko_automations.common.accounts import load_accounts
from cliniko_automations.intake.config import INTAKE_DENIED_UNDER_PREFIX, load_form_sources
from local_run.template import Physical, Resolver, SamApp, load

from .iam_calls import allows, role_statements

ROOT = Path(__file__).resolve().parents[3]
TEMPLATE = load(ROOT / "template.yaml")
REGION, ACCOUNT = "eu-west-1", "123456789012"


def _resolver(parameters: dict[str, str] | None = None) -> Resolver:
    physical = {}
    for name, resource in TEMPLATE["Resources"].items():
        if resource["Type"] == "AWS::SecretsManager::Secret":
            secret = f"cliniko-automations/{name}"
            ref = f"arn:aws:secretsmanager:{REGION}:{ACCOUNT}:secret:{secret}-AbCdEf"
        else:
            ref = f"cliniko-automations-{name}"
        attributes = {"Arn": f"arn:aws:service:{REGION}:{ACCOUNT}:{name}", "QueueName": name}
        physical[name] = Physical(ref, attributes)
    pseudo = {
        "AWS::Region": REGION,
        "AWS::AccountId": ACCOUNT,
        "AWS::Partition": "aws",
        "AWS::StackName": "cliniko-automations",
        "AWS::URLSuffix": "amazonaws.com",
    }
    given = {"ClinikoUserAgent": "Acme (it@acme.example)", **(parameters or {})}
    return Resolver(TEMPLATE, SamApp(TEMPLATE).parameters(given), physical, pseudo)


def may_read(function: str, secret_name: str, parameters: dict[str, str] | None = None) -> bool:
    """Whether `function`'s role allows GetSecretValue on the secret of this name, in a stack
    deployed with these parameters (the template's defaults for the rest)."""
    arn = f"arn:aws:secretsmanager:{REGION}:{ACCOUNT}:secret:{secret_name}-AbCdEf"
    statements = role_statements(_resolver(parameters), function)
    return allows(statements, "secretsmanager:GetSecretValue", arn)


def test_the_intake_api_reads_its_form_sources_secrets():
    # The check itself: what the intake API does read, it may.
    names = [name for _where, name in load_form_sources().secret_references()]
    assert names and all(may_read("IntakeApiFunction", name) for name in names)


@pytest.mark.parametrize(
    "secret",
    [name for _where, name in load_accounts().secret_references()]
    + [name for _where, name in load_subscribers().secret_references()],
)
def test_the_public_intake_api_cannot_read_cliniko_keys_or_webhook_signing_secrets(secret):
    assert not may_read("IntakeApiFunction", secret), (
        f"IntakeApiFunction, behind the public POST /forms/{{source}}, may read {secret}"
    )


def test_the_public_intake_api_cannot_read_the_erasures_key_wherever_it_is_named():
    # ClinikoApiKeySecretName is set per environment, and nothing holds it to accounts/.
    elsewhere = {"ClinikoApiKeySecretName": "cliniko-automations/erasure/cliniko-key"}
    assert may_read("ErasureApiFunction", elsewhere["ClinikoApiKeySecretName"], elsewhere)
    assert not may_read("IntakeApiFunction", elsewhere["ClinikoApiKeySecretName"], elsewhere)
    assert may_read("IntakeApiFunction", "cliniko-automations/erasure/other", elsewhere)


def test_the_public_intake_api_cannot_overwrite_an_erasures_tombstones():
    from cliniko_automations.common.submission_store import (
        BODY_PREFIX,
        FIRST_SEEN_PREFIX,
        TOMBSTONE_PREFIX,
    )

    store = {"Fn::GetAtt": ["SubmissionStoreTable", "Arn"]}
    policies = TEMPLATE["Resources"]["IntakeApiFunction"]["Properties"]["Policies"]
    statements = [s for p in policies for s in p.get("Statement", []) if s["Resource"] == store]

    def patterns(statement):
        leading = (statement.get("Condition") or {}).get("ForAllValues:StringLike", {})
        return leading.get("dynamodb:LeadingKeys", ["*"])

    reads = {"dynamodb:GetItem", "dynamodb:BatchGetItem"}
    writing = [s for s in statements if not set(s["Action"]) <= reads]
    (write,) = writing
    # What it writes (a body, a first-seen time) it may; a tombstone#... put would un-erase.
    written = (BODY_PREFIX, FIRST_SEEN_PREFIX)
    assert all(any(fnmatchcase(p + "x", pat) for pat in patterns(write)) for p in written)
    assert not any(fnmatchcase(TOMBSTONE_PREFIX + "x", pat) for pat in patterns(write))
    # It reads tombstones (to keep no held body of a person erased since), and nothing else:
    # never a stored body.
    for read in (s for s in statements if s not in writing):
        assert patterns(read) == [TOMBSTONE_PREFIX + "*"], patterns(read)


@pytest.mark.parametrize("under", INTAKE_DENIED_UNDER_PREFIX)
def test_the_config_check_refuses_form_secrets_exactly_where_the_intake_api_is_denied(under):
    # `intake.config --check` refuses a source's secret under these (a deployed intake API
    # could not read it); the template must deny there, and only there.
    assert not may_read("IntakeApiFunction", f"cliniko-automations/{under}any/secret")
    assert may_read("IntakeApiFunction", f"cliniko-automations/forms/{under}secret")


# A second stack beside the first in one account and region (staging beside production, a
# second clinic), with its own SecretsPrefix (README "Set up for your clinic", step 3) and the
# template's defaults otherwise.
SECOND_STACK = {"SecretsPrefix": "cliniko-automations-dev/"}
FIRST_STACKS_SECRETS = sorted(
    {
        name
        for references in (load_accounts(), load_form_sources(), load_subscribers())
        for _where, name in references.secret_references()
    }
)
WITH_POLICIES = sorted(
    name
    for name, resource in TEMPLATE["Resources"].items()
    if resource["Type"] == "AWS::Serverless::Function" and "Policies" in resource["Properties"]
)


@pytest.mark.parametrize("function", WITH_POLICIES)
def test_a_second_stack_with_its_own_prefix_reads_none_of_the_first_stack_s_secrets(function):
    # ClinikoApiKeySecretName's default named the first prefix's main-clinic key: the second
    # stack's erasure may read it, acts on that account when a request by contact id names
    # none, and searches it too (as account `default`) for every request by email.
    assert all(name.startswith("cliniko-automations/") for name in FIRST_STACKS_SECRETS)
    readable = [name for name in FIRST_STACKS_SECRETS if may_read(function, name, SECOND_STACK)]
    assert readable == []


def test_a_second_stack_s_erasure_defaults_to_an_account_of_its_own_file():
    # Left empty, the parameter names no key: the erasure takes the accounts file's
    # main-clinic (or first account), whose key the build holds under the stack's own prefix.
    # Named as main-clinic's key under the prefix, a file whose account was renamed had every
    # request search an account whose secret was never made, and fail.
    environment = TEMPLATE["Resources"]["ErasureApiFunction"]["Properties"]["Environment"]
    for stack in (SECOND_STACK, None):
        resolver = _resolver(stack) if stack else _resolver()
        assert resolver.resolve(environment)["Variables"]["CLINIKO_API_KEY_SECRET_NAME"] == ""
    key = "cliniko-automations-dev/accounts/main-clinic/api-key"
    assert may_read("ErasureApiFunction", key, SECOND_STACK)
