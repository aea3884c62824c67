"""AWS_ENDPOINT_URL (or a proxy on the way to AWS) that takes the connection and never answers:
with botocore's defaults (60 s to connect, 60 s for an answer, five attempts) the tools sat
silent for three to four minutes before their one line. They give up within `AWS_ATTEMPTS`
answers of `AWS_ANSWER_SECONDS` and say so on one line, exit 1."""

from __future__ import annotations

import os
import subprocess
import sys
import time

from cliniko_automations.common.operator_cli import AWS_ANSWER_SECONDS, AWS_ATTEMPTS

from tests.integration.terminal.hostile import SCRIPTS, assert_one_line_failure

# Every attempt's wait, and standard retries' backoff between them (at most 20 s each).
WITHIN_SECONDS = AWS_ATTEMPTS * AWS_ANSWER_SECONDS + 2 * 20


def test_an_endpoint_that_never_answers_is_one_line_within_the_bound(silent_api_url) -> None:
    env = {
        **os.environ,
        "AWS_ENDPOINT_URL": silent_api_url,
        "AWS_DEFAULT_REGION": "eu-west-1",
        "AWS_ACCESS_KEY_ID": "testing",
        "AWS_SECRET_ACCESS_KEY": "testing",
        "DEAD_LETTER_QUEUE_URL": f"{silent_api_url}/123456789012/dlq",
    }
    started = time.monotonic()
    result = subprocess.run(  # noqa: S603 (our own script)
        [sys.executable, str(SCRIPTS / "dead_letters.py"), "list"],
        capture_output=True,
        text=True,
        env=env,
        timeout=WITHIN_SECONDS + 30,  # botocore's defaults take minutes: this ends them
        check=False,
    )
    assert time.monotonic() - started < WITHIN_SECONDS
    assert_one_line_failure(result)
    assert result.stderr.startswith("dead_letters.py: ReadTimeoutError: Read timeout on endpoint")
