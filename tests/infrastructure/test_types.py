"""mypy --strict over what is deployed: functions/ and the generated client (`[tool.mypy]` in
pyproject.toml says which files and how strict). Its output is the failure message.

mypy keeps its cache in .mypy_cache (git-ignored): a first run checks everything, later runs
only what changed.
"""

from __future__ import annotations

import subprocess
import sys
import textwrap
import tomllib
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]

# Both runs share mypy's cache: one worker runs them, one after the other.
pytestmark = pytest.mark.xdist_group("mypy")


def mypy(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(  # noqa: S603 (fixed argv: mypy on our files)
        [sys.executable, "-m", "mypy", *args],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=600,
        check=False,
    )


def test_configuration_checks_the_deployed_code_strictly() -> None:
    with (ROOT / "pyproject.toml").open("rb") as file:
        config = tomllib.load(file)["tool"]["mypy"]
    assert config["strict"] is True
    assert set(config["files"]) == {"functions", "generated_client/cliniko_client"}
    assert all((ROOT / path).is_dir() for path in config["files"])
    # What template.yaml deploys (tests/infrastructure/test_runtime_python.py holds the two
    # in step with scripts/lock.py).
    template = (ROOT / "template.yaml").read_text()
    assert f"Runtime: python{config['python_version']}" in template
    # A silenced error names its code, so that silencing one never hides another.
    assert "ignore-without-code" in config["enable_error_code"]


def test_functions_and_generated_client_pass_mypy_strict() -> None:
    result = mypy()
    assert result.returncode == 0, result.stdout + result.stderr
    assert result.stdout.startswith("Success: no issues found"), result.stdout


def test_an_adapter_that_breaks_its_port_is_an_error(tmp_path: Path) -> None:
    """The ports are Protocols: an adapter handed to the core that does not fit its port is
    caught by the same configuration, not at run time."""
    adapter = tmp_path / "broken_adapter.py"
    adapter.write_text(
        textwrap.dedent(
            """
            from cliniko_automations.intake_worker.worker import Parking


            class WrongParking:
                # The port's park() takes the submission, a reason and the candidate ids.
                def park(self, submission: object) -> None: ...


            parking: Parking = WrongParking()
            """
        )
    )
    result = mypy("--config-file", str(ROOT / "pyproject.toml"), str(adapter))
    assert result.returncode == 1, result.stdout + result.stderr
    assert 'expression has type "WrongParking", variable has type "Parking"' in result.stdout, (
        result.stdout
    )
    assert "def park(self, submission: Submission, reason: str" in result.stdout, result.stdout
