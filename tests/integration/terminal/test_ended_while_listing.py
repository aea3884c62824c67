"""SIGTERM (`timeout 30 dead_letters.py list`, a `kill`) or SIGHUP (the terminal closed) while
a listing receives the dead letters: killed outright, the tool left every letter it had
received hidden from everyone for HIDE_SECONDS (two minutes), as README promises only Ctrl-C
does not. It ends as on Ctrl-C: what it received is visible again at once, one line, and the
status a shell reports for that signal (143, 129).

The moment is exact: the tool runs as `python` runs it, under an audit hook that sends the
process the signal as its second ReceiveMessage goes out (the first answer's letters hidden)."""

from __future__ import annotations

import os
import signal
import subprocess
import sys

import pytest

from tests.integration.intake_worker.resources import DEAD_LETTERS_SCRIPT, create_worker_stack
from tests.integration.intake_worker.test_dead_letters import fill

RUN_ENDED_AT_SECOND_RECEIVE = """
import os, runpy, signal, sys

script, signum = sys.argv[1], int(sys.argv[2])
receives = []


def end_at_second_receive(event, args):
    if event == "http.client.send" and b"ReceiveMessage" in bytes(args[1]):
        receives.append(1)
        if len(receives) == 2:
            os.kill(os.getpid(), signum)


sys.addaudithook(end_at_second_receive)
sys.argv = [script, *sys.argv[3:]]
runpy.run_path(script, run_name="__main__")
"""


@pytest.mark.parametrize("ending", [signal.SIGTERM, signal.SIGHUP])
def test_a_listing_ended_by_a_signal_releases_what_it_received(aws, ending) -> None:
    stack = create_worker_stack()
    fill(stack)
    env = {**os.environ, **stack.env(DEAD_LETTER_QUEUE_URL=stack.dead_letter_queue_url)}
    result = subprocess.run(  # noqa: S603 (our own script)
        [
            sys.executable,
            "-c",
            RUN_ENDED_AT_SECOND_RECEIVE,
            str(DEAD_LETTERS_SCRIPT),
            str(int(ending)),
            "list",
        ],
        capture_output=True,
        text=True,
        env=env,
        timeout=120,
        check=False,
    )
    assert (result.returncode, result.stderr) == (
        128 + ending,
        f"dead_letters.py: ended by {ending.name}\n",
    )
    assert stack.counts(stack.dead_letter_queue_url) == (3, 0)
