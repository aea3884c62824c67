"""local_run.cold_start: the runner's process ends as the benchmark asks it to."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest
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


@pytest.mark.parametrize("skip_teardown", [False, True])
def test_a_cold_start_ends_with_or_without_the_interpreters_teardown(tmp_path, skip_teardown):
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
        skip_teardown=skip_teardown,
    )
    # The result is written either way: the answer, and the figures the benchmark reads.
    assert out["result"] == {"answered": 42}
    assert out["invoke_seconds"] >= 0 and out["max_rss_kib"] > 0
    # Without the teardown (what the benchmark counts as import + first call), nothing of
    # the interpreter's exit runs; with it, the whole process, it does.
    assert mark.exists() is not skip_teardown
    assert not any(Path(artifact).glob("__pycache__"))  # -B, as Lambda's read-only code
