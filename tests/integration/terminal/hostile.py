"""Text an outsider chooses, and the check that an operator's terminal never receives it raw."""

from __future__ import annotations

import json
import re
import socket
import subprocess
import sys
from collections.abc import Mapping
from pathlib import Path

from tests.integration.common.test_http_transport import answer

SCRIPTS = Path(__file__).resolve().parents[3] / "scripts"

# An OSC 8 hyperlink to elsewhere, a clear-screen, a right-to-left override, a C1 CSI.
HOSTILE = "\x1b]8;;http://evil.example/\x07x\x1b]8;;\x07\x1b[2J\u202e\x9b31m"
# What a terminal would act on: C0 but \n and \t, DEL and C1, and the bidi controls.
UNSAFE = re.compile("[\x00-\x08\x0b-\x1f\x7f-\x9f\u202a-\u202e\u2066-\u2069]")


def assert_printable(text: str) -> None:
    found = sorted({f"U+{ord(c):04X}" for c in UNSAFE.findall(text)})
    assert not found, f"terminal controls reach the operator: {found}\n{text!r}"


def run_tool(command: list[str], env: Mapping[str, str]) -> subprocess.CompletedProcess[str]:
    """An operator tool run as the operator runs it, a process of its own: `command` is a
    script's path or `-m module`, then its arguments."""
    return subprocess.run(  # noqa: S603 (our own tools, fixed arguments)
        [sys.executable, *command],
        capture_output=True,
        text=True,
        env=dict(env),
        timeout=120,
        check=False,
    )


def assert_one_line_failure(result: subprocess.CompletedProcess[str]) -> None:
    """A mistake of the environment: one line naming it, exit 1 (README "Operating")."""
    assert result.returncode == 1, (result.args, result.stderr)
    assert "Traceback" not in result.stderr, result.stderr
    assert result.stderr.strip().count("\n") == 0, result.stderr


def assert_json_lines(text: str) -> None:
    for line in text.splitlines():
        json.loads(line)


def cliniko_refusing_writes(connection: socket.socket, request: bytes) -> None:
    """A Cliniko that finds nobody and answers every write 422, naming a field `HOSTILE`."""
    if request.startswith(b"GET"):
        body = b'{"contacts": [], "total_entries": 0, "links": {"self": "http://x/"}}'
        answer(body, "Content-Type: application/json")(connection, request)
        return
    refusal = json.dumps({"message": "Validation Failed", "errors": {HOSTILE: ["is bad"]}})
    answer(refusal.encode(), "Content-Type: application/json", status="422 Unprocessable Entity")(
        connection, request
    )


CONTACT_ID = "1390712996921091568"
CONTACT = {
    "id": CONTACT_ID,
    "first_name": "Ana",
    "created_at": "2026-12-03T00:00:00Z",
    "updated_at": "2026-12-03T00:00:00Z",
}


def cliniko_with_one_contact_refusing_writes(connection: socket.socket, request: bytes) -> None:
    """A Cliniko that lists and shows one contact and answers every write 422 `HOSTILE`."""
    if not request.startswith(b"GET"):
        cliniko_refusing_writes(connection, request)
        return
    path = request.split(b" ", 2)[1].split(b"?")[0]
    if path.endswith(b"/contacts"):
        body = {"contacts": [CONTACT], "total_entries": 1, "links": {"self": "http://x/"}}
    else:
        body = CONTACT
    answer(json.dumps(body).encode(), "Content-Type: application/json")(connection, request)


def cliniko_refusing_everything(connection: socket.socket, request: bytes) -> None:
    """A Cliniko that answers every request 422, naming a field `HOSTILE`."""
    cliniko_refusing_writes(connection, b"POST" + request.partition(b" ")[1:][1])
