"""samconfig.toml deploys: every environment's parameter_overrides, read the way `sam deploy`
reads them (the SAM CLI's own config provider and CfnParameterOverridesType, run in .venv-sam),
satisfy template.yaml's constraints. SAM splits an unquoted value at its first space, so
`ClinikoUserAgent=Clinic automations (it@example.com)` would arrive as `Clinic`.
"""

from __future__ import annotations

import json
import re
import subprocess
import tomllib
from typing import Any

import pytest
from cliniko_automations.cliniko.config import check_user_agent
from cliniko_automations.common.accounts import load_accounts
from cliniko_automations.intake.config import load_form_sources
from local_run.template import load

from .conftest import ROOT, SAM_VENV, tool, tool_env

pytestmark = pytest.mark.sam

SAMCONFIG = ROOT / "samconfig.toml"
PARAMETERS: dict[str, dict[str, Any]] = load(ROOT / "template.yaml")["Parameters"]

# Runs inside .venv-sam: `sam deploy --config-env ENV`'s own reading of parameter_overrides.
# The config provider needs the deploy command's click context to know its options.
READ_OVERRIDES = """
import json, sys
from pathlib import Path
import click
from samcli.cli.cli_config_file import ConfigProvider
from samcli.commands.deploy.command import cli as deploy
option = next(p for p in deploy.params if p.name == "parameter_overrides")
found = {}
for env in sys.argv[2:]:
    with click.Context(deploy, info_name="deploy"):
        config = ConfigProvider(section="parameters")(Path(sys.argv[1]), env, ["deploy"])
    found[env] = option.type.convert(config.get("parameter_overrides"), option, None)
print(json.dumps(found))
"""


def _environments() -> list[str]:
    config = tomllib.loads(SAMCONFIG.read_text(encoding="utf-8"))
    return [
        env
        for env, commands in config.items()
        if isinstance(commands, dict) and "deploy" in commands
    ]


@pytest.fixture(scope="module")
def overrides() -> dict[str, dict[str, str]]:
    """environment -> parameter -> value, as the SAM CLI parses samconfig.toml."""
    result = subprocess.run(  # noqa: S603 - our own fixed script in the SAM CLI's venv
        [str(tool(SAM_VENV, "python")), "-c", READ_OVERRIDES, str(SAMCONFIG), *_environments()],
        cwd=ROOT,
        env=tool_env(),
        capture_output=True,
        text=True,
        timeout=240,
        check=False,
    )
    assert result.returncode == 0, result.stderr
    return json.loads(result.stdout)


def _problems(name: str, value: str) -> list[str]:
    """Why CloudFormation would refuse `value` for parameter `name` (empty when it accepts it)."""
    spec = PARAMETERS.get(name)
    if spec is None:
        return [f"{name} is not a parameter of template.yaml"]
    problems = []
    items = value.split(",") if spec["Type"] == "CommaDelimitedList" else [value]
    for item in items:
        pattern = spec.get("AllowedPattern")
        if pattern is not None and not re.fullmatch(pattern, item):
            problems.append(f"{name}={item!r} does not match AllowedPattern {pattern}")
        allowed = spec.get("AllowedValues")
        if allowed is not None and item not in [str(v) for v in allowed]:
            problems.append(f"{name}={item!r} is not one of {allowed}")
        if spec["Type"] == "Number":
            number = float(item)
            if "MinValue" in spec and number < spec["MinValue"]:
                problems.append(f"{name}={item!r} is below MinValue {spec['MinValue']}")
            if "MaxValue" in spec and number > spec["MaxValue"]:
                problems.append(f"{name}={item!r} is above MaxValue {spec['MaxValue']}")
    return problems


def test_every_environment_is_read():
    assert {"default", "dev", "prod"} <= set(_environments())


@pytest.mark.parametrize("env", _environments())
def test_every_value_satisfies_the_template(overrides, env):
    values = overrides[env]
    problems = [p for name, value in values.items() for p in _problems(name, value)]
    missing = [
        name for name, spec in PARAMETERS.items() if "Default" not in spec and name not in values
    ]
    assert not problems, problems
    assert not missing, f"{env} leaves parameters without a default unset: {missing}"


@pytest.mark.parametrize("env", _environments())
def test_every_user_agent_is_accepted_by_the_runtime(overrides, env):
    check_user_agent(overrides[env]["ClinikoUserAgent"])


@pytest.mark.parametrize("env", _environments())
def test_the_shipped_form_sources_are_readable_under_every_prefix(overrides, env):
    # The functions may read only SecretsPrefix*, and form_sources.yaml and
    # cliniko_accounts.yaml are the same files in every environment's artifact.
    prefix = overrides[env].get("SecretsPrefix", PARAMETERS["SecretsPrefix"]["Default"])
    references = load_form_sources().secret_references() + load_accounts().secret_references()
    named = [name for _where, name in references]
    outside = [n for n in named if not n.startswith(prefix)]
    assert not outside, f"{env}: SecretsPrefix {prefix!r} does not cover {outside}"
