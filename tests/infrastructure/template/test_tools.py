"""The template passes SAM's validation (plain and --lint), cfn-lint and checkov."""

from __future__ import annotations

import json
import subprocess

import pytest
from local_run.template import load

from .conftest import CHECKOV_VENV, ROOT, SAM_VENV, tool, tool_env

pytestmark = pytest.mark.sam


def run(command: list[str]) -> subprocess.CompletedProcess[str]:
    return subprocess.run(  # noqa: S603 - our own tools, fixed arguments
        command, cwd=ROOT, env=tool_env(), capture_output=True, text=True, timeout=240
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
