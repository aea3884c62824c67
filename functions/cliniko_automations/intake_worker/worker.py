"""The intake worker's core: one queued submission becomes (at most) one Cliniko contact.

Plain Python: it knows nothing of SQS, Lambda or DynamoDB. Its collaborators are ports
(small protocols) with adapters elsewhere: the Cliniko client, a claim store that serialises
workers on one identity, a create-intent store, the ledger, and the parking queue. The
runtime (intake_worker/runtime.py) wraps `IntakeWorker.process` in Powertools idempotency, so a
submission that completed once is answered from the idempotency record; everything below is
about attempts that did not complete.

Exactly-once, in the order things can go wrong:
1. Two workers, same person (different submissions, or concurrent redeliveries): both take
   the claim for the person's identity (hash of account + lower-cased email, or account +
   name); the second waits, then looks up after the first created, and finds the contact
   (the first keeps the claim a few seconds after its create answered, in case Cliniko's
   lists show a new contact a moment later: CREATED_SEARCH_SETTLES_SECONDS). One with the
   email and one without (known by name and phone) meet on the name's claim, which the first
   takes too while it creates or updates.
2. A crash (or a timeout whose outcome is unknown) after Cliniko created the contact but
   before the idempotency record says so: before every create the worker writes a *create
   intent* keyed by the submission's idempotency key with that attempt's start, and notes
   when the create's answer was lost. A retry that finds an intent looks up again; a match
   that this create provably made (Cliniko's `created_at` inside that attempt's window and
   every field as the create sent it, see find_or_create) is adopted (ledger written,
   outcome "created") instead of created twice. Any other match was made by someone else
   while the submission waited (staff, another submission of the same person: the claim is
   not held between attempts), so it is updated per the source's policy like any existing
   contact, and stays out of the ledger. Submissions with no identity to look up (no email,
   no name+phone) are recovered by listing the contacts created in the window.
3. Cliniko says no for good (422): the submission is rejected (dead-lettered by the handler).
   Cliniko is busy (429/5xx after the client's own retries): the attempt fails and the
   queue delivers it again later.
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Mapping, Sequence
from dataclasses import asdict, dataclass
from datetime import UTC, datetime, timedelta
from typing import Any, Protocol

import httpx

from cliniko_automations.cliniko import errors
from cliniko_automations.cliniko.filters import DateTimeFilter, Filter, StringFilter
from cliniko_automations.cliniko.rules import contact_fields, is_archived
from cliniko_automations.common.identity_claims import (
    CREATED_SEARCH_SETTLES_SECONDS,
    LOST_CREATE_SETTLES_SECONDS,
)
from cliniko_automations.common.ledger import LedgerEntry
from cliniko_automations.intake.submission import Submission
from cliniko_automations.intake_worker import find_or_create as foc

# --- failures ---------------------------------------------------------------------------


class SubmissionFailure(Exception):
    """An attempt that did not complete. `reason` is a code safe to log and store: it never
    carries a submitted value (field names at most)."""

    throttled: bool = False

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


class RetryLater(SubmissionFailure):
    """Transient: the queue should deliver the submission again (with backoff). `not_before`:
    a 429's X-RateLimit-Reset (UNIX time); a delivery before it would be refused again."""

    def __init__(self, reason: str, *, not_before: float | None = None) -> None:
        super().__init__(reason)
        self.not_before = not_before


class ClinikoBusy(RetryLater):
    """Cliniko answered 429 or 5xx after the client's own bounded retries."""

    throttled = True


class Rejected(SubmissionFailure):
    """Permanent: retrying the same submission cannot succeed (Cliniko's 422, a malformed
    message, an unknown account). Goes to the dead-letter queue at once, with its reason."""


class Misconfigured(Rejected):
    """Permanent until an operator changes the deployment: Cliniko refused the key (401) or
    its user (403), or the key's secret or the client's settings are wrong. Dead-lettered at
    once with the fix (replayable once fixed); `error` is what revealed it."""

    def __init__(self, reason: str, error: BaseException) -> None:
        super().__init__(reason)
        self.error = error


