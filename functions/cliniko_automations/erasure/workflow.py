"""Erasure on request: file a request, answer its status, extend its due date.

A request is answered once per request id by the `OncePerRequest` port (Powertools'
idempotency, see idempotency.py): a repeat gets the stored outcome, a concurrent duplicate
RequestInProgress, the same id with another identity RequestIdConflict. The audit trail
(trail.py) is the append-only record of what happened: it holds ids, field names, actions and
a keyed hash of the email, never a personal value, and it outlives the idempotency records,
so an attempt checks the request against it too (see `_run`).

This module knows nothing of API Gateway or DynamoDB: it takes the Cliniko accounts
(accounts.py: a client per account), an `AuditLog`, a `SubmissionStore` and a `OncePerRequest`
(ports.py), so the API handler and the CLI share it.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
from collections.abc import Callable, Mapping, Sequence
from datetime import date, datetime
from typing import Any

from cliniko_automations.common.person_keys import email_hash
from cliniko_automations.common.plain_data import from_data
from cliniko_automations.common.timestamps import iso
from cliniko_automations.erasure.accounts import ErasureAccounts
from cliniko_automations.erasure.attempt import (
    LISTED_SUBMISSIONS,
    OVER_HOURLY_LIMIT,
    SUBMISSION_STORE,
    WEBHOOK_DEAD_LETTERS,
    Attempt,
    Tools,
    failed_message,
    purged_before,
)
from cliniko_automations.erasure.deadlines import (
    EXTENSION_MONTHS,
    add_months,
    due_date,
    end_of_day,
    utcnow,
)
from cliniko_automations.erasure.errors import (
    AlreadyRecorded,
    ChainMoved,
    ExtensionRefused,
    InvalidRequest,
    RequestIdConflict,
    RequestInProgress,
    RequestNotFound,
    SeveralMatches,
)
from cliniko_automations.erasure.models import (
    REQUEST_ID_PATTERN,
    ContactResult,
    ErasureRequest,
    Outcome,
    Purged,
    Receipt,
    Result,
    Status,
    check_reason,
)
from cliniko_automations.erasure.ports import (
    AuditLog,
    ErasureCeiling,
    OncePerRequest,
    SubmissionStore,
    WebhookLetters,
)
from cliniko_automations.erasure.trail import (
    EXTENSION_SK,
    GENESIS_HASH,
    MAX_ATTEMPT,
    OUTCOME_SK,
    RECEIVED_SK,
    attempt_of,
    chain_head,
    chained,
    filed_before_accounts,
    find_record,
    matched_before,
    plain,
    shown_before,
)

# How many times a write reads the chain's head again when another writer took its place.
RELINKS = 5


def request_identity(request: ErasureRequest, pepper: str) -> dict[str, Any]:
    """What identifies a request besides its id: who is erased and whether for real.

    erase_all_matches is left out on purpose: it is the confirmation a caller adds after a
    409, and it travels with the same request id. The email appears only as its keyed hash.
    The account is in it only when the request names one, so that a request sent before the
    erasure covered several accounts keeps its identity.
    """
    identity: dict[str, Any] = {
        "contact_id": request.contact_id,
        "email_hmac": email_hash(pepper, request.email) if request.email else None,
        "dry_run": request.dry_run,
    }
    if request.account is not None:
        identity["account"] = request.account
    return identity


def fingerprint(identity: Mapping[str, Any]) -> str:
    """The identity as the trail's `received` record keeps it."""
    return hashlib.sha256(json.dumps(dict(identity), sort_keys=True).encode()).hexdigest()


