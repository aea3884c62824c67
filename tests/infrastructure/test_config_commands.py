"""The configuration check commands run as a developer and the build run them: a fresh
interpreter, `python -m` (tests/unit calls the same `main` in-process)."""

from __future__ import annotations

import subprocess
import sys

from cliniko_automations.intake.config import DEFAULT_PATH


def test_shipped_file_passes_the_check_command():
    done = subprocess.run(  # noqa: S603 (our own module, fixed arguments)
        [sys.executable, "-m", "cliniko_automations.intake.config", "--check", str(DEFAULT_PATH)],
        capture_output=True,
        text=True,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    assert "OK" in done.stdout


def test_shipped_accounts_file_passes_the_check_command():
    done = subprocess.run(
        [sys.executable, "-m", "cliniko_automations.common.accounts", "--check"],
        capture_output=True,
        text=True,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    assert "2 accounts: OK" in done.stdout
