"""local_run.cold_start: the runner writes its result before the interpreter's teardown, which
the benchmark's whole-process count includes and its count up to the answer does not."""

from __future__ import annotations

import sys
from pathlib import Path

from local_run.cold_start import run_cold
from local_run.template import FunctionSpec

HANDLER = """
import atexit
import os


def _teardown():
    # The interpreter's teardown runs atexit functions: a mark that it ran.
    with open(os.environ["TEARDOWN_MARK"], "w") as mark:
        mark.write("torn down")


atexit.register(_teardown)


def handler(event, context):
    return {"answered": event["n"] + 1}
"""


def test_a_cold_start_answers_then_tears_down(tmp_path):
    artifact = tmp_path / "artifact"
    artifact.mkdir()
    (artifact / "tiny_handler.py").write_text(HANDLER)
    mark = tmp_path / "teardown"
    spec = FunctionSpec(
        "Tiny", "tiny_handler.handler", timeout=3, memory=128, environment={}, events={}
    )
    out = run_cold(
        sys.executable,
        artifact,
        spec,
        {"n": 41},
        {"TEARDOWN_MARK": str(mark)},
        "http://127.0.0.1:9",
    )
    # The answer and the figures the benchmark reads, then the interpreter's exit.
    assert out["result"] == {"answered": 42}
    assert out["invoke_seconds"] >= 0 and out["max_rss_kib"] > 0
    assert mark.read_text() == "torn down"
    assert not any(Path(artifact).glob("__pycache__"))  # -B, as Lambda's read-only code
