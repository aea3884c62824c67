"""The cold-start benchmark's instruction count (`scripts/bench_cold_start.py --instructions`):
its import-and-first-call figure is a first call's, not a replay's. Runs a tiny handler under
valgrind's callgrind (some 10 s), so it needs valgrind."""

from __future__ import annotations

import importlib.util
import shutil
import sys
from pathlib import Path
from types import ModuleType

import pytest
from local_run.template import FunctionSpec

ROOT = Path(__file__).resolve().parents[3]

# A handler whose first call of an event does some work and whose later ones answer from what
# the first left, as the worker's done record and the erasure's stored answer do.
HANDLER = """
import os

DONE = os.environ["DONE_FILE"]


def handler(event, context):
    with open(DONE, "a+") as done:
        done.seek(0)
        seen = event["id"] in done.read().split()
        done.write(event["id"] + "\\n")
    if seen:
        return {"replayed": event["id"]}
    return {"worked": sum(i * i for i in range(%d))}
"""
# Some 25-30 million instructions here: far above the count's run-to-run noise.
WORK = 300_000


def load_bench() -> ModuleType:
    path = ROOT / "scripts" / "bench_cold_start.py"
    spec = importlib.util.spec_from_file_location("bench_cold_start_counted", path)
    assert spec and spec.loader
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.mark.slow
@pytest.mark.skipif(shutil.which("valgrind") is None, reason="needs valgrind")
def test_the_counted_first_call_is_the_events_first_handling(tmp_path):
    artifact = tmp_path / "artifact"
    artifact.mkdir()
    (artifact / "tiny_handler.py").write_text(HANDLER % WORK)
    done = tmp_path / "done"
    spec = FunctionSpec(
        "Tiny", "tiny_handler.handler", timeout=60, memory=128, environment={}, events={}
    )
    counted = load_bench().Counted(sys.executable, "http://127.0.0.1:9")

    out = counted(artifact, spec, {"id": "event-1"}, {"DONE_FILE": str(done)})

    # The event was handled once, by the counted first call: a second handling would have
    # been a replay, and counted as if it were the first call.
    assert done.read_text().split() == ["event-1"], "the event was handled again"
    assert out["result"] == {"worked": sum(i * i for i in range(WORK))}
    imported, served = out["import_instructions"], out["served_instructions"]
    # The import and first call hold the first call's work (the import-only process's count
    # has a teardown the served one has not, a few million here), and the teardown follows it.
    assert served - imported > 15_000_000
    assert out["instructions"] > served
