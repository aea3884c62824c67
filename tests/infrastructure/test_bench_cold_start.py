"""The cold-start benchmark's verdict (`scripts/bench_cold_start.py --check`): which ratios are
over their targets. Figures shaped as the benchmark writes them; no cold start is run here."""

import importlib.util
from pathlib import Path
from types import ModuleType

import pytest

ROOT = Path(__file__).resolve().parents[2]


def script(name: str) -> ModuleType:
    """scripts/`name`.py, loaded as a module of its own."""
    spec = importlib.util.spec_from_file_location(f"{name}_script", ROOT / "scripts" / f"{name}.py")
    assert spec and spec.loader
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.fixture(scope="module")
def bench() -> ModuleType:
    return script("bench_cold_start")


def timed(first: float, process: float) -> dict[str, float]:
    return {"ratio_import_and_first_call": first, "ratio_process": process}


def counted(imported: float, process: float, served: float = 1.0) -> dict[str, float]:
    # `served`: the import and first call without the interpreter's teardown.
    return {
        "ratio_import": imported,
        "ratio_import_and_first_call": served,
        "ratio_process": process,
    }


def test_the_intake_api_is_held_to_its_lower_target(bench: ModuleType) -> None:
    figures = {
        "cold_start": {
            "IntakeApiFunction": timed(1.2, 1.1),
            "IntakeWorkerFunction": timed(1.2, 1.1),
        }
    }

    assert bench.over_target(figures, "timed") == [
        "IntakeApiFunction import + first call 1.20x > 1.15x"
    ]


def test_every_ratio_over_its_target_is_named_and_one_at_it_is_not(bench: ModuleType) -> None:
    figures = {
        "instructions": {
            "ErasureApiFunction": counted(1.31, 1.4),
            "CleanupFunction": counted(1.3, 1.3, served=1.3),
            "IntakeApiFunction": counted(1.0, 1.16),
            "IntakeWorkerFunction": counted(1.1, 1.2, served=1.31),
        }
    }

    assert bench.over_target(figures, "instructions") == [
        "ErasureApiFunction import, instructions 1.31x > 1.30x",
        "ErasureApiFunction process, instructions 1.40x > 1.30x",
        "IntakeApiFunction process, instructions 1.16x > 1.15x",
        "IntakeWorkerFunction import + first call, instructions 1.31x > 1.30x",
    ]


def test_the_timed_check_does_not_read_the_counts(bench: ModuleType) -> None:
    figures = {
        "cold_start": {"ChangeFeedFunction": timed(1.29, 1.2)},
        "instructions": {"ChangeFeedFunction": counted(2.0, 2.0)},
    }

    assert bench.over_target(figures, "timed") == []


@pytest.fixture(scope="module")
def trace() -> ModuleType:
    return script("trace_first_calls")


def call(at_ms: float, ms: float, thread: str = "MainThread", kind: str = "aws") -> dict:
    return {"at_ms": at_ms, "ms": ms, "thread": thread, "kind": kind}


def test_time_inside_calls_counts_a_call_within_another_once(trace: ModuleType) -> None:
    # A Cliniko request (100-115) holding its rate-limit booking (101-108), a gap, then two
    # calls that overlap (120-125, 123-130): 15 + 10 ms, not 15 + 7 + 5 + 7.
    calls = [call(120, 5), call(100, 15, kind="cliniko"), call(123, 7), call(101, 7)]
    assert trace.inside_calls_ms(calls) == 25.0
    assert trace.inside_calls_ms([]) == 0.0


def test_the_trace_summary_is_per_thread_with_the_median_over_runs(trace: ModuleType) -> None:
    runs = [
        [call(0, 10), call(12, 4, kind="cliniko"), call(0, 30, thread="secret-prefetch")],
        [call(0, 20), call(25, 4, kind="cliniko"), call(0, 31, thread="secret-prefetch")],
        [call(0, 12), call(20, 4, kind="cliniko"), call(0, 29, thread="secret-prefetch")],
    ]
    by_thread = trace.summary(runs)["by_thread"]
    assert list(by_thread) == ["MainThread", "secret-prefetch"]
    assert by_thread["MainThread"] == {
        "aws_calls": 1,
        "cliniko_requests": 1,
        "inside_calls_ms": 16.0,
    }
    assert by_thread["secret-prefetch"]["inside_calls_ms"] == 30.0
