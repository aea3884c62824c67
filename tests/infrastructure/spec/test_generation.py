"""generated_client/ is exactly what the pinned generator makes of openapi.yaml."""

from __future__ import annotations

import importlib.util
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from .conftest import ROOT

SCRIPT = ROOT / "scripts" / "generate_client.py"


def _load_script():
    spec = importlib.util.spec_from_file_location("generate_client", SCRIPT)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_regenerating_changes_nothing() -> None:
    result = subprocess.run(  # noqa: S603 (fixed argv: our own script)
        [sys.executable, str(SCRIPT), "--check"],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert result.returncode == 0, result.stdout + result.stderr
    assert result.stdout.strip() == "generated_client/ is up to date with openapi.yaml."


def test_check_fails_with_a_unified_diff_on_any_difference(tmp_path: Path) -> None:
    committed = tmp_path / "generated_client"
    shutil.copytree(ROOT / "generated_client", committed, ignore=_build_artefacts)
    model = committed / "cliniko_client" / "models" / "doctor_type.py"
    model.write_text(model.read_text().replace("SPECIALIST", "SURGEON"))
    (committed / "stray.py").write_text("x = 1\n")

    result = subprocess.run(  # noqa: S603 (fixed argv: our own script)
        [sys.executable, str(SCRIPT), "--check", "--output", str(committed)],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )

    assert result.returncode == 1, result.stdout + result.stderr
    assert "is out of date with openapi.yaml" in result.stderr
    changes = result.stdout
    assert "--- a/generated_client/cliniko_client/models/doctor_type.py" in changes
    assert "+++ b/generated_client/cliniko_client/models/doctor_type.py" in changes
    assert '-    SURGEON = "specialist"' in changes
    assert '+    SPECIALIST = "specialist"' in changes
    assert "--- a/generated_client/stray.py\n+++ /dev/null" in changes
    assert changes.count("+++ ") == 2  # nothing else differs


def test_writing_restores_the_output_and_leaves_build_artefacts(tmp_path: Path) -> None:
    target = tmp_path / "generated_client"
    shutil.copytree(ROOT / "generated_client", target, ignore=_build_artefacts)
    (target / "cliniko_client" / "models" / "contact.py").unlink()
    (target / "stray.py").write_text("x = 1\n")
    (target / "thing.egg-info").mkdir()
    (target / "thing.egg-info" / "PKG-INFO").write_text("kept\n")

    written = subprocess.run(  # noqa: S603 (fixed argv: our own script)
        [sys.executable, str(SCRIPT), "--output", str(target)],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert written.returncode == 0, written.stdout + written.stderr
    assert (target / "cliniko_client" / "models" / "contact.py").is_file()
    assert not (target / "stray.py").exists()
    assert (target / "thing.egg-info" / "PKG-INFO").read_text() == "kept\n"
    generate_client = _load_script()
    assert generate_client.diff(ROOT / "generated_client", target) == ""


def _build_artefacts(directory: str, names: list[str]) -> set[str]:
    return {n for n in names if n in {"__pycache__", "build"} or n.endswith(".egg-info")}


def test_wrong_tool_versions_fail_clearly(tmp_path: Path) -> None:
    # An interpreter whose bin directory holds a ruff of another version.
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    (bin_dir / "python").symlink_to(sys.executable)
    ruff = bin_dir / "ruff"
    ruff.write_text("#!/bin/sh\necho 'ruff 0.0.1'\n")
    ruff.chmod(0o755)
    result = subprocess.run(  # noqa: S603 (fixed argv: our own script)
        [str(bin_dir / "python"), str(SCRIPT), "--check"],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
        env={**os.environ, "PYTHONPATH": os.pathsep.join(p for p in sys.path if p)},
    )
    assert result.returncode == 2, result.stdout + result.stderr
    assert "ruff 0.0.1 (pinned: 0.17.6)" in result.stderr
    assert result.stdout == ""


@pytest.mark.parametrize("name", ["setup.py", "pyproject.toml"])
def test_generated_distribution_is_pip_installable_metadata(name: str) -> None:
    # `--meta setup`: a setup.py that pip builds with setuptools, no other build backend.
    text = (ROOT / "generated_client" / name).read_text()
    if name == "setup.py":
        assert 'name="generated_client"' in text
        assert "find_packages()" in text
    else:
        assert "[build-system]" not in text


def test_the_generated_client_stands_on_httpx_alone_and_keeps_its_token_out_of_its_repr():
    # Its models and clients are dataclasses (scripts/client_templates): attrs's import cost
    # every function that calls Cliniko 5 % of a minimal handler's cold start.
    from cliniko_client import AuthenticatedClient

    generated = (ROOT / "generated_client").rglob("*.py")
    assert not [p for p in generated if "attrs" in p.read_text(encoding="utf-8")]
    client = AuthenticatedClient("https://api.au1.cliniko.com/v1", "the-secret-token")
    assert "the-secret-token" not in repr(client)
    assert client.with_headers({"X-A": "1"}).headers == {"X-A": "1"}
    assert client.with_headers({"X-A": "1"}).token == "the-secret-token"
