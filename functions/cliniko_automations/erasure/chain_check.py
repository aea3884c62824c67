"""Recompute a request's audit chain (erasure/trail.py): what `scripts/erasure.py verify`
reports. Apart from the trail's layout because no function runs it: the erasure functions
need not make its result type at every cold start.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Collection, Mapping, Sequence
from typing import Any

from cliniko_automations.erasure.trail import (
    GENESIS_HASH,
    OUTCOME_SK,
    chain_head,
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
        seq = int(record["seq"])
        if seq in by_seq:
            problems.append(f"records {by_seq[seq].get('sk')} and {record.get('sk')} share #{seq}")
        by_seq[seq] = record
    previous: str | None = GENESIS_HASH
    for seq in range(1, max([*by_seq, *places], default=0) + 1):
        linked = by_seq.get(seq)
        if linked is None:
            problems.append(f"record #{seq} is missing")
            previous = None
            continue
        sk = str(linked.get("sk"))
        if record_hash(request_id, sk, linked) != linked["hash"]:
            problems.append(f"record #{seq} ({sk}) was changed: its hash does not match")
        if previous is not None and linked.get("prev_hash") != previous:
            problems.append(f"record #{seq} ({sk}) does not follow record #{seq - 1}")
        previous = str(linked["hash"])
    if receipt_head is not None and all(r.get("hash") != receipt_head for r in by_seq.values()):
        problems.append(
            "the receipt's chain head is in no record: records were removed or rewritten"
        )
    outcome = find_record(records, OUTCOME_SK)
    if outcome is not None and by_seq and int(outcome.get("seq", 0)) != max(by_seq):
        problems.append("records were added after the outcome")
    _, head = chain_head(records)
    return Verification(
        request_id=request_id, records=len(records), chain_head=head, problems=problems
    )
