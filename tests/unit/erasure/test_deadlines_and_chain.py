"""Due dates as the law counts them, the overdue rule, and the audit trail's hash chain."""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta, timezone
from decimal import Decimal

import pytest
from cliniko_automations.erasure.chain_check import verify_chain
from cliniko_automations.erasure.deadlines import (
    add_months,
    due_date,
    end_of_day,
    overdue_request_ids,
)
from cliniko_automations.erasure.trail import record_hash

# The UK regulator's worked examples (a calendar month from the day of receipt; the month's
# last day when the next month has no such date), and leap years both ways.
DUE_DATES = [
    (date(2026, 1, 31), date(2026, 2, 28)),  # no 31 February
    (date(2028, 1, 31), date(2028, 2, 29)),  # leap year
    (date(2028, 1, 30), date(2028, 2, 29)),
    (date(2026, 1, 29), date(2026, 2, 28)),
    (date(2026, 2, 10), date(2026, 3, 10)),  # the same date next month
    (date(2026, 2, 28), date(2026, 3, 28)),  # not "end of February -> end of March"
    (date(2028, 2, 29), date(2028, 3, 29)),
    (date(2026, 3, 31), date(2026, 4, 30)),  # no 31 April
    (date(2026, 8, 31), date(2026, 9, 30)),
    (date(2026, 12, 31), date(2027, 1, 31)),  # across the year
    (date(2026, 12, 15), date(2027, 1, 15)),
    (date(2026, 1, 1), date(2026, 2, 1)),
]


@pytest.mark.parametrize(("received", "due"), DUE_DATES, ids=[str(r) for r, _ in DUE_DATES])
def test_due_one_calendar_month_after_receipt(received: date, due: date) -> None:
    assert due_date(received) == due


EXTENDED = [
    (date(2026, 2, 28), date(2026, 4, 28)),  # received 28 Jan: due 28 Feb, extended 28 Apr
    (date(2026, 4, 30), date(2026, 6, 30)),
    (date(2026, 12, 31), date(2027, 2, 28)),
    (date(2027, 12, 31), date(2028, 2, 29)),  # into a leap February
]


@pytest.mark.parametrize(("due", "extended"), EXTENDED, ids=[str(d) for d, _ in EXTENDED])
def test_an_extension_adds_two_further_months(due: date, extended: date) -> None:
    assert add_months(due, 2) == extended


def test_a_due_date_lasts_to_the_end_of_its_day() -> None:
    assert end_of_day(date(2026, 2, 28)) == "2026-02-28T23:59:59Z"


def received(rid: str, due_at: str, *, dry_run: bool = False) -> dict:
    return {"request_id": rid, "sk": "000#received", "due_at": due_at, "dry_run": dry_run}


def test_overdue_counts_only_requests_neither_completed_nor_dry_runs() -> None:
    now = datetime(2026, 3, 1, tzinfo=UTC)
    records = [
        received("open", "2026-02-28T23:59:59Z"),
        received("failed", "2026-02-28T23:59:59Z"),
        {"request_id": "failed", "sk": "001#failed", "error": "cliniko_ServerError"},
        received("done", "2026-02-28T23:59:59Z"),
        {"request_id": "done", "sk": "999#outcome", "status": "completed"},
        # A failed dry run changes nobody's data and is owed nothing.
        received("dry", "2026-02-28T23:59:59Z", dry_run=True),
        {"request_id": "dry", "sk": "001#failed", "error": "cliniko_ServerError"},
        # Extended within its first month: due later.
        received("extended", "2026-02-28T23:59:59Z"),
        {"request_id": "extended", "sk": "000#extension", "due_at": "2026-04-28T23:59:59Z"},
        received("not-yet", "2026-03-01T23:59:59Z"),
    ]
    assert overdue_request_ids(records, now) == ["failed", "open"]


