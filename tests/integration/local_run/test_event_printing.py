"""No Powertools switch makes an HTTP handler print or log a whole event: a deployment that
sets POWERTOOLS_DEV (or the event handler's debug, or the logger's log_event) must still keep
submitted values out of CloudWatch. Each handler is imported in a fresh process with the
switches already set, as Lambda would import it."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[3]
EVENT_PRINTING = {
    "POWERTOOLS_DEV": "true",
    "POWERTOOLS_EVENT_HANDLER_DEBUG": "true",
    "POWERTOOLS_LOGGER_LOG_EVENT": "true",
    "POWERTOOLS_LOG_LEVEL": "DEBUG",
}
MARKER = "zebedee.quixote@example.net"
# A name: the logs' redaction blanks an email, not a name, so only the switches kept off keep
# it out.
NAME = "Zebedeequix"
UNKNOWN_ROUTE = """
from tests.fixtures.apigw import LambdaContext, http_api_event
from cliniko_automations.{module} import {handler} as handler
event = http_api_event(
    "POST", "/nowhere", b'{{"email": "{marker}", "first_name": "{name}"}}', {{}}
)
answer = handler.lambda_handler(event, LambdaContext())
assert answer["statusCode"] == 404, answer
"""


@pytest.mark.parametrize(
    ("module", "handler"), [("intake_api", "handler"), ("erasure", "api_handler")]
)
def test_no_powertools_switch_prints_an_event(module, handler):
    script = UNKNOWN_ROUTE.format(module=module, handler=handler, marker=MARKER, name=NAME)
    done = subprocess.run(  # noqa: S603 (fixed argv: this test's own script)
        [sys.executable, "-c", script],
        cwd=ROOT,
        env={**os.environ, **EVENT_PRINTING, "AWS_DEFAULT_REGION": "eu-west-1"},
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode == 0, done.stderr[-2000:]
    assert MARKER not in done.stdout + done.stderr
    assert NAME not in done.stdout + done.stderr
