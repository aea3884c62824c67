"""A secret's value as a function uses it: no AWS here, so the intake core uses it too."""

from __future__ import annotations

import unicodedata


def _padding(char: str) -> bool:
    return char.isspace() or unicodedata.category(char) == "Cf"


def trimmed(value: str) -> str:
    """`value` without what a paste or a file adds at its ends and no secret read here has
    there: whitespace and line breaks, and invisible format characters (Unicode Cf: the
    byte-order mark of a file saved as "UTF-8 with BOM", a zero-width space copied from a web
    page). What each function uses, and what README set-up step 3 promises."""
    start, end = 0, len(value)
    while start < end and _padding(value[start]):
        start += 1
    while end > start and _padding(value[end - 1]):
        end -= 1
    return value[start:end]