@pytest.mark.parametrize(
    ("now", "overdue"),
    [
        (datetime(2028, 2, 29, 23, 59, 59, 999_999, tzinfo=UTC), []),  # its day's last instant
        (datetime(2028, 3, 1, tzinfo=UTC), ["r-1"]),
        # The same instants on a clock in Sydney's zone: the due day ends in UTC, not there.
        (datetime(2028, 3, 1, 10, 59, 59, tzinfo=timezone(timedelta(hours=11))), []),
        (datetime(2028, 3, 1, 11, 0, 0, tzinfo=timezone(timedelta(hours=11))), ["r-1"]),
    ],
)
def test_a_request_is_overdue_from_the_first_second_after_its_due_day(now, overdue) -> None:
    # Received 29 January 2028: due 29 February (a leap day), to its end (UTC).
    records = [received("r-1", end_of_day(due_date(date(2028, 1, 29))))]
    assert overdue_request_ids(records, now) == overdue


def chain(request_id: str, *contents: dict) -> list[dict]:
    records, previous = [], "0" * 64
    for seq, (sk, content) in enumerate((c.pop("sk"), c) for c in contents):
        record = {**content, "sk": sk, "seq": seq + 1, "prev_hash": previous}
        record["hash"] = record_hash(request_id, sk, {k: v for k, v in record.items() if k != "sk"})
        previous = record["hash"]
        records.append(record)
    return records


def trail() -> list[dict]:
    return chain(
        "r-1",
        {"sk": "000#received", "record": "received", "dry_run": False, "reason": "art. 17"},
        {"sk": "001#lookup", "record": "lookup", "contact_ids": ["7"]},
        {"sk": "999#outcome", "record": "outcome", "status": "completed"},
    )


def test_an_intact_chain_verifies() -> None:
    records = trail()
    result = verify_chain("r-1", records)
    assert result.intact and result.problems == []
    assert result.chain_head == records[-1]["hash"]


def test_a_changed_record_is_found() -> None:
    records = trail()
    records[1]["contact_ids"] = ["8"]
    result = verify_chain("r-1", records)
    assert result.problems == ["record #2 (001#lookup) was changed: its hash does not match"]


def test_a_missing_record_is_found() -> None:
    records = trail()
    del records[1]
    problems = verify_chain("r-1", records).problems
    assert "record #2 is missing" in problems


def test_a_missing_first_record_is_named() -> None:
    # The receipt (its reason, whether it was a dry run) gone: named as missing, not only as
    # a link that does not follow.
    problems = verify_chain("r-1", trail()[1:]).problems
    assert "record #1 is missing" in problems


def test_a_record_added_at_the_place_of_another_is_found() -> None:
    # A forged lookup linked and hashed as the trail links them, at the place the real one
    # holds: the walk follows one of the two, so only their shared place tells.
    records = trail()
    forged = {"record": "lookup", "contact_ids": ["8"], "seq": 2}
    forged["prev_hash"] = records[0]["hash"]
    forged["hash"] = record_hash("r-1", "001#a-lookup", forged)
    records.insert(1, {**forged, "sk": "001#a-lookup"})
    result = verify_chain("r-1", records)
    assert not result.intact
    assert "records 001#a-lookup and 001#lookup share #2" in result.problems


def test_a_record_rehashed_after_a_change_breaks_the_next_link() -> None:
    records = trail()
    records[0]["reason"] = "something else"
    content = {k: v for k, v in records[0].items() if k not in ("sk", "hash")}
    records[0]["hash"] = record_hash("r-1", "000#received", content)
    problems = verify_chain("r-1", records).problems
    assert problems == ["record #2 (001#lookup) does not follow record #1"]


def test_a_record_chained_on_after_the_outcome_is_found() -> None:
    # Linked and hashed as the trail links them: only its place after the outcome tells.
    records = chain(
        "r-1",
        {"sk": "000#received", "record": "received", "dry_run": False, "reason": "art. 17"},
        {"sk": "001#lookup", "record": "lookup", "contact_ids": ["7"]},
        {"sk": "999#outcome", "record": "outcome", "status": "completed"},
        {"sk": "002#lookup", "record": "lookup", "contact_ids": ["8"]},
    )
    assert verify_chain("r-1", records).problems == ["records were added after the outcome"]


def test_a_record_without_a_hash_is_reported() -> None:
    records = trail()
    del records[2]["hash"]
    assert "record 999#outcome carries no chain hash" in verify_chain("r-1", records).problems


