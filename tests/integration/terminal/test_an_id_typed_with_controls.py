"""An id (or a rule name) the operator pastes (from a ticket, an email, a chat) may hide a
control character or a right-to-left override: the tools that say they found nothing by that
name echoed it raw, so it acted on the terminal (cleared it, reversed the line) or broke the one
line in two."""

from __future__ import annotations

import pytest

from tests.integration.cleanup.test_handler import deployed, run_cli  # noqa: F401 (fixture)
from tests.integration.intake_worker.resources import DEAD_LETTERS_SCRIPT
from tests.integration.terminal.hostile import HOSTILE, assert_printable, run_tool

PASTED_ID = f"{HOSTILE}\nsecond line"


@pytest.mark.parametrize("command", [["show"], ["delete"], ["--parked", "show"]])
def test_a_dead_letter_id_not_found_is_echoed_escaped_on_one_line(stack_env, command) -> None:
    result = run_tool([str(DEAD_LETTERS_SCRIPT), *command, PASTED_ID], stack_env)
    assert result.returncode == 1, result.stderr
    assert_printable(result.stderr)
    assert result.stderr.count("\n") == 1, result.stderr
    assert "with id \\x1b]8;;" in result.stderr


def test_a_cleanup_run_id_not_found_is_echoed_escaped_on_one_line(deployed) -> None:  # noqa: F811
    result = run_cli("status", "--run-id", PASTED_ID)
    assert result.returncode == 1, result.stderr
    assert_printable(result.stderr)
    assert result.stderr.startswith("no run \\x1b]8;;"), result.stderr
    assert result.stderr.count("\n") == 1, result.stderr


def test_a_rule_name_not_found_is_echoed_escaped_on_one_line(deployed) -> None:  # noqa: F811
    result = run_cli("plan", "--local", "--rules", PASTED_ID)
    assert result.returncode == 2, result.stderr
    assert_printable(result.stderr)
    assert result.stderr.startswith("cleanup.py: no cleanup rule named \\x1b]8;;"), result.stderr
    assert result.stderr.count("\n") == 1, result.stderr
