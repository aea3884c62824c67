"""Recompute a request's audit chain (erasure/trail.py): what `scripts/erasure.py verify`
reports. Apart from the trail's layout because no function runs it: the erasure functions
need not make its result type at every cold start.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Collection, Mapping, Sequence
from decimal import Decimal
from typing import Any

from cliniko_automations.erasure.trail import (
    GENESIS_HASH,
    OUTCOME_SK,
    find_record,
    record_hash,
)


@dataclasses.dataclass(frozen=True, kw_only=True)
class Verification:
    request_id: str
    records: int
    chain_head: str
    problems: list[str] = dataclasses.field(default_factory=list)

    @property
    def intact(self) -> bool:
        return not self.problems


def verify_chain(
    request_id: str,
    records: Sequence[Mapping[str, Any]],
    places: Collection[int] = (),
    receipt_head: str | None = None,
) -> Verification:
    """Recompute a request's chain: a changed record no longer matches its hash, a missing one
    leaves a gap in `seq` (or a `prev_hash` that names nothing), an added one breaks both.

    The last records of a chain leave no gap when deleted: `places`, the places their writes
    claimed (`link#<seq>`), still count them, and a receipt's chain head (`receipt_head`, the
    hash handed to the person) must still be in the trail, whoever deleted the claims too."""
    problems: list[str] = []
    by_seq: dict[int, Mapping[str, Any]] = {}
    for record in records:
        if "seq" not in record or "hash" not in record:
            problems.append(f"record {record.get('sk')} carries no chain hash")
            continue
        seq = _place(record["seq"])
        if seq is None:
            # Not a place the trail writes (a text, 0 or less, a fraction): outside the walk
            # below, such a record could hold any content, or a receipt's head, unchecked.
            problems.append(f"record {record.get('sk')} claims no place in the chain")
            continue
        if seq in by_seq:
            problems.append(f"records {by_seq[seq].get('sk')} and {record.get('sk')} share #{seq}")
        by_seq[seq] = record
    previous: str | None = GENESIS_HASH
    expected = 1
    for seq in sorted(by_seq):
        if seq > expected:
            problems.append(_missing(expected, seq - 1))
            previous = None
        linked = by_seq[seq]
        sk = str(linked.get("sk"))
        if _hash_of(request_id, sk, linked) != linked["hash"]:
            problems.append(f"record #{seq} ({sk}) was changed: its hash does not match")
        if previous is not None and linked.get("prev_hash") != previous:
            problems.append(f"record #{seq} ({sk}) does not follow record #{seq - 1}")
        previous = str(linked["hash"])
        expected = seq + 1
    last = max(places, default=0)
    if last >= expected:
        problems.append(_missing(expected, last))
    if receipt_head is not None and all(r.get("hash") != receipt_head for r in by_seq.values()):
        problems.append(
            "the receipt's chain head is in no record: records were removed or rewritten"
        )
    outcome = find_record(records, OUTCOME_SK)
    if outcome is not None and by_seq and _place(outcome.get("seq")) != max(by_seq):
        problems.append("records were added after the outcome")
    head = str(by_seq[max(by_seq)]["hash"]) if by_seq else GENESIS_HASH
    return Verification(
        request_id=request_id, records=len(records), chain_head=head, problems=problems
    )


def _place(value: Any) -> int | None:
    """A record's `seq` as the trail writes it (a whole number from 1, a Decimal when read from
    DynamoDB); None for anything else."""
    if isinstance(value, bool) or not isinstance(value, int | Decimal):
        return None
    if isinstance(value, Decimal) and not (value.is_finite() and value == value.to_integral()):
        return None
    return int(value) if value >= 1 else None


def _missing(first: int, last: int) -> str:
    if first == last:
        return f"record #{first} is missing"
    return f"records #{first}-#{last} are missing"


def _hash_of(request_id: str, sk: str, record: Mapping[str, Any]) -> str | None:
    """The record's hash, or None when it holds a value the trail never writes (a binary, a
    set): such a record was changed."""
    try:
        return record_hash(request_id, sk, record)
    except (TypeError, ValueError):
        return None
