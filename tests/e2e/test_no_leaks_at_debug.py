"""The whole-suite leak check (issue 10): every function's end-to-end path at LogLevel=DEBUG,
every log record of every logger captured, searched for every personal value and secret.

Runs intake for every provider (API handler, SQS in moto, worker, Cliniko emulator), one
refused and one invalid delivery, erasure by contact id and by email (and its status), the
cleanup with an email rule (live), and the overdue job. Values are distinctive: names,
emails with "+", phones, the signing secrets and token, the pepper, the Cliniko key.

Captured: what each function's Powertools logger writes (its stdout stream, swapped for a
buffer), every record reaching the root logger at DEBUG (libraries included), and all else
printed (metrics). The servers standing in for AWS and Cliniko log their own traffic; those
loggers are the test's, not the functions', and are left out. A value counts as found whole,
URL-encoded (quote, quote_plus) or lower-cased.

What no pattern can redact (a name, notes, an address, a company), sent in every hostile way,
through the change feed and from a Cliniko off the spec: test_no_leaks_hostile,
test_no_leaks_changefeed and test_no_leaks_fake_cliniko, with leak_search's markers.
"""

from __future__ import annotations

import io
import logging
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any
from urllib.parse import quote, quote_plus

import yaml
from cliniko_automations.cleanup import handler as cleanup_handler
from cliniko_automations.common.logs import configure_logging
from cliniko_automations.erasure import overdue_handler
from cliniko_automations.intake_worker.find_or_create import phone_digits
from local_run.state_machine import run_loop

from tests.e2e.test_erasure_api import erasure, get, post
from tests.fixtures.apigw import LambdaContext
from tests.integration.cleanup.tables import create_table
from tests.integration.erasure.stack import PEPPER, PERSONAL, erasure_stack, personal_values
from tests.integration.intake_worker.e2e_world import (
    PERSONAL as SUBMITTED,
)
from tests.integration.intake_worker.e2e_world import (
    PROVIDER_SOURCES,
    build_intake_path,
    delivery,
)
from tests.integration.intake_worker.resources import TEST_INFRASTRUCTURE_LOGGERS
from tests.unit.intake_api import samples

__all__ = ["erasure_stack"]  # the fixture

INTAKE_EMAIL = "marguerite.okonkwo+intake@example.org"
ERASE_BY_EMAIL = "grizelda.second+erase@example.com"
SERVICE_LOGGERS = ("intake", "erasure", "cleanup", "changefeed")
DEBUG_ENV = {"POWERTOOLS_LOG_LEVEL": "DEBUG", "LOG_LEVEL": "DEBUG", "AWS_LAMBDA_LOG_LEVEL": "DEBUG"}


class Everything(logging.Handler):
    """Every record of every logger (infrastructure servers aside), formatted."""

    def __init__(self) -> None:
        super().__init__(level=logging.DEBUG)
        self.setFormatter(logging.Formatter("%(name)s %(levelname)s %(message)s"))
        self.lines: list[str] = []

    def emit(self, record: logging.LogRecord) -> None:
        if record.name.split(".")[0] in TEST_INFRASTRUCTURE_LOGGERS:
            return
        self.lines.append(self.format(record))


@contextmanager
def everything_at_debug() -> Iterator[tuple[Everything, io.StringIO]]:
    root = logging.getLogger()
    handler = Everything()
    stdout = io.StringIO()
    saved = [(root, root.level)]
    root.setLevel(logging.DEBUG)  # what Lambda's JSON logging does for LogLevel=DEBUG
    root.addHandler(handler)
    configure_logging()  # as at a cold start under that root level
    streams = []
    for name in SERVICE_LOGGERS:
        target = logging.getLogger(name)
        saved.append((target, target.level))
        target.setLevel(logging.DEBUG)
        for stream_handler in target.handlers:
            if isinstance(stream_handler, logging.StreamHandler):
                streams.append((stream_handler, stream_handler.setStream(stdout)))
    try:
        yield handler, stdout
    finally:
        root.removeHandler(handler)
        for stream_handler, previous in streams:
            stream_handler.setStream(previous)
        for target, level in saved:
            target.setLevel(level)


def captured_lines(handler: Everything, stdout: io.StringIO, printed: Any) -> list[str]:
    """What everything_at_debug caught, and what capfd's readouterr() caught (`printed`)."""
    return [
        *handler.lines,
        *stdout.getvalue().splitlines(),
        *printed.out.splitlines(),
        *printed.err.splitlines(),
    ]


