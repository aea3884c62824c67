"""What README.md tells an operator to run or to set still exists: the set-up snippet that
lists the secrets to create runs, every stack output it reads is one the template has, and the
configuration table names every stack parameter (a walkthrough of the set-up steps found the
snippet calling a method that was gone, and four parameters missing from the table)."""

from __future__ import annotations

import dataclasses
import importlib
import os
import pkgutil
import re
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
from cliniko_automations.changefeed.events import CONTACTS_SOURCE, WEBHOOKS_SOURCE
from cliniko_automations.changefeed.subscribers import load_subscribers
from cliniko_automations.changefeed.webhook_stack import render
from cliniko_automations.common.accounts import load_accounts
from cliniko_automations.intake.config import load_form_sources
from local_run.template import load

ROOT = Path(__file__).resolve().parents[2]
README = (ROOT / "README.md").read_text(encoding="utf-8")


def one_subscriber(tmp_path: Path) -> Path:
    """A webhooks.yaml naming one subscriber (the shipped one names none)."""
    webhooks = tmp_path / "webhooks.yaml"
    webhooks.write_text(
        "subscribers:\n"
        "  - name: crm-sync\n"
        "    url: https://hooks.example.com/cliniko\n"
        "    events: [contact.created]\n"
        "    secret: cliniko-automations/webhooks/crm-sync/signing-secret\n",
        encoding="utf-8",
    )
    return webhooks


def test_the_snippet_that_lists_the_secrets_to_create_runs(tmp_path: Path) -> None:
    # With a webhook subscriber, as a clinic that uses the change feed's webhooks has: its
    # secret is one to create too (the shipped webhooks.yaml lists none).
    webhooks = one_subscriber(tmp_path)
    (snippet,) = re.findall(
        r'^python -c "(from cliniko_automations\.intake\.config.*?)"$',
        README,
        flags=re.MULTILINE | re.DOTALL,
    )
    listed = subprocess.run(  # noqa: S603 - README's own snippet
        [sys.executable, "-c", snippet],
        capture_output=True,
        text=True,
        timeout=60,
        cwd=ROOT,
        env={**os.environ, "WEBHOOKS_FILE": str(webhooks)},
    )
    assert listed.returncode == 0, listed.stderr
    wanted = [name for _, name in load_form_sources().secret_references()]
    wanted += [name for _, name in load_accounts().secret_references()]
    wanted += [name for _, name in load_subscribers(webhooks).secret_references()]
    assert "cliniko-automations/webhooks/crm-sync/signing-secret" in wanted
    assert listed.stdout.split() == wanted


def test_every_stack_output_it_reads_is_the_template_s() -> None:
    read = set(re.findall(r"\$\(output (\w+)\)", README))
    assert read, "README reads no stack output"
    assert read <= set(load()["Outputs"])


def test_the_configuration_table_names_every_stack_parameter() -> None:
    table = README[README.index("Stack parameters (") : README.index("Form sources, field")]
    named = set(re.findall(r"`(\w+)`", table))
    assert set(load()["Parameters"]) <= named


# What the operating CLIs read from the environment, each from its stack output.
OPERATING_VARIABLES = {
    "scripts/dead_letters.py": {
        "SUBMISSION_QUEUE_URL": "SubmissionQueueUrl",
        "DEAD_LETTER_QUEUE_URL": "SubmissionDeadLetterQueueUrl",
        "PARKED_QUEUE_URL": "ParkedQueueUrl",  # --parked
        "IDEMPOTENCY_TABLE": "IdempotencyTableName",
        "SUBMISSION_TABLE": "SubmissionStoreTableName",
    },
    "scripts/cleanup.py": {
        "CLEANUP_STATE_MACHINE_ARN": "CleanupStateMachineArn",
        "CLEANUP_RUNS_TABLE": "CleanupRunsTableName",
        "LEDGER_TABLE": "LedgerTableName",
    },
    # Step 5 is the README's one list of these variables; the webhook dead letters' were listed
    # apart, in the change feed section (the queue itself is the webhook stack's output).
    "functions/cliniko_automations/changefeed/webhook_dead_letters.py": {
        "EVENT_BUS_NAME": "ContactEventBusName",
        "AUDIT_TABLE": "ErasureAuditTableName",
    },
}


