"""AWS_ENDPOINT_URL at something that is not AWS but answers 200 (the local run's website or
API stand-in, a proxy's login page): botocore parses the HTML as an empty answer, and the
tools that index that answer stopped with a KeyError traceback (README "Operating": an
endpoint out of reach is one line naming it, exit 1)."""

from __future__ import annotations

import os
from collections.abc import Iterator

import pytest

from tests.integration.common.test_http_transport import ScriptedServer, answer
from tests.integration.terminal.hostile import SCRIPTS, assert_one_line_failure, run_tool

SIGN_IN_PAGE = b"<html><body>Please sign in</body></html>"


@pytest.fixture
def not_aws() -> Iterator[str]:
    server = ScriptedServer(answer(SIGN_IN_PAGE, "Content-Type: text/html"))
    yield f"http://127.0.0.1:{server.port}"
    server.stop()


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
    assert_one_line_failure(run_tool(command, env))
