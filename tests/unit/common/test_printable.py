"""printable: text from outside, shown and never acted on."""

from __future__ import annotations

import io
from types import SimpleNamespace

import pytest
from cliniko_automations.common.dead_letter_tool import print_table
from cliniko_automations.common.printable import counted, printable


@pytest.mark.parametrize(
    "text", ["cliniko_validation_failed:email", "Côte d’Ivoire…", "a b", "x" * 300]
)
def test_the_systems_own_text_is_unchanged(text: str) -> None:
    assert printable(text) == text


@pytest.mark.parametrize(
    ("text", "shown"),
    [
        ("\x1b]8;;http://evil/\x07x", "\\x1b]8;;http://evil/\\x07x"),
        ("\x1b[2J", "\\x1b[2J"),
        ("done\rfailed", "done\\rfailed"),
        ("a\nb\tc", "a\\nb\\tc"),
        ("\u202eemail", "\\u202eemail"),
        ("\x9b31m\x7f", "\\x9b31m\\x7f"),
        ("\ud800", "\\ud800"),
    ],
)
def test_controls_are_shown_escaped(text: str, shown: str) -> None:
    assert printable(text) == shown


# Records stored raw before Cliniko's text was escaped as it came (an audit trail is kept for
# years) are escaped again as the tools print them.
RAW = "cliniko_ValidationFailed: \x1b]8;;http://evil.example/\x07x\x1b[2J\u202e"


def test_a_dead_letter_stored_raw_is_listed_escaped() -> None:
    out = io.StringIO()
    print_table(
        [SimpleNamespace(submission_id="s-1", reason=RAW)], ["submission_id", "reason"], out
    )
    assert "".join(out.getvalue().splitlines()).isprintable(), out.getvalue()
    assert "\\x1b[2J" in out.getvalue()


@pytest.mark.parametrize(
    ("count", "shown"),
    [(0, "0 ledger entries"), (1, "1 ledger entry"), (2, "2 ledger entries")],
)
def test_a_count_reads_as_english_at_one_too(count: int, shown: str) -> None:
    assert counted(count, "ledger entry", "ledger entries") == shown
    assert counted(count, "rule") == shown.replace("ledger entry", "rule").replace(
        "ledger entries", "rules"
    )
