"""The local run on the test session's moto and emulator, started fresh for each test."""

from __future__ import annotations

import io
from collections.abc import Iterator

import pytest
from local_run.system import LocalSystem


@pytest.fixture
def local_system(aws, cliniko, tmp_path) -> Iterator[LocalSystem]:
    log = io.StringIO()
    system = LocalSystem(
        moto_endpoint=aws, emulator_url=cliniko.url, state_dir=tmp_path / "state", log=log
    ).start()
    system.log_text = log.getvalue  # what the functions wrote (JSON logs, EMF metrics)
    try:
        yield system
    finally:
        system.stop()
