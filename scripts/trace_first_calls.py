#!/usr/bin/env python3
"""Every AWS call and Cliniko request of each handler's first call, in one cold start each.

The cold-start benchmark's round (scripts/bench_cold_start.py: the same stack, events and
artifact), each handler run under `local_run/call_tracer.py`: what a first call waits on, and
on which thread (the caller's path is the main thread; reads started during init run on
`secret-prefetch`, the change feed's accounts on `poll_N`). Times are this machine's, against
moto and the emulator: the calls and their order are the figure, not the milliseconds.

Each thread's line also gives the time it spent inside its calls (a call made inside another,
the rate-limit booking inside a Cliniko request, counted once), the median over `--runs`
cold starts: on the main thread, what the first call waits on its round trips, botocore's own
work around each call included. A function's import plus that time is what its import and
first call would take if none of its own code ran in between, so it bounds its timed ratio
from below.

    python scripts/trace_first_calls.py [--no-build] [--runs N] [--json]
"""

from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path[:0] = [str(ROOT / "scripts"), str(ROOT / "functions")]

import bench_cold_start as bench  # noqa: E402
from local_run.cold_start import run_cold  # noqa: E402

TRACER = ROOT / "scripts" / "local_run" / "call_tracer.py"


class Traced:
    """A cold start under the call tracer (the bench's `measure`); its calls in `calls`."""

    def __init__(self, python: str, endpoint: str, directory: Path) -> None:
        self.python, self.endpoint, self.directory = python, endpoint, directory

    def __call__(self, artifact: Path, spec, event: Any, environment) -> dict[str, Any]:
        trace = self.directory / f"{spec.logical_id}.json"
        out = run_cold(
            self.python,
            artifact,
            spec,
            event,
            {**environment, "CALL_TRACE_FILE": str(trace)},
            self.endpoint,
            wrapper=(self.python, "-S", "-B", str(TRACER)),
        )
        if "error" in out:
            raise RuntimeError(f"{spec.logical_id} failed:\n{out['error']}")
        out["calls"] = json.loads(trace.read_text())
        return out


def inside_calls_ms(calls: list[dict[str, Any]]) -> float:
    """The time covered by `calls` (one thread's), a call within another counted once."""
    covered, end = 0.0, float("-inf")
    for start, stop in sorted((c["at_ms"], c["at_ms"] + c["ms"]) for c in calls):
        if stop <= end:
            continue
        covered += stop - max(start, end)
        end = stop
    return round(covered, 1)


def threads(calls: list[dict[str, Any]]) -> list[str]:
    """The threads that made `calls`, the main thread first."""
    return sorted({c["thread"] for c in calls}, key=lambda t: (t != "MainThread", t))


def summary(runs: list[list[dict[str, Any]]]) -> dict[str, Any]:
    """The first run's calls; each thread's AWS calls + Cliniko requests in it, and the median
    over `runs` of the time the thread spent inside its calls."""
    calls = runs[0]
    by_thread: dict[str, dict[str, Any]] = {}
    for thread in threads(calls):
        mine = [c for c in calls if c["thread"] == thread]
        aws = sum(c["kind"] == "aws" for c in mine)
        inside = [inside_calls_ms([c for c in run if c["thread"] == thread]) for run in runs]
        by_thread[thread] = {
            "aws_calls": aws,
            "cliniko_requests": len(mine) - aws,
            "inside_calls_ms": statistics.median(inside),
        }
    return {"by_thread": by_thread, "calls": calls}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--no-build", action="store_true", help="use the built artifact as is")
    parser.add_argument("--json", action="store_true", help="print every call as JSON")
    parser.add_argument(
        "--runs", type=int, default=1, help="cold starts per handler (the times: their median)"
    )
    args = parser.parse_args(argv)
    if not 1 <= args.runs <= bench.SEEDED - 2:
        parser.error(f"--runs: 1 to {bench.SEEDED - 2} (one real erasure per run)")
    if not args.no_build:
        subprocess.run(
            [sys.executable, str(ROOT / "scripts" / "build.py"), "--arch", bench.HOST_ARCH],
            check=True,
            stdout=subprocess.DEVNULL,
        )
    python = bench.find_runtime_python()
    stack = bench.Stack()
    try:
        with tempfile.TemporaryDirectory() as tmp:
            artifact = bench.build_dir(bench.HOST_ARCH) / "IntakeApiFunction"
            references = bench.reference_artifacts(artifact, Path(tmp))
            runs: dict[str, list[list[dict[str, Any]]]] = {}
            for index in range(args.runs):
                measure = Traced(python, stack.moto.url, Path(tmp) / str(index))
                (Path(tmp) / str(index)).mkdir()
                results = bench.one_round(measure, artifact, stack, references, stack.seeded[index])
                for function, out in results.items():
                    runs.setdefault(function, []).append(out["calls"])
    finally:
        stack.stop()
    traced = {function: summary(calls) for function, calls in runs.items()}
    if args.json:
        print(json.dumps(traced, indent=2))
        return 0
    print(
        "first calls: AWS calls + Cliniko requests and the time inside them"
        f" (median of {args.runs}), by thread, then each call (the first run's)"
    )
    for function, figures in traced.items():
        print(
            f"{function}: "
            + ", ".join(
                f"{t} {n['aws_calls']} + {n['cliniko_requests']} in {n['inside_calls_ms']} ms"
                for t, n in figures["by_thread"].items()
            )
        )
        for call in sorted(figures["calls"], key=lambda c: c["at_ms"]):
            print(
                f"  {call['at_ms']:8.1f} ms  {call['ms']:6.1f} ms  {call['thread']:<16} "
                f"{call['what']:<32} {call['resource'] or ''}"
            )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
