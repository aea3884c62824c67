"""A tool started with stdout or stderr closed (`>&-`, `2>&-`: a cron line, a supervisor).
Python then has no sys.stdout (sys.stderr): print() to it is silently nothing, and print()
to a missing stderr writes to stdout.

- stdout closed: the tools stopped with an AttributeError traceback ('NoneType' object has no
  attribute 'flush'), after doing their work (an erasure whose receipt nobody could read).
  Refused before anything is done, one line, exit 1.
- stderr closed: their error lines went to stdout, into the output a script reads (a --json
  listing). Dropped; the exit status still says. (argparse's usage errors, printed before
  the tool begins, still go there.)"""

from __future__ import annotations

import os
import subprocess
import sys

import pytest

from tests.integration.intake_worker.resources import DEAD_LETTERS_SCRIPT


def run_with_closed(fd: int, args: list[str], env: dict[str, str], **pipes: int):
    """Run `python args` with file descriptor `fd` closed, as `>&-` or `2>&-` starts it."""
    return subprocess.run(  # noqa: S603 (our own tools)
        [sys.executable, *args],
        text=True,
        env=env,
        preexec_fn=lambda: os.close(fd),
        timeout=120,
        check=False,
        **pipes,
    )


@pytest.mark.parametrize(
    ("command", "prog"),
    [
        ([str(DEAD_LETTERS_SCRIPT), "list"], "dead_letters.py"),
        (["-m", "cliniko_automations.cleanup.config", "--check"], "cleanup.config"),
    ],
)
def test_a_closed_stdout_is_refused_on_one_line(stack_env, command, prog) -> None:
    result = run_with_closed(1, command, stack_env, stderr=subprocess.PIPE)
    assert (result.returncode, result.stderr) == (
        1,
        f"{prog}: stdout is closed: send it to a file or to /dev/null\n",
    )


def test_with_stderr_closed_no_error_line_reaches_stdout(stack_env) -> None:
    result = run_with_closed(
        2, [str(DEAD_LETTERS_SCRIPT), "show", "nope"], stack_env, stdout=subprocess.PIPE
    )
    assert (result.returncode, result.stdout) == (1, "")
