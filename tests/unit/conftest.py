"""tests/unit is the fast, pure tier (`scripts/test --quick`): a test here that opens a socket
(a server, moto, the emulator, a client call) or starts a process fails, and belongs in
tests/integration or tests/infrastructure instead."""

from __future__ import annotations

import subprocess
from pathlib import Path
from typing import Any, NoReturn

import pytest

UNIT = Path(__file__).parent


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    # pytest-socket's own marker: no socket at all, not even to 127.0.0.1.
    for item in items:
        if item.path.is_relative_to(UNIT):
            item.add_marker(pytest.mark.disable_socket)


def refuse_process(*args: Any, **kwargs: Any) -> NoReturn:
    raise RuntimeError(
        "tests/unit starts no process: move this test to tests/integration or tests/infrastructure"
    )


@pytest.fixture(autouse=True)
def _no_process(monkeypatch: pytest.MonkeyPatch) -> None:
    # subprocess.run, call, check_output and Popen itself all go through subprocess.Popen.
    monkeypatch.setattr(subprocess, "Popen", refuse_process)
