"""Times as this system writes them (the change feed's items and events, the erasure's trail and
due dates): Cliniko's own shape, `2018-02-12T17:58:18Z`, so two of them compare as text."""

from __future__ import annotations

import datetime as dt


def iso(moment: dt.datetime) -> str:
    """`moment` in UTC, whole seconds, with a `Z`."""
    return moment.astimezone(dt.UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
