"""moto_server, tied to the process that starts it: `moto_server_tied.py PARENT_PID ARGS...`.

On Linux the kernel sends it SIGTERM when its parent dies, however it dies: a local run killed
with `kill -9` runs no `MotoServer.stop()`, and moto would outlive it. Elsewhere the parent's
`stop()` alone stops it.
"""

import contextlib
import ctypes
import os
import runpy
import signal
import sys

PR_SET_PDEATHSIG = 1

parent = int(sys.argv.pop(1))
with contextlib.suppress(AttributeError, OSError):  # no prctl: not Linux
    ctypes.CDLL(None, use_errno=True).prctl(PR_SET_PDEATHSIG, signal.SIGTERM)
if os.getppid() != parent:  # the parent died before the tie was made
    sys.exit(0)
sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
from local_run.moto_atomic import (  # noqa: E402
    dynamodb_requests_one_at_a_time,
    dynamodb_transaction_tokens_honoured,
)
from local_run.moto_quick import moto_answers_quickly  # noqa: E402

dynamodb_requests_one_at_a_time()
dynamodb_transaction_tokens_honoured()
moto_answers_quickly()
sys.argv[0] = "moto_server"
runpy.run_module("moto.server", run_name="__main__")