class Eraser:
    def __init__(
        self,
        accounts: ErasureAccounts,
        audit: AuditLog,
        pepper: str,
        *,
        once: OncePerRequest,
        submissions: SubmissionStore | None = None,
        webhook_letters: WebhookLetters | None = None,
        clock: Callable[[], datetime] = utcnow,
        time_left: Callable[[], float | None] = lambda: None,
        ceiling: ErasureCeiling | None = None,
    ) -> None:
        """`time_left`: the seconds the invocation leaves for the work before recording the
        outcome (None: no bound, the CLI): the purge of this system's stores stops there.
        `ceiling`: the stack's contacts erased per rolling hour (ceiling.py; None: none)."""
        if len(pepper) < 16:
            # A short pepper makes the email hash guessable by brute force.
            raise ValueError("the pepper must be at least 16 characters")
        self._accounts = accounts
        self._audit = audit
        self._pepper = pepper
        self._once = once
        self._clock = clock
        self._tools = Tools(
            accounts,
            submissions,
            pepper,
            clock,
            self._append,
            webhook_letters,
            time_left,
            ceiling,
        )
        # The latest (seq, hash) of each request's chain, as read or written by this call.
        self._heads: dict[str, tuple[int, str]] = {}

    # -- public ---------------------------------------------------------------------------

    def submit(self, request: ErasureRequest, caller: str) -> Outcome:
        scope = self._accounts.scope(request)
        self._accounts.open(scope)
        identity = request_identity(request, self._pepper)
        before = self._accounts.request_count()
        outcome = self._once(
            {"request_id": request.request_id, **identity},
            lambda: self._run(request, caller, identity, scope),
        )
        after = self._accounts.request_count()
        if after is not None and before is not None:
            outcome.cliniko_requests = after - before
        return outcome

    def status(self, request_id: str) -> Outcome:
        if not REQUEST_ID_PATTERN.fullmatch(request_id):
            raise RequestNotFound(request_id, echo=False)
        records = self._audit.records(request_id)
        if not records:
            raise RequestNotFound(request_id)
        outcome = self._stored_state(request_id, records)
        outcome.receipt = _receipt(outcome, *chain_head(records))
        return outcome

    def extend(self, request_id: str, reason: str, caller: str) -> Outcome:
        """Extend a request's due date by two months: once, and only within its first month."""
        try:
            reason = check_reason(reason)
        except ValueError as error:
            raise InvalidRequest({"reason": str(error)}) from None
        for _ in range(RELINKS):
            try:
                return self._extend(request_id, reason, caller)
            except ChainMoved:
                continue  # an attempt wrote meanwhile: read the trail again, decide again
        raise RequestInProgress(request_id)

    def _extend(self, request_id: str, reason: str, caller: str) -> Outcome:
        records = (
            self._audit.records(request_id) if REQUEST_ID_PATTERN.fullmatch(request_id) else []
        )
        received = find_record(records, RECEIVED_SK)
        if received is None:
            raise RequestNotFound(request_id, echo=bool(REQUEST_ID_PATTERN.fullmatch(request_id)))
        if received.get("dry_run"):
            raise ExtensionRefused(request_id, "a dry run erases nobody and is owed nothing")
        finished = find_record(records, OUTCOME_SK)
        if finished is not None:
            raise ExtensionRefused(request_id, f"it is already {finished.get('status')}")
        if find_record(records, EXTENSION_SK) is not None:
            raise ExtensionRefused(request_id, "it was already extended (the law allows once)")
        now = self._clock()
        if iso(now) > received["due_at"]:
            raise ExtensionRefused(
                request_id,
                f"an extension is only allowed within the first month (until {received['due_at']})",
            )
        due = date.fromisoformat(received["due_at"][:10])
        self._heads[request_id] = chain_head(records)
        try:
            self._append(
                request_id,
                EXTENSION_SK,
                {
                    "record": "extension",
                    "at": iso(now),
                    "caller": caller,
                    "reason": reason,
                    "previous_due_at": received["due_at"],
                    "due_at": end_of_day(add_months(due, EXTENSION_MONTHS)),
                },
                relink=False,
            )
        except AlreadyRecorded:
            raise ExtensionRefused(request_id, "it was already extended") from None
        return self.status(request_id)

    # -- internals ------------------------------------------------------------------------

    def _run(
        self,
        request: ErasureRequest,
        caller: str,
        identity: Mapping[str, Any],
        scope: Sequence[str],
    ) -> Outcome:
        """One attempt, run by `OncePerRequest` when it holds no answer for the request."""
        records = self._audit.records(request.request_id)
        self._heads[request.request_id] = chain_head(records)
        if records:
            # The idempotency record is gone while the trail remains: dropped after an
            # unfinished attempt (so the id may be sent again), or expired. The trail still
            # says what the id was first used for, and whether it finished.
            received = find_record(records, RECEIVED_SK)
            if received is None or received.get("fingerprint") != fingerprint(identity):
                raise RequestIdConflict(request.request_id)
            if find_record(records, OUTCOME_SK) is not None:
                outcome = self._stored_state(request.request_id, records)
                outcome.receipt = _receipt(outcome, *chain_head(records))
                return outcome
            received = {**received, **_due(records)}
            attempt = max((attempt_of(r["sk"]) or 0) for r in records) + 1
            if attempt > MAX_ATTEMPT:
                raise RequestInProgress(request.request_id)
        else:
            received = self._receive(request, caller, identity)
            attempt = 1
        earlier = matched_before(records, self._accounts.default)
        default = self._accounts.default
        if default is not None and default in scope and filed_before_accounts(records):
            scope = [default]
        outcome = Attempt(
            self._tools,
            request,
            caller,
            received,
            attempt,
            scope,
            earlier,
            purged_before(records),
            purged_before(records, WEBHOOK_DEAD_LETTERS),
            shown_before(records, self._accounts.default),
        ).execute()
        outcome.receipt = _receipt(outcome, *self._heads[request.request_id])
        return outcome

    def _append(
        self, request_id: str, sk: str, record: Mapping[str, Any], *, relink: bool = True
    ) -> dict[str, Any]:
        """Append one record, chained to the request's previous one. When another writer took
        the next place first, the record is linked to the new head (unless `relink` is off: the
        caller decides again on what it reads)."""
        for _ in range(RELINKS):
            head = self._heads.get(request_id, (0, GENESIS_HASH))
            linked = chained(request_id, sk, record, head)
            try:
                self._audit.append(request_id, sk, linked)
            except ChainMoved:
                if not relink:
                    raise
                self._heads[request_id] = chain_head(self._audit.records(request_id))
                continue
            self._heads[request_id] = (head[0] + 1, linked["hash"])
            return linked
        raise RequestInProgress(request_id)

    def _receive(
        self, request: ErasureRequest, caller: str, identity: Mapping[str, Any]
    ) -> dict[str, Any]:
        now = self._clock()
        record = {
            "record": "received",
            "received_at": iso(now),
            "due_at": end_of_day(due_date(now.date())),
            "caller": caller,
            "contact_id": request.contact_id,
            "account": request.account,
            "email_hmac": identity["email_hmac"],
            "reason": request.reason,
            "dry_run": request.dry_run,
            "erase_all_matches": request.erase_all_matches,
            "fingerprint": fingerprint(identity),
            "status": "open",
        }
        try:
            stored = self._append(request.request_id, RECEIVED_SK, record)
        except AlreadyRecorded:
            raise RequestInProgress(request.request_id) from None
        return {"request_id": request.request_id, "sk": RECEIVED_SK, **stored}

    def _stored_state(self, request_id: str, records: list[dict[str, Any]]) -> Outcome:
        outcome = find_record(records, OUTCOME_SK)
        if outcome is not None:
            # The trail's due date: an extension recorded while the attempt ran is not in the
            # outcome that attempt stored.
            return dataclasses.replace(
                from_data(Outcome, json.loads(outcome["outcome"])), **_due(records)
            )
        received = find_record(records, RECEIVED_SK) or {}
        attempts = [r for r in records if attempt_of(r["sk"]) is not None]
        last = max((attempt_of(r["sk"]) or 0 for r in attempts), default=0)
        latest = [r for r in attempts if attempt_of(r["sk"]) == last]
        contacts = [
            from_data(ContactResult, json.loads(r["result"]))
            for r in latest
            if r.get("record") == "contact"
        ]
        lookup = next((r for r in latest if r.get("record") == "lookup"), None)
        failed = next((r for r in latest if r.get("record") == "failed"), None)
        contact_ids = list(lookup.get("contact_ids", [])) if lookup else []
        accounts = plain(lookup.get("accounts", {})) if lookup else {}
        status: Status
        result: Result
        if failed is not None:
            status, result = "failed", "failed"
            message = failed_message(
                failed.get("error", "unknown"), failed.get("hint"), failed.get("account")
            )
        elif lookup is not None and lookup.get("result") == "awaiting_confirmation":
            status, result = "open", "awaiting_confirmation"
            message = SeveralMatches(request_id, contact_ids, accounts).args[0]
        elif lookup is not None and lookup.get("result") == OVER_HOURLY_LIMIT:
            status, result = "open", "in_progress"
            message = (
                "The stack's hourly ceiling on erasures (ErasureHourlyLimit) refused the last "
                "attempt before anything changed; send the same request id again later."
            )
        else:
            status, result = "open", "in_progress"
            message = "The request was received and is not finished; nothing is confirmed yet."
        return Outcome(
            request_id=request_id,
            status=status,
            result=result,
            dry_run=bool(received.get("dry_run")),
            received_at=received.get("received_at", ""),
            contact_ids=contact_ids,
            accounts=accounts,
            contacts=contacts,
            purged=_purged(records),
            message=message,
            **_due(records),
        )


