"""An operating CLI whose stdout cannot take its output (`> /dev/full`, a file on a full disk):
one line saying so and exit 1 (README "Operating"), not a traceback of OSError ENOSPC."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest

from tests.integration.intake_worker.resources import DEAD_LETTERS_SCRIPT


@pytest.mark.parametrize("command", [["list"], ["--parked", "list"]])
def test_a_full_disk_under_stdout_is_one_line_and_exit_1(stack_env, command) -> None:
    with open("/dev/full", "w") as full:
        result = subprocess.run(  # noqa: S603 (our own script)
            [sys.executable, str(DEAD_LETTERS_SCRIPT), *command],
            stdout=full,
            stderr=subprocess.PIPE,
            text=True,
            env=stack_env,
            timeout=120,
            check=False,
        )
    assert result.returncode == 1, result.stderr
    assert result.stderr == (
        "dead_letters.py: its output could not be written: No space left on device\n"
    )


CONFIG_CHECKS = [
    "cliniko_automations.cleanup.config",
    "cliniko_automations.intake.config",
    "cliniko_automations.common.accounts",
    "cliniko_automations.changefeed.subscribers",
]


@pytest.mark.parametrize("module", CONFIG_CHECKS)
def test_a_config_check_on_a_full_disk_is_one_line_and_exit_1(module) -> None:
    with open("/dev/full", "w") as full:
        result = subprocess.run(  # noqa: S603 (our own module)
            [sys.executable, "-m", module, "--check"],
            stdout=full,
            stderr=subprocess.PIPE,
            text=True,
            timeout=120,
            check=False,
        )
    assert result.returncode == 1, result.stderr
    assert "Traceback" not in result.stderr
    assert result.stderr.endswith("its output could not be written: No space left on device\n")
    assert result.stderr.count("\n") == 1, result.stderr


@pytest.mark.parametrize("module", CONFIG_CHECKS)
def test_a_config_check_whose_reader_stopped_reading_ends_quietly(module) -> None:
    check = subprocess.Popen(  # noqa: S603 (our own module)
        [sys.executable, "-m", module, "--check"],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    check.stdout.close()  # as `| head -0` does, before the verdict is written
    err = check.stderr.read()
    check.stderr.close()
    assert (check.wait(timeout=120), err) == (141, "")


SCRIPTS = DEAD_LETTERS_SCRIPT.parent
EVERY_TOOL = [
    *([str(SCRIPTS / script)] for script in ("erasure.py", "cleanup.py", "dead_letters.py")),
    [str(SCRIPTS / "build.py")],
    ["-m", "cliniko_automations.changefeed.webhook_dead_letters"],
    ["-m", "cliniko_automations.changefeed.webhook_stack"],
    *(["-m", module] for module in CONFIG_CHECKS),
]


@pytest.mark.parametrize("buffered", [False, True], ids=["unbuffered", "buffered"])
@pytest.mark.parametrize("tool", EVERY_TOOL, ids=lambda tool: tool[-1].rsplit("/", 1)[-1])
def test_help_on_a_full_disk_is_one_line_and_exit_1(tool, buffered) -> None:
    # argparse drops its write's error: unbuffered (PYTHONUNBUFFERED=1) that was exit 0 and
    # nothing said; buffered, exit 120 and Python's two "Exception ignored" lines.
    env = {k: v for k, v in os.environ.items() if k != "PYTHONUNBUFFERED"}
    if not buffered:
        env["PYTHONUNBUFFERED"] = "1"
    with open("/dev/full", "w") as full:
        result = subprocess.run(  # noqa: S603 (our own tools)
            [sys.executable, *tool, "--help"],
            stdout=full,
            stderr=subprocess.PIPE,
            text=True,
            env=env,
            timeout=120,
            check=False,
        )
    assert result.returncode == 1, result.stderr
    assert result.stderr.endswith("its output could not be written: No space left on device\n")
    assert result.stderr.count("\n") == 1, result.stderr


def test_help_read_whole_still_exits_0() -> None:
    result = subprocess.run(  # noqa: S603 (our own script)
        [sys.executable, str(SCRIPTS / "cleanup.py"), "run", "--help"],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert (result.returncode, result.stderr) == (0, "")
    assert result.stdout.startswith("usage: cleanup.py run")