class ClaimBusy(RetryLater):
    def __init__(self) -> None:
        super().__init__("claim_busy")


class Erased(SubmissionFailure):
    """The submission's person was erased after it was made, found just before it would have
    written to Cliniko: it is dropped, never processed (it would bring them back)."""

    def __init__(self) -> None:
        super().__init__("erased")


# --- ports ------------------------------------------------------------------------------


class ContactsPort(Protocol):
    """The part of `ClinikoClient` the worker uses."""

    def expect_requests(self, count: int) -> None: ...

    def list_contacts_and_clock(
        self, filters: Sequence[Any] = (), sort: str | None = None
    ) -> tuple[list[Any], float | None]: ...

    def get_contact(self, contact_id: str) -> Any: ...

    def create_contact(self, body: Mapping[str, Any]) -> Any: ...

    def update_contact(self, contact_id: str, body: Mapping[str, Any]) -> Any: ...


class HeldClaim(Protocol):
    def keep_for(self, seconds: float) -> None:
        """At the end of the block, leave the claim held `seconds` more instead of letting go
        (0: let go)."""
        ...


class Claims(Protocol):
    def hold(self, key: str) -> contextlib.AbstractContextManager[HeldClaim]:
        """Hold the claim on `key` for the block; raise `ClaimBusy` if it cannot be had."""
        ...


@dataclass(frozen=True)
class Intent:
    """The latest create attempt of one submission: when it began, when its answer was lost
    (None: unknown, the attempt died), and the contact once the create is known."""

    started_at: datetime
    lost_at: datetime | None = None
    contact_id: str | None = None

    @property
    def window(self) -> foc.CreateWindow:
        return foc.CreateWindow(self.started_at, self.lost_at)


class Intents(Protocol):
    def get(self, idempotency_key: str) -> Intent | None: ...

    def begin(self, idempotency_key: str, started_at: datetime) -> None:
        """A create attempt starts: replaces any earlier attempt's times."""
        ...

    def lost(self, idempotency_key: str, lost_at: datetime) -> None:
        """The attempt's create answer was lost (its window ends here)."""
        ...

    def complete(self, idempotency_key: str, contact_id: str) -> None: ...

    def abandon(self, idempotency_key: str) -> None:
        """The attempt's create provably made nothing (Cliniko refused it): no window is left
        open for a retry to adopt a look-alike from."""
        ...

    def keep(self, idempotency_key: str) -> None:
        """The submission was parked for its window (`ambiguous_recovery`): the intent stays
        as long as the parked message's replay may come, which it parks again, not creates."""
        ...


class Ledger(Protocol):
    def record(self, entry: LedgerEntry) -> None:
        """Records the contact as made by `entry.submission_id`; an entry another
        submission already holds for the contact is kept, never overwritten."""
        ...

    def seen(self, contact_id: str, at: str) -> None:
        """A submission met the contact at `at` (kept only if the ledger holds it)."""
        ...


class Parking(Protocol):
    def park(self, submission: Submission, reason: str, candidate_ids: Sequence[str]) -> None: ...


# --- outcome ----------------------------------------------------------------------------


@dataclass(frozen=True)
class Outcome:
    """The result of one submission, as stored in the idempotency record (no personal data)."""

    action: str  # created | updated | unchanged | parked
    submission_id: str
    contact_id: str | None = None
    reason: str | None = None
    recovered: bool = False  # adopted a contact an earlier, interrupted attempt created
    fields: tuple[str, ...] = ()  # names of fields written (create or update)
    # An earlier attempt of this submission already completed this outcome (and reported
    # it, unless its invocation died): not a second ContactCreated.
    replayed: bool = False

    def as_dict(self) -> dict[str, Any]:
        data = asdict(self)
        data["fields"] = list(self.fields)
        return data