def searched_forms(values: list[str]) -> set[str]:
    forms = set()
    for value in values:
        for form in (value, quote(value, safe=""), quote_plus(value)):
            forms |= {form, form.lower()}
    return forms


def test_no_personal_value_or_secret_at_debug(
    aws, cliniko, erasure_stack, monkeypatch, tmp_path, capfd
):
    for name, value in DEBUG_ENV.items():
        monkeypatch.setenv(name, value)
    path = build_intake_path(cliniko, monkeypatch, tmp_path)
    erasure_ids = [erasure_stack.seed(), erasure_stack.seed(email=ERASE_BY_EMAIL)]
    rules = tmp_path / "cleanup_rules.yaml"
    rules.write_text(
        yaml.safe_dump(
            {
                "rules": [
                    {
                        "name": "one-person",
                        "account": "main-clinic",
                        "where": [{"field": "email", "op": "equals", "value": INTAKE_EMAIL}],
                    }
                ]
            }
        ),
        encoding="utf-8",
    )
    monkeypatch.setenv("CLEANUP_RULES_FILE", str(rules))
    monkeypatch.setenv("CLEANUP_RUNS_TABLE", create_table("CleanupRunsTable", "leak-cleanup-runs"))
    monkeypatch.setenv("CLEANUP_DRY_RUN", "false")
    capfd.readouterr()

    with everything_at_debug() as (handler, stdout):
        # The functions' loggers and anything else without a level of its own log at DEBUG.
        for name in (*SERVICE_LOGGERS, "cliniko_automations", "some.library"):
            assert logging.getLogger(name).isEnabledFor(logging.DEBUG), name
        answers = []
        for provider in PROVIDER_SOURCES:
            email = quote(INTAKE_EMAIL) if provider == "html" else INTAKE_EMAIL
            answers.append(path.post(delivery(provider, email=email))["statusCode"])
        refused = delivery("json", email=INTAKE_EMAIL)
        refused["headers"]["x-signature"] = "t=1,v1=00"
        answers.append(path.post(refused)["statusCode"])
        invalid = delivery("typeform", email="marguerite+invalid@@example.org")
        answers.append(path.post(invalid)["statusCode"])
        handled = path.work(rounds=20)

        by_id = post(erasure(request_id="leak-by-id", contact_id=erasure_ids[0]))
        by_email = post(erasure(request_id="leak-by-email", email=ERASE_BY_EMAIL))
        status = get("leak-by-email")
        cleanup_context = LambdaContext(function_name="CleanupFunction", timeout_ms=900_000)
        cleaned = run_loop(lambda event: cleanup_handler.lambda_handler(event, cleanup_context))
        overdue = overdue_handler.lambda_handler({}, LambdaContext(function_name="Overdue"))
        printed = capfd.readouterr()

    # The paths really ran.
    assert answers == [202] * 5 + [303, 202] + [401, 422], answers
    assert handled >= len(PROVIDER_SOURCES)
    stored = cliniko.control.contacts(include_archived=True)
    assert any((c.get("email") or "").lower() == INTAKE_EMAIL for c in stored)
    assert by_id[0] == 200 and by_id[1]["result"] == "erased", by_id
    assert by_email[0] == 200 and by_email[1]["result"] == "erased", by_email
    assert status[0] == 200
    assert cleaned.status == "finished", cleaned
    assert overdue["overdue"] == 0

    lines = captured_lines(handler, stdout, printed)
    assert any('"service":"erasure"' in line.replace(" ", "") for line in lines)
    values = [
        *SUBMITTED,
        INTAKE_EMAIL,
        INTAKE_EMAIL.split("@")[0],
        phone_digits(samples.PHONE),
        "marguerite+invalid@@example.org",
        *(v for v in personal_values(PERSONAL) if not (v.isdigit() and len(v) < 6)),
        ERASE_BY_EMAIL,
        samples.SECRET,
        samples.TOKEN,
        PEPPER,
        cliniko.api_key,
    ]
    forms = searched_forms(values)
    text = "\n".join(lines)
    lowered = text.lower()
    found = sorted(form for form in forms if form in text or form.lower() in lowered)
    with capfd.disabled():
        print(
            f"\nleak check at DEBUG: {len(lines)} log lines captured, {len(set(values))} values "
            f"searched ({len(forms)} forms: whole, URL-encoded, lower-cased), found: {len(found)}"
        )
    assert found == [], f"found in the logs: {[f[:4] + '...' for f in found]}"
