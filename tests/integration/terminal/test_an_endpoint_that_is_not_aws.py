"""AWS_ENDPOINT_URL at something that is not AWS but answers 200 (the local run's website or
API stand-in, a proxy's login page): botocore parses the HTML as an empty answer, and the
tools that index that answer stopped with a KeyError traceback (README "Operating": an
endpoint out of reach is one line naming it, exit 1)."""

from __future__ import annotations

import os
import subprocess
import sys
import threading
from http.server import BaseHTTPRequestHandler, HTTPServer
from pathlib import Path

import pytest

SCRIPTS = Path(__file__).resolve().parents[3] / "scripts"


class _Page(BaseHTTPRequestHandler):
    def _answer(self) -> None:
        self.rfile.read(int(self.headers.get("content-length") or 0))
        page = b"<html><body>Please sign in</body></html>"
        self.send_response(200)
        self.send_header("content-type", "text/html")
        self.send_header("content-length", str(len(page)))
        self.end_headers()
        self.wfile.write(page)

    do_GET = do_POST = _answer

    def log_message(self, *args: object) -> None:
        pass


@pytest.fixture
def not_aws():
    server = HTTPServer(("127.0.0.1", 0), _Page)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    yield f"http://127.0.0.1:{server.server_address[1]}"
    server.shutdown()
    server.server_close()


@pytest.mark.parametrize(
    "command",
    [
        [str(SCRIPTS / "cleanup.py"), "plan"],
        [
            "-m",
            "cliniko_automations.changefeed.webhook_dead_letters",
            "--dlq-url",
            "http://127.0.0.1/1/q",
            "--bus",
            "contacts",
            "replay",
            "--all",
        ],
    ],
)
def test_an_endpoint_that_is_not_aws_is_one_line(not_aws, command):
    env = {
        **os.environ,
        "AWS_ENDPOINT_URL": not_aws,
        "CLEANUP_STATE_MACHINE_ARN": "arn:aws:states:eu-west-1:123456789012:stateMachine:c",
    }
    result = subprocess.run(  # noqa: S603 (our own scripts, fixed arguments)
        [sys.executable, *command],
        capture_output=True,
        text=True,
        env=env,
        timeout=120,
        check=False,
    )
    assert result.returncode == 1
    assert "Traceback" not in result.stderr, result.stderr
    assert result.stderr.strip().count("\n") == 0
