"""When an erasure request is due, and which requests are overdue.

A request is due one calendar month after receipt (GDPR art. 12(3), counted as the UK
regulator does: the same date next month, or that month's last day), extendable once, within
the first month, by two further months.
"""

from __future__ import annotations

import calendar
from collections.abc import Iterable, Mapping
from datetime import UTC, date, datetime, time
from typing import Any

from cliniko_automations.common.timestamps import iso
from cliniko_automations.erasure.trail import EXTENSION_SK, OUTCOME_SK, RECEIVED_SK

DUE_MONTHS = 1
EXTENSION_MONTHS = 2


def utcnow() -> datetime:
    return datetime.now(UTC)


def add_months(day: date, months: int) -> date:
    """The same date `months` later, or that month's last day when it has no such date."""
    index = day.month - 1 + months
    year, month = day.year + index // 12, index % 12 + 1
    return date(year, month, min(day.day, calendar.monthrange(year, month)[1]))


def due_date(received: date) -> date:
    """One calendar month after receipt: 31 Jan -> 28/29 Feb, 31 Mar -> 30 Apr, 10 Feb -> 10 Mar."""
    return add_months(received, DUE_MONTHS)


def end_of_day(day: date) -> str:
    """A due date as a time: the request may be answered until that day ends (UTC)."""
    return iso(datetime.combine(day, time(23, 59, 59), tzinfo=UTC))


def overdue_request_ids(records: Iterable[Mapping[str, Any]], now: datetime) -> list[str]:
    """Requests past their (possibly extended) due date that are neither completed nor dry
    runs: a dry run erases nobody, so it can never be owed."""
    due: dict[str, str] = {}
    extended: dict[str, str] = {}
    settled: set[str] = set()
    for record in records:
        request_id = record["request_id"]
        if record["sk"] == RECEIVED_SK:
            due[request_id] = record["due_at"]
            if record.get("dry_run"):
                settled.add(request_id)
        elif record["sk"] == EXTENSION_SK:
            extended[request_id] = record["due_at"]
        elif record["sk"] == OUTCOME_SK and record.get("status") == "completed":
            settled.add(request_id)
    cutoff = iso(now)
    return sorted(
        rid
        for rid, due_at in due.items()
        if rid not in settled and extended.get(rid, due_at) < cutoff
    )
