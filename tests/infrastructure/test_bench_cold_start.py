"""The cold-start benchmark's verdict (`scripts/bench_cold_start.py --check`): which ratios are
over their targets. Figures shaped as the benchmark writes them; no cold start is run here."""

import importlib.util
from pathlib import Path
from types import ModuleType

import pytest

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="module")
def bench() -> ModuleType:
    path = ROOT / "scripts" / "bench_cold_start.py"
    spec = importlib.util.spec_from_file_location("bench_cold_start_script", path)
    assert spec and spec.loader
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


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
