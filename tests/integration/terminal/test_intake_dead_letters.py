"""scripts/dead_letters.py shows a Cliniko 422's field names: a misbehaving Cliniko (or one
behind a hostile proxy) must not write terminal controls onto the operator's screen. With
`--parked`, run as the operator runs it, it shows a parked submission's reason and candidate
contacts, and no personal value."""

from __future__ import annotations

import io
import os

import pytest
from cliniko_automations.intake_worker import handler as worker_handler

from tests.integration.common.test_http_transport import ScriptedServer
from tests.integration.intake_worker.resources import (
    DEAD_LETTERS_SCRIPT,
    create_worker_stack,
    load_dead_letters_script,
    one_clinic_stack,
    poll_once,
    put_secrets,
    worker_environment,
    write_worker_config,
)
from tests.integration.intake_worker.test_dead_letters import leaked, parked_submission
from tests.integration.intake_worker.test_handler import context, submission
from tests.integration.terminal.hostile import (
    assert_json_lines,
    assert_printable,
    cliniko_refusing_writes,
    run_tool,
)


@pytest.fixture
def stack(aws, monkeypatch, tmp_path):
    server = ScriptedServer(cliniko_refusing_writes)
    stack = create_worker_stack()
    put_secrets({"tests/cliniko/test-clinic": "MS0xtestkey0000000000000000-au1"})
    worker_environment(
        monkeypatch,
        stack,
        f"http://127.0.0.1:{server.port}/{{shard}}/v1",
        write_worker_config(tmp_path),
    )
    monkeypatch.setenv("DEAD_LETTER_QUEUE_URL", stack.dead_letter_queue_url)
    yield stack
    server.stop()


@pytest.mark.parametrize("command", [["list"], ["list", "--json"], ["show", "SUB"]])
def test_a_cliniko_422s_field_names_reach_the_terminal_escaped(stack, command) -> None:
    sub = submission()
    stack.enqueue(sub)
    poll_once(stack, worker_handler.lambda_handler, context())
    [letter] = stack.receive(visibility=0, queue_url=stack.dead_letter_queue_url)
    # A field name that is no field of a contact's is "other": none of its text is stored
    # (real SQS refuses ESC or BEL in an attribute) or printed.
    reason = letter["MessageAttributes"]["failure_reason"]["StringValue"]
    assert reason == "cliniko_validation_failed:other"
    out = io.StringIO()
    argv = [sub.submission_id if a == "SUB" else a for a in command]
    assert load_dead_letters_script().main(argv, out=out) == 0
    assert "cliniko_validation_failed" in out.getvalue()
    assert_printable(out.getvalue())
    if "--json" in command:
        assert_json_lines(out.getvalue())


def test_the_reason_stored_for_a_redriven_letter_is_escaped_too(stack, monkeypatch) -> None:
    # When the worker's own send to the dead-letter queue fails, the queue's redrive moves the
    # message there and the reason is read from the idempotency table (here the send fails
    # on a queue that is not).
    monkeypatch.setenv("DEAD_LETTER_QUEUE_URL", stack.dead_letter_queue_url + "-missing")
    sub = submission()
    stack.enqueue(sub)
    for _ in range(8):
        poll_once(stack, worker_handler.lambda_handler, context(), visibility=0)
    monkeypatch.setenv("DEAD_LETTER_QUEUE_URL", stack.dead_letter_queue_url)
    out = io.StringIO()
    assert load_dead_letters_script().main(["show", sub.submission_id], out=out) == 0
    assert "cliniko_validation_failed" in out.getvalue()
    assert_printable(out.getvalue())


@pytest.fixture
def parked(aws, cliniko, monkeypatch, tmp_path):
    """A stack whose worker parked one submission (two Cliniko contacts share its email): the
    stack, the submission and the contacts' ids."""
    stack = one_clinic_stack(cliniko, monkeypatch, tmp_path)
    return stack, *parked_submission(stack, cliniko, 1)


@pytest.mark.parametrize("command", [["list"], ["list", "--json"], ["show", "SUB"]])
def test_a_parked_submission_reaches_the_terminal_without_personal_values(parked, command) -> None:
    stack, sub, candidates = parked
    argv = ["--parked", *(sub.submission_id if a == "SUB" else a for a in command)]
    result = run_tool([str(DEAD_LETTERS_SCRIPT), *argv], os.environ)
    assert (result.returncode, result.stderr) == (0, "")
    assert "several_matches" in result.stdout and all(c in result.stdout for c in candidates)
    assert_printable(result.stdout)
    assert leaked(result.stdout) == []
    if "--json" in command:
        assert_json_lines(result.stdout)
    assert stack.counts(stack.parked_queue_url) == (1, 0)


def test_deleting_what_is_not_there_exits_1(parked) -> None:
    stack, _, _ = parked
    result = run_tool([str(DEAD_LETTERS_SCRIPT), "--parked", "delete", "nope"], os.environ)
    assert (result.returncode, result.stdout) == (1, "")
    assert result.stderr == "no parked submission with id nope\n"
    assert stack.counts(stack.parked_queue_url) == (1, 0)
