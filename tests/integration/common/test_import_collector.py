"""Inside a Lambda, a handler's import runs without the cyclic collector's passes, and ends with
the collector running again over what the invocations make (common/import_collector.py).

Each import runs in a fresh interpreter (the collector is process-wide), as Lambda's init does:
AWS_LAMBDA_FUNCTION_NAME set, and the init SnapStart's (so no secret is read ahead: no AWS call
is made at all)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
from local_run.template import SamApp

ROOT = Path(__file__).resolve().parents[3]
HANDLER_MODULES = sorted(
    {spec.handler.rpartition(".")[0] for spec in SamApp.load().functions().values()}
)
# Imports the module, then prints how the collector was left, what it did meanwhile and what
# the import froze. The package first, as any handler's import does: where its two small
# modules have no .pyc yet (a fresh checkout), compiling them may make a collection before the
# pause.
PROBE = """
import gc, importlib, json, sys
# Not 0 everywhere: CPython 3.12 starts with a few hundred objects in the permanent generation.
frozen_at_start = gc.get_freeze_count()
if sys.argv[2] == "disabled":
    gc.disable()
import cliniko_automations
before = sum(generation["collections"] for generation in gc.get_stats())
importlib.import_module(sys.argv[1])
after = sum(generation["collections"] for generation in gc.get_stats())
print(json.dumps({
    "enabled": gc.isenabled(),
    "frozen": gc.get_freeze_count() - frozen_at_start,
    "collections": after - before,
}))
"""


def imported(module: str, *, in_lambda: bool, collector: str = "enabled") -> dict[str, object]:
    environment = {
        "PATH": os.environ["PATH"],
        "PYTHONPATH": os.pathsep.join(str(ROOT / d) for d in ("functions", "generated_client")),
        "AWS_REGION": "eu-west-1",
        "AWS_DEFAULT_REGION": "eu-west-1",
        "AWS_ACCESS_KEY_ID": "local",
        "AWS_SECRET_ACCESS_KEY": "local",
        # Nothing is called; were it, it would find nothing listening here.
        "AWS_ENDPOINT_URL": "http://127.0.0.1:9",
        "AWS_LAMBDA_INITIALIZATION_TYPE": "snap-start",
    }
    if in_lambda:
        environment["AWS_LAMBDA_FUNCTION_NAME"] = "import-collector-test"
    completed = subprocess.run(  # noqa: S603 - fixed argv: this interpreter and our probe
        [sys.executable, "-c", PROBE, module, collector],
        env=environment,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert completed.returncode == 0, completed.stderr
    result: dict[str, object] = json.loads(completed.stdout.splitlines()[-1])
    return result


def test_every_handler_is_in_the_template() -> None:
    assert len(HANDLER_MODULES) == 6, HANDLER_MODULES


@pytest.mark.parametrize("module", HANDLER_MODULES)
def test_a_handler_imports_in_a_lambda_without_collections_then_collects_again(
    module: str,
) -> None:
    state = imported(module, in_lambda=True)
    # No collection while the module imported (without the pause, the import of any handler
    # makes dozens), the collector running again once it has, and what the import made frozen
    # out of its passes.
    assert state["collections"] == 0, state
    assert state["enabled"] is True, state
    assert isinstance(state["frozen"], int) and state["frozen"] > 50_000, state


def test_outside_a_lambda_the_import_changes_nothing() -> None:
    # Tests, the command line and scripts import the handlers too: their collector is theirs.
    state = imported("cliniko_automations.erasure.api_handler", in_lambda=False)
    assert state["enabled"] is True, state
    assert state["frozen"] == 0, state
    assert isinstance(state["collections"], int) and state["collections"] > 0, state


def test_a_collector_disabled_before_the_import_stays_disabled() -> None:
    state = imported(
        "cliniko_automations.erasure.api_handler", in_lambda=True, collector="disabled"
    )
    assert state["enabled"] is False, state
    assert state["frozen"] == 0, state
