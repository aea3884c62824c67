"""Text from outside shown as text: what Cliniko answered is kept in reasons, the audit trail
and cleanup runs, and read out by the operators' tools."""

from __future__ import annotations


def printable(value: object) -> str:
    """`value` as text a terminal shows and never acts on: a control character (an escape
    sequence's ESC, a BEL, a carriage return, C1), an invisible format one (a right-to-left
    override) or a lone surrogate becomes its backslash escape (`\\x1b`, `\\u202e`). SQS refuses
    C0 controls but tab and line ends, and surrogates, in a message attribute too."""
    text = str(value)
    if text.isprintable():
        return text
    return "".join(c if c.isprintable() else c.encode("unicode_escape").decode() for c in text)


def counted(count: int, noun: str, plural: str | None = None) -> str:
    """`1 account`, `2 accounts`: an operator's line reads as English at one too. `plural`
    where it is not `noun` and an s (`ledger entries`)."""
    return f"{count} {noun}" if count == 1 else f"{count} {plural or noun + 's'}"