def _due(records: Sequence[Mapping[str, Any]]) -> dict[str, Any]:
    """The request's due date: the extended one when it was extended."""
    extension = find_record(records, EXTENSION_SK)
    if extension is not None:
        return {"due_at": extension["due_at"], "due_extended": True}
    received = find_record(records, RECEIVED_SK) or {}
    return {"due_at": received.get("due_at", ""), "due_extended": False}


def _purged(records: Sequence[Mapping[str, Any]]) -> list[Purged]:
    """What the request's attempts purged so far, by store, as an attempt's answer counts it:
    the last attempt alone may have purged nothing (it failed at its lookup, or the hourly
    ceiling refused it) after an earlier one deleted the person's bodies and letters."""
    listed = sorted(
        {
            str(submission_id)
            for record in records
            if record.get("record") == "purge" and attempt_of(str(record.get("sk", ""))) is not None
            for purged in record.get("purged", [])
            if purged.get("store") == SUBMISSION_STORE
            for submission_id in purged.get("submission_ids", [])
        }
    )[:LISTED_SUBMISSIONS]
    counts = {
        store: purged_before(records, store) for store in (SUBMISSION_STORE, WEBHOOK_DEAD_LETTERS)
    }
    return [
        Purged(
            store=store,
            count=count,
            submission_ids=listed if store == SUBMISSION_STORE else [],
        )
        for store, count in counts.items()
        if count
    ]


def _receipt(outcome: Outcome, records: int, head: str) -> Receipt:
    return Receipt(
        request_id=outcome.request_id,
        status=outcome.status,
        outcome=outcome.result,
        completed_at=outcome.finished_at if outcome.status == "completed" else None,
        chain_head=head,
        records=records,
    )
