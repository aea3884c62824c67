"""The template passes SAM's validation (plain and --lint), cfn-lint and checkov."""

from __future__ import annotations

import json
import subprocess

import pytest
from local_run.template import load

from .conftest import CHECKOV_VENV, ROOT, SAM_VENV, tool, tool_env

pytestmark = pytest.mark.sam


def run(command: list[str], **environment: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(  # noqa: S603 - our own tools, fixed arguments
        command,
        cwd=ROOT,
        env={**tool_env(), **environment},
        capture_output=True,
        text=True,
        timeout=240,
    )


def test_sam_validate_lint():
    result = run([str(tool(SAM_VENV, "sam")), "validate", "--lint", "--template", "template.yaml"])
    assert result.returncode == 0, result.stdout + result.stderr
    assert "is a valid SAM Template" in result.stdout + result.stderr


def test_sam_validate_with_region():
    result = run(
        [str(tool(SAM_VENV, "sam")), "validate", "--region", "eu-west-1", "-t", "template.yaml"]
    )
    assert result.returncode == 0, result.stdout + result.stderr
    assert "is a valid SAM Template" in result.stdout + result.stderr


def test_cfn_lint():
    result = run([str(tool(SAM_VENV, "cfn-lint")), "template.yaml"])
    assert result.returncode == 0, result.stdout + result.stderr


def test_checkov_passes_with_justified_skips_only():
    result = run(
        [
            str(tool(CHECKOV_VENV, "checkov")),
            "-f",
            "template.yaml",
            "--framework",
            "cloudformation",
            "--output",
            "json",
            "--skip-download",
        ]
    )
    report = json.loads(result.stdout)
    summary = report["summary"]
    failed = [
        f"{c['check_id']} {c['resource']}" for c in report["results"].get("failed_checks", [])
    ]
    assert summary["failed"] == 0, failed
    assert result.returncode == 0, result.stderr
    skipped = report["results"]["skipped_checks"]
    assert summary["passed"] > 0
    for check in skipped:
        # A skip names the check it silences, with the reason from the template's Metadata.
        assert check["check_result"]["suppress_comment"].strip(), check["check_id"]
    # Every skip in the template silences a check that runs: no skip is there for show.
    declared = set()
    for name, resource in load(ROOT / "template.yaml")["Resources"].items():
        for skip in resource.get("Metadata", {}).get("checkov", {}).get("skip", []):
            declared.add((skip["id"], f"{resource['Type']}.{name}"))
    assert {(c["check_id"], c["resource"]) for c in skipped} == declared


# SAM's own transform, offline: each role's managed policies as SAM names them.
MANAGED_POLICIES = """
import json, sys
from samtranslator.translator.transform import transform
from samtranslator.yaml_helper import yaml_parse

class ManagedPolicies:
    def load(self):
        return self
    def get(self, name, default=None):
        return "arn:aws:iam::aws:policy/" + name
    __getitem__ = get

template = yaml_parse(open("template.yaml").read())
template["Globals"]["Function"]["CodeUri"] = "s3://bucket/key"
transformed = transform(template, {}, ManagedPolicies())
print(json.dumps({
    name: resource["Properties"].get("ManagedPolicyArns", [])
    for name, resource in transformed["Resources"].items()
    if resource["Type"] == "AWS::IAM::Role"
}))
"""


def test_no_role_gets_a_managed_policy_on_every_resource_of_a_kind():
    # An SQS event of a function has SAM attach AWSLambdaSQSQueueExecutionRole, whose receive
    # and delete are on every queue of the account (the dead letters and the webhook stack's
    # letters, contacts' fields in them): the worker's queue is an event source mapping of its
    # own, with the worker's grants on that queue alone. Logs and traces are what is left.
    result = run(
        [str(tool(SAM_VENV, "python")), "-c", MANAGED_POLICIES], AWS_DEFAULT_REGION="eu-west-1"
    )
    assert result.returncode == 0, result.stderr
    managed = json.loads(result.stdout)
    assert "IntakeWorkerFunctionRole" in managed
    allowed = {
        "arn:aws:iam::aws:policy/service-role/AWSLambdaBasicExecutionRole",
        "arn:aws:iam::aws:policy/AWSXrayWriteOnlyAccess",
    }
    assert {role: set(arns) - allowed for role, arns in managed.items()} == {
        role: set() for role in managed
    }
