"""A credential with a stray line end (an env file with CRLF line ends, sourced; a token pasted
with its newline) makes the HTTP client refuse the header it goes into and quote the header's
value in its error, which the operating CLIs printed whole: the AWS session token on the
terminal (and in any log of it). README "Operating": one line naming the mistake, exit 1;
nothing secret is printed."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
from pathlib import Path

import pytest

SCRIPTS = Path(__file__).resolve().parents[3] / "scripts"
TOKEN = "IQoJb3JpZ2luX2VjEXAMPLEsessionTOKENkeepSECRET"


@pytest.fixture
def api_url():
    with socket.create_server(("127.0.0.1", 0)) as listening:  # connects; never answers
        yield f"http://127.0.0.1:{listening.getsockname()[1]}"


def commands(api_url: str) -> list[list[str]]:
    return [
        [str(SCRIPTS / "dead_letters.py"), "--dlq-url", "http://127.0.0.1/1/q", "list"],
        [str(SCRIPTS / "cleanup.py"), "status"],
        [str(SCRIPTS / "erasure.py"), "--audit-table", "audit", "verify", "--all"],
        [str(SCRIPTS / "erasure.py"), "--api-url", api_url, "--region", "eu-west-1", "status", "x"],
        ["-m", "cliniko_automations.changefeed.webhook_dead_letters", "--dlq-url",
         "http://127.0.0.1/1/q", "list"],
    ]  # fmt: skip


@pytest.mark.parametrize("line_end", ["\r", "\n"])
def test_a_session_token_with_a_line_end_is_never_printed(aws, api_url, line_end):
    env = {
        **os.environ,
        "AWS_SESSION_TOKEN": TOKEN + line_end,
        "AWS_SECURITY_TOKEN": TOKEN + line_end,
        "CLEANUP_RUNS_TABLE": "runs",
        "LEDGER_TABLE": "ledger",
    }
    for command in commands(api_url):
        result = subprocess.run(  # noqa: S603 (our own scripts, fixed arguments)
            [sys.executable, *command],
            capture_output=True,
            text=True,
            env=env,
            timeout=120,
            check=False,
        )
        assert result.returncode == 1, (command, result.stderr)
        assert result.stderr.strip().count("\n") == 0, result.stderr
        assert "Traceback" not in result.stderr
        assert TOKEN not in result.stderr + result.stdout, (command, result.stderr)
