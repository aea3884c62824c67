"""What the leak tests of names, notes, addresses and companies search for, and where.

No pattern can redact these values, so they must never be handed to a logger, an event or a
store in the first place. The markers are distinctive enough to be found wherever they go:
whole, URL-encoded or in any case (test_no_leaks_at_debug.searched_forms).
"""

from __future__ import annotations

import json
from collections.abc import Iterable
from typing import Any

from tests.e2e.test_no_leaks_at_debug import searched_forms
from tests.integration.local_run.test_erasure_leaves_no_residue import residue

MARKERS = ("Zephyrine", "Quillfeather", "Qx7marker", "Brindlewood", "Quillcorp")
FORMS = searched_forms(list(MARKERS))
AROUND = 150  # characters shown either side of a marker found, in an assertion's message


def markers_in(text: str) -> list[str]:
    lowered = text.lower()
    return sorted(form for form in FORMS if form.lower() in lowered)


def leaks(where: str, texts: Iterable[Any]) -> list[str]:
    """`where: markers found: ...the text around the first...` for each text (or JSON-able
    value) that holds a marker."""
    found = []
    for value in texts:
        text = value if isinstance(value, str) else json.dumps(value, default=str)
        if markers := markers_in(text):
            at = text.lower().index(markers[0].lower())
            around = text[max(0, at - AROUND) : at + AROUND]
            found.append(f"{where}: {', '.join(markers)}: ...{around}...")
    return found


def stored_leaks(*allowed: str) -> list[str]:
    """Every table item, queue message (dead letters too) and secret holding a marker, but in
    the tables named in `allowed` (the submission store keeps what was sent, by design)."""
    return [
        f"stored in {place}: {', '.join(hits)}"
        for place, hits in residue(markers_in).items()
        if place.split(" ")[0] not in allowed
    ]