@pytest.mark.parametrize("script", sorted(OPERATING_VARIABLES))
def test_step_5_exports_every_output_the_operating_clis_read(script: str) -> None:
    # Step 5 sets up the operating CLIs; it left out PARKED_QUEUE_URL, which
    # `dead_letters.py --parked` (the parked submissions of "Operating") needs.
    read = OPERATING_VARIABLES[script]
    source = (ROOT / script).read_text(encoding="utf-8")
    assert all(name in source for name in read), f"{script} no longer reads one of {read}"
    step = README[README.index("### 5. The stack") : README.index("### 6. Connect")]
    exported = dict(re.findall(r"^export (\w+)=\$\(output (\w+)\)", step, flags=re.MULTILINE))
    assert {name: exported.get(name) for name in read} == read


def test_tear_down_says_which_tables_go_and_which_are_kept() -> None:
    # A clinic tearing down wants to know where its data ends up: the step named the idempotency
    # table alone among the tables deleted, not the submission store (submissions' bodies).
    step = README[README.index("### 9. Tear down") : README.index("## Configuration")]
    deleted, kept = step.split("It **keeps**", 1)
    resources = load()["Resources"]
    tables = {n for n, r in resources.items() if r["Type"] == "AWS::DynamoDB::Table"}
    retained = {n for n in tables if resources[n].get("DeletionPolicy", "Delete") != "Delete"}
    assert set(re.findall(r"`(\w+Table)`", kept)) == retained
    assert set(re.findall(r"`(\w+Table)`", deleted)) == tables - retained


def test_the_set_up_makes_the_venv_before_it_first_activates_it() -> None:
    # Followed in order from a fresh clone, step 3 activated .venv, which only step 4's
    # scripts/bootstrap makes: "No such file or directory".
    set_up = README[README.index("## Set up for your clinic") : README.index("## Configuration")]
    first_use = set_up.index(". .venv/bin/activate")
    assert "scripts/bootstrap" in set_up[:first_use]


def test_the_change_feed_names_every_source_it_puts_on_the_bus() -> None:
    # A bus subscriber's rule picks by source: the section named the contacts events alone,
    # and a rule on `detail-type` alone also took the webhook deliveries (their detail-types
    # are the same), whose bodies carry the contact's fields for a subscriber opted in.
    section = README[README.index("## Contacts change feed") : README.index("## Architecture")]
    for source in (CONTACTS_SOURCE, WEBHOOKS_SOURCE):
        assert f"`{source}`" in section, source


def _alarms(template: dict[str, Any]) -> set[str]:
    resources = template["Resources"]
    return {n for n, r in resources.items() if r["Type"] == "AWS::CloudWatch::Alarm"}


def test_every_alarm_it_names_is_one_the_stacks_have(tmp_path: Path) -> None:
    # An alarm's e-mail names its logical id (`<stack>-DeadLettersAlarm-...`): a README name
    # that is no alarm's leaves the operator looking for a section that is not there.
    webhooks = one_subscriber(tmp_path)
    alarms = _alarms(load()) | _alarms(render(load_subscribers(webhooks)))
    named = set(re.findall(r"`(\w+Alarm)`", README))
    assert named, "README names no alarm"
    assert named <= alarms, sorted(named - alarms)


def test_operating_lists_every_alarm_of_the_stack() -> None:
    # The Operating list named 9 of 25 alarms: an e-mail from IntakeUnavailableAlarm or
    # PacingFallbackAlarm found no line saying what it meant. A function's errors and
    # throttles alarms are named by their pattern, each function having one.
    start = README.index("- **Alarms** (")
    listed = README[start : README.index("- **Dead letters**", start)]
    template = load()
    functions = {
        n for n, r in template["Resources"].items() if r["Type"] == "AWS::Serverless::Function"
    }
    unlisted = []
    for alarm in sorted(_alarms(template)):
        per_function = re.fullmatch(r"(\w+)(Errors|Throttles)Alarm", alarm)
        by_pattern = (
            per_function is not None
            and f"{per_function[1]}Function" in functions
            and f"`<Function>{per_function[2]}Alarm`" in listed
        )
        if not by_pattern and f"`{alarm}`" not in listed:
            unlisted.append(alarm)
    assert not unlisted


@pytest.mark.parametrize(
    "tool",
    [
        "scripts/erasure.py",
        "scripts/cleanup.py",
        "scripts/dead_letters.py",
        "functions/cliniko_automations/changefeed/webhook_dead_letters.py",
    ],
)
def test_every_variable_an_operating_cli_reads_is_named(tool: str) -> None:
    # The erasure's local mode read CLINIKO_API_KEY_SECRET_NAME, CLINIKO_USER_AGENT and
    # CLINIKO_BASE_URL from the environment, and the README listed them as "...".
    source = (ROOT / tool).read_text(encoding="utf-8")
    read = set(re.findall(r"os\.environ\.get\(\s*\"([A-Z][A-Z0-9_]+)\"", source))
    assert read, f"{tool} reads no variable"
    assert not {name for name in read if name not in README}


