"""scripts/build.py runs each configuration file's check in process, before it stages
anything. Its stdout full or closed made the first check fail for it, and the build said
"the form-source configuration is invalid", which it was not (exit 1 either way, and before
the checks ended as the operating CLIs do, a BrokenPipeError traceback). It ends as they do:
`| head` quietly with 141, `> /dev/full` with one line and 1. Either stops it before
build/staged is touched, so this shares nothing with the infrastructure tier's builds."""

from __future__ import annotations

import subprocess
import sys

from tests.integration.terminal.hostile import SCRIPTS

BUILD = [sys.executable, str(SCRIPTS / "build.py"), "--stage-only"]


def test_a_build_whose_reader_stopped_reading_ends_quietly() -> None:
    build = subprocess.Popen(  # noqa: S603 (our own script)
        BUILD, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True
    )
    build.stdout.close()  # as `| head -0` does, before the first check's verdict
    err = build.stderr.read()
    build.stderr.close()
    assert (build.wait(timeout=120), err) == (141, "")


def test_a_build_on_a_full_disk_says_so_not_that_the_configuration_is_invalid() -> None:
    with open("/dev/full", "w") as full:
        result = subprocess.run(  # noqa: S603 (our own script)
            BUILD, stdout=full, stderr=subprocess.PIPE, text=True, timeout=120, check=False
        )
    assert (result.returncode, result.stderr) == (
        1,
        "build.py: its output could not be written: No space left on device\n",
    )
