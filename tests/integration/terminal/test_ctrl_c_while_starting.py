"""Ctrl-C in a tool's first few hundred milliseconds, while it imports its modules (an operator
who pressed Enter on the wrong command): one line and 130 (README "Operating"), as later. It
was a KeyboardInterrupt traceback from deep in importlib.

The moment is made exact rather than guessed with a timer: the tool runs as `python` runs it
(runpy, `__name__ == "__main__"`) under an audit hook that sends the process SIGINT when the
tool starts importing `trigger`, a module it imports at its top."""

from __future__ import annotations

import signal
import subprocess
import sys

import pytest

from tests.integration.terminal.hostile import SCRIPTS

# Imported at the top of each configuration check (pydantic only once it reads a file).
CONFIG_FILE = "cliniko_automations.common.config_file"

RUN_INTERRUPTED_AT_IMPORT = """
import os, runpy, signal, sys

target, trigger = sys.argv[1], sys.argv[2]


def ctrl_c(event, args):
    if event == "import" and args[0] == trigger:
        os.kill(os.getpid(), signal.SIGINT)


sys.addaudithook(ctrl_c)
sys.argv = [target, *sys.argv[3:]]
if target.endswith(".py"):
    runpy.run_path(target, run_name="__main__")
else:
    runpy.run_module(target, run_name="__main__", alter_sys=True)
"""


@pytest.mark.parametrize(
    ("target", "trigger", "argv", "prog"),
    [
        (str(SCRIPTS / "dead_letters.py"), "boto3", ["list"], "dead_letters.py"),
        (str(SCRIPTS / "erasure.py"), "uuid", ["status", "x"], "erasure.py"),
        (str(SCRIPTS / "cleanup.py"), "uuid", ["status"], "cleanup.py"),
        (str(SCRIPTS / "build.py"), "gzip", ["--stage-only"], "build.py"),
        ("local_run", "httpx", ["status"], "local_run"),
        (
            "cliniko_automations.changefeed.webhook_stack",
            "cliniko_automations.changefeed.subscribers",
            [],
            "webhook_stack",
        ),
        (
            "cliniko_automations.changefeed.webhook_dead_letters",
            "boto3",
            ["list"],
            "webhook_dead_letters",
        ),
        ("cliniko_automations.cleanup.config", "pydantic", ["--check"], "cleanup.config"),
        ("cliniko_automations.intake.config", CONFIG_FILE, ["--check"], "intake.config"),
        ("cliniko_automations.common.accounts", CONFIG_FILE, ["--check"], "common.accounts"),
        (
            "cliniko_automations.changefeed.subscribers",
            CONFIG_FILE,
            ["--check"],
            "changefeed.subscribers",
        ),
    ],
)
def test_ctrl_c_while_a_tool_imports_is_one_line_and_130(target, trigger, argv, prog) -> None:
    result = subprocess.run(  # noqa: S603 (our own tools)
        [sys.executable, "-c", RUN_INTERRUPTED_AT_IMPORT, target, trigger, *argv],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert result.returncode != -signal.SIGINT, "killed by SIGINT after a traceback"
    assert (result.returncode, result.stderr) == (130, f"{prog}: interrupted\n")
    assert result.stdout == ""