def _variables_read() -> set[str]:
    """Every environment variable the code reads: each settings field (`NAME`), the Cliniko
    settings' own names, and every name the sources quote."""
    import cliniko_automations
    from cliniko_automations.common.cliniko_settings import ENV_NAMES
    from cliniko_automations.common.settings import EnvironmentSettings

    for module in pkgutil.walk_packages(cliniko_automations.__path__, "cliniko_automations."):
        importlib.import_module(module.name)
    pending, read = list(EnvironmentSettings.__subclasses__()), set(ENV_NAMES.values())
    while pending:
        settings = pending.pop()
        pending += settings.__subclasses__()
        read |= {field.name.upper() for field in dataclasses.fields(settings)}
    for folder in ("functions", "scripts"):
        for path in (ROOT / folder).rglob("*.py"):
            read |= set(re.findall(r"\"([A-Z][A-Z0-9_]+)\"", path.read_text(encoding="utf-8")))
    return read


def test_every_variable_it_exports_or_sets_is_read() -> None:
    # A variable set by hand that nothing reads (a renamed setting) changes nothing, silently.
    exported = set(re.findall(r"^export ([A-Z][A-Z0-9_]+)=", README, flags=re.MULTILINE))
    exported |= set(re.findall(r"`([A-Z][A-Z0-9_]+)=N? ?(?:scripts|python)", README))
    assert {"SUBMISSION_QUEUE_URL", "EVENT_BUS_NAME", "TEST_WORKERS"} <= exported
    shells = (ROOT / "scripts/test").read_text(encoding="utf-8")
    shells += (ROOT / "scripts/bootstrap").read_text(encoding="utf-8")
    boto3_reads = {"AWS_DEFAULT_REGION"}
    unread = {
        name
        for name in exported - boto3_reads - _variables_read()
        if f"${{{name}" not in shells and f"${name}" not in shells
    }
    assert not unread


def test_what_is_kept_names_every_table_and_queue_and_their_expiry() -> None:
    # A clinic's second year: the table is where a reader looks for how long each store keeps
    # what it holds; a store added without a row, or an expiry changed in the template alone,
    # leaves it wrong.
    section = README[README.index("| store | holds | how long | why |") :]
    table = section[: section.index("\n\n")]
    named = set(re.findall(r"`(\w+)`", table))
    resources = load()["Resources"]
    stores = {
        name
        for name, resource in resources.items()
        if resource["Type"] in ("AWS::DynamoDB::Table", "AWS::SQS::Queue")
    }
    assert stores <= named, stores - named
    rows = {row.split("|")[1].strip(): row for row in table.splitlines()[2:]}
    for name in stores:
        (row,) = [r for first, r in rows.items() if f"`{name}`" in first]
        ttl = resources[name]["Properties"].get("TimeToLiveSpecification")
        if ttl:
            assert f"TTL `{ttl['AttributeName']}`" in row, name
        elif resources[name]["Type"] == "AWS::DynamoDB::Table":
            assert "for good (no TTL" in row, name
        else:
            days = resources[name]["Properties"]["MessageRetentionPeriod"] // 86400
            assert f"| {days} days" in row, name
    assert "`LogRetentionInDays` (365)" in table
    assert load()["Parameters"]["LogRetentionInDays"]["Default"] == 365


def test_the_cost_estimate_counts_the_template_s_alarms() -> None:
    # README's monthly cost prices the template's alarms by their number: it said 23 when
    # the same release added FormSignatureRefusedAlarm and ErasureUnavailableAlarm (25).
    (counted,) = re.findall(r"(\d+) alarms \(more metrics where they sum several\)", README)
    alarms = [r for r in load()["Resources"].values() if r["Type"] == "AWS::CloudWatch::Alarm"]
    assert int(counted) == len(alarms)


def test_the_rate_limit_note_says_when_the_throttle_alarm_fires() -> None:
    # It said "alarms after 15 minutes", the alarm of three 5-minute periods in a row this
    # release replaced with 3 attempts within one 15-minute period.
    props = load()["Resources"]["ClinikoThrottledAlarm"]["Properties"]
    attempts = int(props["Threshold"]) + 1  # GreaterThanThreshold
    minutes = props["Period"] * props["EvaluationPeriods"] // 60
    start = README.index("- **Cliniko's rate limit**")
    note = " ".join(README[start : README.index("\n- **", start + 1)].split())
    assert props["ComparisonOperator"] == "GreaterThanThreshold"
    assert (
        f"`ClinikoThrottledAlarm` fires once {attempts} attempts are turned away within "
        f"{minutes} minutes" in note
    )