def test_a_deleted_last_record_is_found_by_its_claimed_place() -> None:
    records = trail()
    del records[-1]  # no gap in seq is left: only the place its write claimed counts it
    assert verify_chain("r-1", records).intact
    assert verify_chain("r-1", records, places=[1, 2, 3]).problems == ["record #3 is missing"]


def test_a_receipt_s_head_must_still_be_in_the_trail() -> None:
    records = trail()
    head = records[-1]["hash"]
    assert verify_chain("r-1", records, receipt_head=head).intact
    del records[-1]  # and its claim with it: the receipt the person holds still tells
    assert verify_chain("r-1", records, receipt_head=head).problems == [
        "the receipt's chain head is in no record: records were removed or rewritten"
    ]


@pytest.mark.parametrize("seq", [0, -3, "2", 1.5, Decimal("2.5"), Decimal("Infinity")], ids=str)
def test_a_record_at_no_place_of_the_chain_is_reported_not_skipped(seq) -> None:
    records = trail()
    # Outside the walk from #1, it was never checked: an extension added at #0 went unseen.
    # A fraction as DynamoDB reads it back (Decimal 2.5), read as 2, took the place of the
    # real #2 in that walk: the real record was no longer checked at all.
    records.append({"sk": "000#extension", "due_at": "2099", "seq": seq, "hash": "forged"})
    assert verify_chain("r-1", records).problems == [
        "record 000#extension claims no place in the chain"
    ]


def test_a_receipt_s_head_kept_at_place_0_of_a_rewritten_trail_is_no_proof() -> None:
    head = trail()[-1]["hash"]
    records = trail()
    records[0]["reason"] = "rewritten"
    rewritten = chain(
        "r-1",
        *({k: v for k, v in r.items() if k not in ("seq", "prev_hash", "hash")} for r in records),
    )
    rewritten.append({"sk": "000#note", "seq": 0, "hash": head})
    problems = verify_chain("r-1", rewritten, places=[1, 2, 3], receipt_head=head).problems
    assert "the receipt's chain head is in no record: records were removed or rewritten" in problems


@pytest.mark.parametrize("value", [b"lookup", {"7"}])
def test_a_value_the_trail_never_writes_is_a_changed_record(value) -> None:
    records = trail()
    records[1]["contact_ids"] = value
    assert verify_chain("r-1", records).problems == [
        "record #2 (001#lookup) was changed: its hash does not match"
    ]


def test_a_claim_far_past_the_chain_is_one_line() -> None:
    records = trail()
    assert verify_chain("r-1", records, places=[10**12]).problems == [
        f"records #4-#{10**12} are missing"
    ]


# A trail as DynamoDB hands back one an earlier release wrote (numbers as Decimal), with the
# hashes that release stored. A receipt handed to a person must still verify years later, so
# the hash's form is a contract: SHA-256 of the record's JSON, keys sorted, no spaces, UTF-8
# unescaped, request id and sort key included, its own hash and empty values left out (README,
# "Erasure on request"). Any change to it fails here, not on every trail already written.
GOLDEN_TRAIL = [
    {
        "sk": "000#received",
        "record": "received",
        "at": "2026-03-01T09:00:00Z",
        "reason": "GDPR art. 17, Zoë's request",
        "seq": Decimal(1),
        "prev_hash": "0" * 64,
        "hash": "cbfb98a611b2a56a4afc7d84f06b12ace7200f1d3fe9914db98a95ae5955ce8a",
    },
    {
        "sk": "999#outcome",
        "record": "outcome",
        "contact_ids": ["1390712996921095324"],
        "status": "completed",
        "seq": Decimal(2),
        "prev_hash": "cbfb98a611b2a56a4afc7d84f06b12ace7200f1d3fe9914db98a95ae5955ce8a",
        "hash": "b567cb45dfae16bc567dab5dd7edc8e383857d31b77481a66c853ba2d60cc25e",
    },
]


def test_a_trail_an_earlier_release_wrote_still_verifies() -> None:
    result = verify_chain("golden-1", GOLDEN_TRAIL, places=[1, 2])
    assert result.intact and result.problems == []
    assert result.chain_head == GOLDEN_TRAIL[-1]["hash"]
    for record in GOLDEN_TRAIL:
        assert record_hash("golden-1", record["sk"], record) == record["hash"]
