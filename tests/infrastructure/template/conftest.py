"""The built artifact, once per test session: `scripts/build.py` for the deployed arm64 and for
this machine's x86_64 (the packaging smoke test can only import native wheels of its own kind).
"""

from __future__ import annotations

import functools
import importlib.util
import os
import subprocess
import sys
from pathlib import Path
from types import ModuleType

import pytest
from local_run.runtime_python import RuntimePythonMissing, find_runtime_python

ROOT = Path(__file__).resolve().parents[3]
SAM_VENV = ROOT / ".venv-sam"
CHECKOV_VENV = ROOT / ".venv-checkov"


@functools.cache
def build_script() -> ModuleType:
    """scripts/build.py, loaded by path (scripts/ is no package): its constants and helpers."""
    spec = importlib.util.spec_from_file_location("build_script", ROOT / "scripts" / "build.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


HOST_ARCH = build_script().HOST_ARCH


def tool(venv: Path, name: str) -> Path:
    path = venv / "bin" / name
    if not path.exists():
        pytest.fail(f"{path.relative_to(ROOT)} missing: scripts/bootstrap installs it")
    return path


def tool_env() -> dict[str, str]:
    env = dict(os.environ)
    env["SAM_CLI_TELEMETRY"] = "0"
    # The tools run offline: no telemetry, no update checks, no guideline downloads.
    env["BC_SKIP_MAPPING"] = "TRUE"
    env["CHECKOV_RUN_SCA_PACKAGE_SCAN_V2"] = "false"
    env.pop("AWS_ENDPOINT_URL", None)
    return env


def _build(*args: str) -> subprocess.Popen[bytes]:
    return subprocess.Popen(  # noqa: S603 - our own build script
        [sys.executable, str(ROOT / "scripts" / "build.py"), *args],
        cwd=ROOT,
        stdout=subprocess.DEVNULL,
    )


@pytest.fixture(scope="session")
def built() -> dict[str, Path]:
    """arch -> the sam build directory (one code directory per function inside)."""
    tool(SAM_VENV, "sam")
    assert _build("--stage-only").wait() == 0
    arches = ["arm64"] if HOST_ARCH == "arm64" else ["arm64", HOST_ARCH]
    # Both builds at once: each is mostly waiting on pip downloads and file copies.
    builds = {arch: _build("--no-stage", "--arch", arch) for arch in arches}
    for arch, process in builds.items():
        assert process.wait() == 0, f"build for {arch} failed"
    return {arch: build_script().build_dir(arch) for arch in arches}


@pytest.fixture(scope="session")
def runtime_python() -> str:
    """The Lambda runtime's Python (3.13) on this machine."""
    try:
        return find_runtime_python()
    except RuntimePythonMissing as exc:
        pytest.fail(str(exc))
