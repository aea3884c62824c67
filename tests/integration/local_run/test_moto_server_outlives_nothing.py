"""The local run's moto_server stops with the run, also when the run is killed with `kill -9`
(which runs no `stop()`): before, it went on serving, an orphan, until somebody found it."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from local_run.template import ROOT

STARTS_MOTO_AND_WAITS = """
import sys, time
from local_run.system import MotoServer
print(MotoServer().start().process.pid, flush=True)
time.sleep(120)
"""


def _running(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    # A zombie is not serving: it is waiting for its parent (here init) to read its status.
    stat = Path(f"/proc/{pid}/stat")
    return not (stat.exists() and stat.read_text().split(")")[-1].split()[0] == "Z")


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="the tie is Linux's prctl")
def test_moto_server_stops_when_the_local_run_is_killed():
    run = subprocess.Popen(  # noqa: S603 (our own code, fixed arguments)
        [sys.executable, "-c", STARTS_MOTO_AND_WAITS],
        stdout=subprocess.PIPE,
        text=True,
        env={
            **os.environ,
            "PYTHONPATH": os.pathsep.join([str(ROOT / "scripts"), str(ROOT / "functions")]),
        },
    )
    try:
        moto_pid = int(run.stdout.readline())
        assert _running(moto_pid)
        run.send_signal(signal.SIGKILL)
        run.wait()
        deadline = time.monotonic() + 20
        while _running(moto_pid) and time.monotonic() < deadline:
            time.sleep(0.1)
        assert not _running(moto_pid), "moto_server outlived the local run"
    finally:
        run.kill()
        run.wait()
        run.stdout.close()
