"""A credential with a stray line end (an env file with CRLF line ends, sourced; a token pasted
with its newline) makes the HTTP client refuse the header it goes into and quote the header's
value in its error, which the operating CLIs printed whole: the AWS session token on the
terminal (and in any log of it). README "Operating": one line naming the mistake, exit 1;
nothing secret is printed."""

from __future__ import annotations

import os

import pytest

from tests.integration.terminal.hostile import SCRIPTS, assert_one_line_failure, run_tool

TOKEN = "IQoJb3JpZ2luX2VjEXAMPLEsessionTOKENkeepSECRET"


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
def test_a_session_token_with_a_line_end_is_never_printed(aws, silent_api_url, line_end):
    env = {
        **os.environ,
        "AWS_SESSION_TOKEN": TOKEN + line_end,
        "AWS_SECURITY_TOKEN": TOKEN + line_end,
        "CLEANUP_RUNS_TABLE": "runs",
        "LEDGER_TABLE": "ledger",
    }
    for command in commands(silent_api_url):
        result = run_tool(command, env)
        assert_one_line_failure(result)
        assert TOKEN not in result.stderr + result.stdout, (command, result.stderr)
