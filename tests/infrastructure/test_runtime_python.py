"""Finding the Lambda runtime's python3.13 without pyenv version names."""

from __future__ import annotations

import os
import stat
import subprocess
from pathlib import Path

import pytest
from local_run.runtime_python import RuntimePythonMissing, find_runtime_python


def fake_interpreter(path: Path, version: str, exit_code: int = 0) -> Path:
    """A stand-in for an interpreter binary: answers the version probe, as the real one does."""
    path.parent.mkdir(parents=True, exist_ok=True)
    major, minor = version.split(".")[:2]
    path.write_text(f'#!/bin/sh\necho "{path} ({major}, {minor})"\nexit {exit_code}\n')
    path.chmod(path.stat().st_mode | stat.S_IXUSR)
    return path


def test_a_pyenv_shim_that_cannot_run_is_passed_over_for_an_installed_version(tmp_path):
    shims = tmp_path / "shims"
    fake_interpreter(shims / "python3.13", "3.11", exit_code=127)  # pyenv: 3.13 not selected
    root = tmp_path / "pyenv"
    fake_interpreter(root / "versions/3.13.0/bin/python3.13", "3.13")
    newest = fake_interpreter(root / "versions/3.13.10/bin/python3.13", "3.13")
    env = {"PATH": str(shims), "PYENV_ROOT": str(root), "HOME": str(tmp_path)}
    assert find_runtime_python(env) == str(newest)


def test_python3_13_on_path_comes_first(tmp_path):
    on_path = fake_interpreter(tmp_path / "bin/python3.13", "3.13")
    fake_interpreter(tmp_path / "pyenv/versions/3.13.1/bin/python3.13", "3.13")
    env = {"PATH": str(on_path.parent), "PYENV_ROOT": str(tmp_path / "pyenv")}
    assert find_runtime_python(env) == str(on_path)


def test_none_found_says_what_is_needed_and_the_command(tmp_path):
    fake_interpreter(tmp_path / "bin/python3.13", "3.12")  # misnamed: not the runtime's
    env = {"PATH": str(tmp_path / "bin"), "HOME": str(tmp_path)}
    with pytest.raises(RuntimePythonMissing) as missing:
        find_runtime_python(env)
    assert "Python 3.13" in str(missing.value)
    assert "`pyenv install 3.13`" in str(missing.value)


def test_this_machines_runtime_python_is_found_without_pyenv_version():
    env = {k: v for k, v in os.environ.items() if k != "PYENV_VERSION"}
    try:
        python = find_runtime_python(env)
    except RuntimePythonMissing as exc:
        pytest.skip(str(exc))
    version = subprocess.run(  # noqa: S603 - the interpreter found
        [python, "-c", "import sys; print(sys.version_info[:2])"],
        capture_output=True,
        text=True,
        check=True,
    )
    assert version.stdout.strip() == "(3, 13)"
