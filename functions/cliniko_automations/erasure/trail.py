"""The audit trail's layout: its sort keys and the hash chain that makes it tamper-evident.

A request's records, by sort key: `000#received`, `000#extension` (at most once), then per
attempt NNN `NNN#lookup`, `NNN#purge`, `NNN#purge-webhooks`, `NNN#contact#<account>#<id>`
(`NNN#contact#<id>` before the erasure covered several accounts), `NNN#failed`,
and `999#outcome` once the request is done. An attempt that failed (Cliniko unreachable,
verification failed) or that stopped for confirmation leaves the request open, and the same
request id may be sent again: the next attempt gets the next number.

Each record carries `seq`, `prev_hash` and `hash` (SHA-256 over its content and the previous
record's hash, per request); `erasure/chain_check.py` recomputes it.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Collection, Iterable, Mapping
from decimal import Decimal
from typing import Any

RECEIVED_SK = "000#received"
EXTENSION_SK = "000#extension"
OUTCOME_SK = "999#outcome"
MAX_ATTEMPT = 998
# The sort keys of the records that say when a request is due and whether it is settled.
SUMMARY_SKS = (RECEIVED_SK, EXTENSION_SK, OUTCOME_SK)

GENESIS_HASH = "0" * 64
# An attempt's lookup record (`NNN#lookup`): the contact ids it matched.
LOOKUP = "lookup"


def attempt_sk(attempt: int, suffix: str) -> str:
    return f"{attempt:03d}#{suffix}"


def attempt_of(sk: str) -> int | None:
    """The attempt number a record belongs to; None for the request's own records."""
    head = sk.split("#", 1)[0]
    if sk in SUMMARY_SKS or not head.isdigit():
        return None
    return int(head)


def matched_before(
    records: Iterable[Mapping[str, Any]],
    legacy_account: str | None,
    results: Collection[str] = ("found",),
) -> dict[str, list[str]]:
    """The contacts earlier attempts of a request matched and went on to erase (a lookup that
    stopped for confirmation touched none), by account: a retry finishes them even when its
    own lookup no longer finds them, as the scrub blanked the email they were found by.
    `results`: the lookups' results counted (`shown_before` counts those that stopped too).

    A lookup recorded before the erasure covered several accounts holds ids only: they are
    `legacy_account`'s (the default account, which alone was searched then), or, without one,
    none is retried by id, since an id names another contact in another account."""
    found: dict[str, dict[str, None]] = {}
    for record in sorted(records, key=lambda r: str(r["sk"])):
        if record.get("record") != "lookup" or record.get("result") not in results:
            continue
        by_account = record.get("accounts")
        if by_account is None:
            by_account = {legacy_account: record.get("contact_ids")} if legacy_account else {}
        for account, contact_ids in by_account.items():
            ids = found.setdefault(str(account), {})
            ids.update((str(contact_id), None) for contact_id in contact_ids or [])
    return {account: list(ids) for account, ids in found.items()}


def shown_before(
    records: Iterable[Mapping[str, Any]], legacy_account: str | None
) -> dict[str, list[str]] | None:
    """The contacts a request's caller was shown, by account, when an earlier attempt stopped
    for confirmation (a 409 listing them): a confirmation (`erase_all_matches`) erases those,
    and a match it did not list (the email taken by someone since) is asked about again. None
    when no attempt stopped so (a request confirmed as it was first sent)."""
    records = list(records)
    if not any(
        r.get("record") == "lookup" and r.get("result") == "awaiting_confirmation" for r in records
    ):
        return None
    return matched_before(records, legacy_account, ("found", "awaiting_confirmation"))


def filed_before_accounts(records: Iterable[Mapping[str, Any]]) -> bool:
    """Whether an earlier attempt matched contacts before the erasure covered several accounts
    (its lookup keeps ids alone): such a request is retried as it was filed, in the default
    account alone, so that the contacts it left half done are finished, not held up by a
    confirmation for matches in accounts it never searched, and a confirmation erases no
    contact its 409 did not list."""
    return any(
        record.get("record") == "lookup"
        # One that stopped for confirmation too: confirmed, it erases what its 409 listed.
        and record.get("result") in ("found", "awaiting_confirmation")
        and record.get("accounts") is None
        for record in records
    )


def find_record(records: Iterable[Mapping[str, Any]], sk: str) -> dict[str, Any] | None:
    return next((dict(r) for r in records if r["sk"] == sk), None)


def plain(value: Any) -> Any:
    """A stored value as JSON: DynamoDB hands numbers back as Decimal."""
    if isinstance(value, Decimal):
        return int(value) if value == value.to_integral_value() else str(value)
    if isinstance(value, list | tuple):
        return [plain(item) for item in value]
    if isinstance(value, Mapping):
        return {str(key): plain(item) for key, item in value.items()}
    return value


def record_hash(request_id: str, sk: str, record: Mapping[str, Any]) -> str:
    """SHA-256 over a record's content (its `prev_hash` included, its own `hash` not)."""
    content = {k: plain(v) for k, v in record.items() if k != "hash" and v is not None}
    content.update(request_id=request_id, sk=sk)
    canonical = json.dumps(content, sort_keys=True, separators=(",", ":"), ensure_ascii=False)
    return hashlib.sha256(canonical.encode("utf-8")).hexdigest()


def chain_head(records: Iterable[Mapping[str, Any]]) -> tuple[int, str]:
    """The latest (seq, hash) of a request's records, (0, GENESIS_HASH) when none is chained."""
    chained = [r for r in records if "seq" in r and "hash" in r]
    if not chained:
        return 0, GENESIS_HASH
    latest = max(chained, key=lambda r: int(r["seq"]))
    return int(latest["seq"]), str(latest["hash"])


def chained(
    request_id: str, sk: str, record: Mapping[str, Any], head: tuple[int, str]
) -> dict[str, Any]:
    """`record` linked after the chain's `head`: its seq, the previous hash and its own."""
    seq, previous = head
    linked = {key: value for key, value in record.items() if value is not None}
    linked.update(seq=seq + 1, prev_hash=previous)
    linked["hash"] = record_hash(request_id, sk, linked)
    return linked
