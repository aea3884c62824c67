"""scripts/cleanup.py prints a stopped rule's error, the kind of Cliniko's refusal (a 422's
field names), as the runs table keeps it."""

from __future__ import annotations

import json

import pytest

from tests.integration.cleanup.test_handler import deployed, run_cli  # noqa: F401 (fixture)
from tests.integration.common.test_http_transport import ScriptedServer
from tests.integration.terminal.hostile import assert_printable, cliniko_refusing_everything


@pytest.fixture
def hostile_cliniko(deployed, monkeypatch):  # noqa: F811
    server = ScriptedServer(cliniko_refusing_everything)
    monkeypatch.setenv("CLINIKO_BASE_URL", f"http://127.0.0.1:{server.port}/{{shard}}/v1")
    yield server
    server.stop()


def test_a_rule_stopped_by_cliniko_is_reported_without_terminal_controls(hostile_cliniko):
    planned = run_cli("plan", "--local")
    assert planned.returncode == 1 and "stopped" in planned.stdout, planned.stderr
    assert_printable(planned.stdout)
    shown = run_cli("status")
    assert "stopped" in shown.stdout
    assert_printable(shown.stdout + shown.stderr)
    json.loads(run_cli("--json", "status").stdout)


def test_the_stopped_rule_line_on_stderr_has_no_terminal_controls(hostile_cliniko):
    planned = run_cli("plan", "--local")
    (line,) = [line for line in planned.stderr.splitlines() if "stopped:" in line]
    assert_printable(line)
