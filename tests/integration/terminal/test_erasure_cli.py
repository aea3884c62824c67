"""scripts/erasure.py prints what Cliniko answered a scrub (a 422's field names) and keeps it in
the audit trail, where `status` reads it again years later."""

from __future__ import annotations

import json

import pytest

from tests.e2e.test_erasure_cli import load_cli
from tests.integration.common.test_http_transport import ScriptedServer
from tests.integration.erasure import stack
from tests.integration.terminal.hostile import (
    CONTACT_ID,
    HOSTILE,
    assert_printable,
    cliniko_with_one_contact_refusing_writes,
)

erasure_stack = stack.erasure_stack  # the fixture


@pytest.fixture
def hostile_cliniko(erasure_stack, monkeypatch):
    server = ScriptedServer(cliniko_with_one_contact_refusing_writes)
    monkeypatch.setenv("CLINIKO_BASE_URL", f"http://127.0.0.1:{server.port}/{{shard}}/v1")
    yield server
    server.stop()


def test_a_scrub_cliniko_refused_is_reported_without_terminal_controls(hostile_cliniko, capsys):
    cli = load_cli()
    args = ["request", "--contact-id", CONTACT_ID, "--reason", "t", "--request-id", "h-1"]
    code = cli.main(args)
    captured = capsys.readouterr()
    assert code == 1 and "NOT finished" in captured.out, captured
    assert_printable(captured.out + captured.err)


def test_status_of_it_later_is_printed_without_terminal_controls(hostile_cliniko, capsys):
    cli = load_cli()
    cli.main(["request", "--contact-id", CONTACT_ID, "--reason", "t", "--request-id", "h-2"])
    capsys.readouterr()
    cli.main(["status", "h-2"])
    captured = capsys.readouterr()
    assert "h-2" in captured.out
    assert_printable(captured.out + captured.err)
    cli.main(["--json", "status", "h-2"])
    json.loads(capsys.readouterr().out)


STORED_RAW = f"cliniko_ValidationFailed: {HOSTILE}"  # a trail record from before the escaping


def test_an_erasure_status_read_from_a_trail_stored_raw_is_shown_escaped() -> None:
    erasure = load_cli()
    body = {
        "request_id": "r-1",
        "status": "failed",
        "contacts": [{"contact_id": "1", "action": "failed", "error": STORED_RAW}],
    }
    lines = erasure.render(200, body)
    assert all(line.isprintable() for line in lines), lines
    assert "\\x1b[2J" in "".join(lines)


def test_a_purge_listing_part_of_its_ids_says_they_are_the_first() -> None:
    erasure = load_cli()
    purged = [
        {"store": "submission_store", "count": 11500, "submission_ids": ["s-1", "s-2"]},
        {"store": "submission_store", "count": 2, "submission_ids": ["s-3", "s-4"]},
    ]
    lines = erasure.render(200, {"request_id": "r-1", "status": "completed", "purged": purged})
    assert lines[1:] == [
        "  Purged from submission_store: 11500 stored submission(s) (the first 2: s-1, s-2)",
        "  Purged from submission_store: 2 stored submission(s) (s-3, s-4)",
    ]


def test_a_purge_of_webhook_letters_says_what_went() -> None:
    # The webhook stack's dead letters are deliveries, counted only: they were called
    # "stored submission(s)", which the intake's store holds and the letters' queue does not.
    erasure = load_cli()
    purged = [
        {"store": "submission_store", "count": 1, "submission_ids": ["s-1"]},
        {"store": "webhook_dead_letters", "count": 2, "submission_ids": []},
    ]
    lines = erasure.render(200, {"request_id": "r-1", "status": "completed", "purged": purged})
    assert lines[1:] == [
        "  Purged from submission_store: 1 stored submission(s) (s-1)",
        "  Purged from webhook_dead_letters: 2 undelivered webhook(s)",
    ]