def _refused(error: Exception) -> bool:
    """A create Cliniko refused (its rate limit, a 4xx) or the client did not send (a body it
    would refuse): nothing was made."""
    if isinstance(error, errors.RateLimited | errors.ValidationFailed):
        return True
    status = getattr(error, "status_code", None)
    return isinstance(error, errors.ClinikoError) and status is not None and 400 <= status < 500


def _maybe_made(error: Exception) -> bool:
    """A create that may have reached Cliniko and been saved: its answer lost, a 5xx, or an
    answer off the spec (a 2xx the client could not read, a connection failure it reports
    for an answer it could not decode)."""
    if isinstance(error, errors.CreateOutcomeUnknown | errors.ServerError | httpx.TransportError):
        return True
    status = getattr(error, "status_code", None)
    return isinstance(error, errors.UnexpectedResponse) and (status is None or status < 400)


def _utcnow() -> datetime:
    return datetime.now(UTC)


# --- the core ---------------------------------------------------------------------------


class IntakeWorker:
    def __init__(
        self,
        *,
        claims: Claims,
        intents: Intents,
        ledger: Ledger,
        parking: Parking,
        now: Callable[[], datetime] = _utcnow,
        lost_create_settles_seconds: float = LOST_CREATE_SETTLES_SECONDS,
        created_search_settles_seconds: float = CREATED_SEARCH_SETTLES_SECONDS,
    ) -> None:
        self._claims = claims
        self._intents = intents
        self._ledger = ledger
        self._parking = parking
        self._now = now
        self._lost_create_settles = lost_create_settles_seconds
        self._created_search_settles = created_search_settles_seconds

    def process(
        self,
        submission: Submission,
        cliniko: ContactsPort,
        erased: Callable[[], bool] = lambda: False,
    ) -> Outcome:
        """Find or create the submission's contact. Raises `SubmissionFailure` when the
        attempt did not complete (Cliniko's errors are translated here, once). `erased()`
        says whether the person was erased since the submission was loaded: asked again just
        before a create or an update, since the claim, the lookups and Cliniko's waits may
        have taken long enough for an erasure to happen in between."""
        try:
            return self._process(submission, cliniko, erased)
        except SubmissionFailure:
            raise
        except errors.ValidationFailed as exc:
            # Field names only: Cliniko's messages are generic, but values never leave here.
            fields = ",".join(sorted(getattr(exc, "errors", None) or {})) or "-"
            raise Rejected(f"cliniko_validation_failed:{fields}") from None
        except errors.RateLimited as exc:
            raise ClinikoBusy("cliniko_rate_limited", not_before=exc.reset_at) from None
        except errors.ConnectionFailed:
            raise ClinikoBusy("cliniko_unreachable") from None
        except errors.ServerError:
            raise ClinikoBusy("cliniko_server_error") from None
        except (errors.Unauthorized, errors.Forbidden) as exc:
            # A key or permission problem an operator fixes: retries would fail alike, so the
            # dead-letter queue holds the submission for a replay once it is fixed.
            raise Misconfigured(f"cliniko_{type(exc).__name__.lower()}", exc) from None
        except errors.ClinikoError as exc:
            raise RetryLater(f"cliniko_error:{type(exc).__name__}") from None
        except httpx.TransportError as exc:
            raise RetryLater(f"cliniko_unreachable:{type(exc).__name__}") from None

    def _process(
        self, submission: Submission, cliniko: ContactsPort, erased: Callable[[], bool]
    ) -> Outcome:
        draft = submission.draft
        lookup = foc.lookup_for(draft)
        claim_key = lookup.claim_key(submission.account)
        hold: contextlib.AbstractContextManager[HeldClaim | None] = (
            self._claims.hold(claim_key) if claim_key else contextlib.nullcontext()
        )
        with hold as claim:
            intent = self._intents.get(submission.idempotency_key)
            if intent is not None and intent.contact_id is not None:
                # An earlier attempt created the contact and recorded it, then failed before
                # the idempotency record was saved (or that record expired before this
                # replay): finish its bookkeeping, create nothing, count nothing again.
                self._record_created(submission, intent.contact_id)
                return self._created(submission, intent.contact_id, recovered=True, replayed=True)
            if intent is not None and intent.lost_at is not None:
                settled = self._settled(intent.lost_at)
                if self._now() < settled:
                    # Cliniko may still be saving that create: looked for now, it is not listed
                    # yet, and a create made the person twice. A claim keeps a person with an
                    # identity until then; one with none has no claim to wait on.
                    raise RetryLater("lost_create_settling", not_before=settled.timestamp())
            decision = self._decide(submission, lookup, cliniko, intent)
            writing = lookup.writing_claim_key(submission.account)
            also: contextlib.AbstractContextManager[HeldClaim | None] = (
                self._claims.hold(writing)
                if writing and decision.action in ("create", "update")
                else contextlib.nullcontext()
            )
            with also as name_claim:
                if decision.action in ("create", "update") and erased():
                    raise Erased()
                return self._apply(submission, lookup, decision, cliniko, claim, name_claim)

    def _decide(
        self,
        submission: Submission,
        lookup: foc.Lookup,
        cliniko: ContactsPort,
        intent: Intent | None,
    ) -> foc.Decision:
        draft = submission.draft
        window = intent.window if intent else None
        if lookup.kind is foc.LookupKind.NONE:
            if window is None:
                return foc.Decision("create", changes=draft.cliniko_fields())
            cliniko.expect_requests(2)  # the recent contacts, then most often the create
            recent, offset = self._recent(cliniko, draft, window)
            return foc.decide_recovery(draft, recent, window.on_clinikos_clock(offset))
        # A lookup, then most often the create or update it decides: booked together.
        cliniko.expect_requests(2)
        candidates, offset = self._candidates(cliniko, lookup)
        if window is not None:
            # Cliniko stamps `created_at` by its clock, minutes from ours at times: the window
            # (taken by ours) goes where its clock put the create, as the lookup's answer told.
            window = window.on_clinikos_clock(offset)
        return foc.decide(
            draft,
            lookup,
            candidates,
            submission.update_policy,
            lost_create=window,
            unanswered=submission.unanswered,
        )

    def _apply(
        self,
        submission: Submission,
        lookup: foc.Lookup,
        decision: foc.Decision,
        cliniko: ContactsPort,
        claim: HeldClaim | None,
        name_claim: HeldClaim | None = None,
    ) -> Outcome:
        sid = submission.submission_id
        if decision.action == "park":
            if decision.reason == "ambiguous_recovery":
                # Expired, the window would be gone and the replay make the person twice.
                self._intents.keep(submission.idempotency_key)
            self._parking.park(submission, decision.reason or "review", decision.candidate_ids)
            return Outcome("parked", sid, reason=decision.reason)
        # decide() names the contact for every action but park and create.
        if decision.action == "adopt":
            assert decision.contact_id is not None
            self._record_created(submission, decision.contact_id)
            return self._created(submission, decision.contact_id, recovered=True)
        if decision.action == "unchanged":
            assert decision.contact_id is not None
            # Cliniko's updated_at stays as it was: the ledger says the person was here.
            self._ledger.seen(decision.contact_id, self._now().isoformat())
            return Outcome("unchanged", sid, contact_id=decision.contact_id)
        if decision.action == "update":
            assert decision.contact_id is not None
            try:
                updated = cliniko.update_contact(decision.contact_id, dict(decision.changes))
            except errors.NotFound:
                # Listed a moment ago, not there to update now: archived since (Cliniko's own
                # route hides an archived contact), or listed without the mark that says so.
                # As an archived match: staff decide; nothing is revived or duplicated, and
                # retries would only meet the same 404 until the dead-letter queue.
                self._parking.park(submission, "match_not_found", (decision.contact_id,))
                return Outcome("parked", sid, reason="match_not_found")
            if is_archived(contact_fields(updated)):
                # Archived between the lookup and the update (the cleanup's rule, staff), by a
                # Cliniko that updates an archived contact: the details went into a record staff
                # no longer see. Reported `updated`, nobody would learn the person is back.
                self._parking.park(submission, "archived_match", (decision.contact_id,))
                return Outcome("parked", sid, reason="archived_match")
            return Outcome(
                "updated",
                sid,
                contact_id=decision.contact_id,
                fields=tuple(sorted(decision.changes)),
            )
        return self._create(submission, lookup, decision, cliniko, claim, name_claim)

    def _create(
        self,
        submission: Submission,
        lookup: foc.Lookup,
        decision: foc.Decision,
        cliniko: ContactsPort,
        claim: HeldClaim | None,
        name_claim: HeldClaim | None = None,
    ) -> Outcome:
        """`name_claim`: the name's claim an email's worker holds while it writes
        (`Lookup.writing_claim_key`), kept with `claim` while a lost create settles, and the
        3 s of Cliniko's lists after an answered one: a submission of the same person without
        an email, known by name and phone, waits for it and then finds the contact (let go
        at once, it looked within the lists' lag, found nobody and made the person twice). A
        namesake's create waits those seconds too."""
        started = self._now()
        self._intents.begin(submission.idempotency_key, started)
        try:
            contact = cliniko.create_contact(dict(decision.changes))
        except (errors.ClinikoError, httpx.TransportError) as error:
            if _refused(error):
                # Cliniko made nothing. Left open, the window let a retry adopt a contact
                # staff typed in meanwhile as this one's.
                self._intents.abandon(submission.idempotency_key)
                raise
            if not _maybe_made(error):
                raise
            # Cliniko may have saved it, or may yet. Look before anyone creates again: now,
            # and (the intent stays, with this attempt's window) on the retry. Until it has
            # settled, the person stays claimed (LOST_CREATE_SETTLES_SECONDS).
            for held in (claim, name_claim):
                if held is not None:
                    held.keep_for(self._lost_create_settles)
            lost = self._now()
            self._intents.lost(submission.idempotency_key, lost)
            again = self._decide(submission, lookup, cliniko, Intent(started, lost))
            if again.action == "adopt":
                assert again.contact_id is not None  # an adoption names its contact
                self._record_created(submission, again.contact_id)
                for held in (claim, name_claim):
                    if held is not None:
                        held.keep_for(0)  # saved, and found: nothing left to settle
                return self._created(submission, again.contact_id, recovered=True)
            # Not delivered again before Cliniko has surely settled it (see `_process`).
            raise RetryLater(
                "create_outcome_unknown", not_before=self._settled(lost).timestamp()
            ) from None
        contact_id = str(contact_fields(contact)["id"])
        for held in (claim, name_claim):
            if held is not None:
                # Cliniko's docs do not promise that its lists show the contact at once: let
                # go now, and the person's next submission could look them up, find nobody and
                # make them twice (CREATED_SEARCH_SETTLES_SECONDS).
                held.keep_for(self._created_search_settles)
        self._record_created(submission, contact_id)
        return Outcome(
            "created",
            submission.submission_id,
            contact_id=contact_id,
            fields=tuple(sorted(decision.changes)),
        )

    def _settled(self, lost_at: datetime) -> datetime:
        """When a create whose answer was lost at `lost_at` is saved by Cliniko or never."""
        return lost_at + timedelta(seconds=self._lost_create_settles)

    def _record_created(self, submission: Submission, contact_id: str) -> None:
        # Ledger first: if we die between the two writes, the intent still lacks the id and
        # the retry adopts the contact again, writing the same ledger entry (the ledger keeps
        # the first submission's entry for a contact, so nothing can rewrite it).
        self._ledger.record(
            LedgerEntry(
                contact_id=contact_id,
                account=submission.account,
                source=submission.source,
                submission_id=submission.submission_id,
                created_at=self._now().isoformat(),
            )
        )
        self._intents.complete(submission.idempotency_key, contact_id)

    def _created(
        self, submission: Submission, contact_id: str, *, recovered: bool, replayed: bool = False
    ) -> Outcome:
        # An adopted contact carries every field the create sent (that is how it was
        # recognised), so those are the fields written.
        return Outcome(
            "created",
            submission.submission_id,
            contact_id=contact_id,
            recovered=recovered,
            fields=tuple(foc.present_fields(submission.draft)),
            replayed=replayed,
        )

    @staticmethod
    def _candidates(
        cliniko: ContactsPort, lookup: foc.Lookup
    ) -> tuple[list[dict[str, Any]], timedelta | None]:
        """The contacts the lookup lists, and Cliniko's clock offset as the answers told it."""
        # Archived contacts are included on purpose: a match that is archived is parked,
        # not silently duplicated (see find_or_create).
        include_archived = DateTimeFilter("archived_at").any()
        # lookup_for() sets what its kind searches by; a lookup of kind NONE never gets here.
        if lookup.kind is foc.LookupKind.EMAIL:
            assert lookup.email is not None
            filters = [StringFilter("email").eq(lookup.email), include_archived]
            listed, offset = cliniko.list_contacts_and_clock(filters)
            return [contact_fields(c) for c in listed], _offset(offset)
        assert lookup.first_name is not None and lookup.last_name is not None
        # `~~` without a `%` is the whole name (`=` minds case, and "ana lima" is the contact
        # "Ana Lima"); a `%` in a name only widens the list, and foc.matches decides. Whether
        # Cliniko's `~~` minds case is not documented: the name as typed first, then as staff
        # most often type it, until one finds the contact (a new contact costs them all).
        found: dict[str, dict[str, Any]] = {}
        clock_offset: float | None = None
        for first, last in foc.name_spellings(lookup.first_name, lookup.last_name):
            filters = [
                _name_filter("first_name", first),
                _name_filter("last_name", last),
                include_archived,
            ]
            answered, offset = cliniko.list_contacts_and_clock(filters)
            clock_offset = offset if clock_offset is None else clock_offset
            listed = [contact_fields(c) for c in answered]
            found.update((str(c["id"]), c) for c in listed)
            if any(foc.matches(lookup, c) for c in listed):
                break
        return list(found.values()), _offset(clock_offset)

    @staticmethod
    def _recent(
        cliniko: ContactsPort, draft: Any, window: foc.CreateWindow
    ) -> tuple[list[dict[str, Any]], timedelta | None]:
        """The contacts created since the window began, and Cliniko's clock offset as the
        answers told it."""
        # Whole seconds, the form Cliniko documents its date-time filters in (one second more
        # of candidates, which made_by_create then sorts out). Cliniko's clock is known only
        # from the answer: asked from as far behind ours as it is believed to run.
        since = (window.started_at - foc.CLOCK_SKEW - foc.BELIEVED_SKEW).replace(microsecond=0)
        # Archived ones too: one this create made, archived since, is parked, not made again.
        filters: list[Any] = [
            DateTimeFilter("created_at").gt(since),
            DateTimeFilter("archived_at").any(),
        ]
        # Only fields the contacts page of Cliniko's docs lists as filterable: a Cliniko that
        # answers another (company_name) with 400 would leave a made contact unfound.
        for name in ("first_name", "last_name"):
            value = (getattr(draft, name) or "").strip()
            if value:
                filters.append(StringFilter(name).eq(value))
        listed, offset = cliniko.list_contacts_and_clock(filters)
        return [contact_fields(c) for c in listed], _offset(offset)


def _offset(seconds: float | None) -> timedelta | None:
    return None if seconds is None else timedelta(seconds=seconds)


def _name_filter(field: str, name: str) -> Filter:
    """`~~` for the name in any spacing of its words and with either apostrophe; `=` for it
    as typed when it holds what `~~` may read as a wildcard (foc.holds_pattern_characters)."""
    if foc.holds_pattern_characters(name):
        return StringFilter(field).eq(name)
    return StringFilter(field).like(foc.spacing_free(name))
