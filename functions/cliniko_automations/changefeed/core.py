"""Poll an account's contacts by `updated_at` and publish each change exactly once.

Per account: list `updated_at >= cursor - overlap` (archived contacts included), sorted by
`updated_at`, 100 a request. Between requests the listing moves as a cursor (keyset), not by
page number: the next request starts at the last `updated_at` the page showed, so a contact
changed while the feed is listing moves later in the order and is met again, never skipped.
Only when a whole page shares one second does the feed ask for the next page of that second.

Each page: the contacts' last published states are read, the changes classified (duplicates
dropped: the overlap and re-runs list contacts again), their events published, their states
recorded, and only then the cursor saved. A run that dies anywhere re-lists from the saved
cursor and the recorded states drop what was already published; a crash between a publish
and its record (milliseconds) re-publishes that batch with the same event ids, which
subscribers dedupe on (`webhook-id`). A change EventBridge took only in part is recorded with
what it refused (`PublishedState.unsent`), which the next run sends before the contact's next
change; one it refused whole is not recorded, and is sent whole (or merged into the contact's
next change, nobody having been told of it).

A quiet minute costs one request: one page, holding only the overlap's contacts. Accounts are
polled side by side (each under its own lease, cursor and key), so a run with several takes
about as long as its slowest, not their sum of round trips.
Nothing here knows about Lambda, EventBridge or DynamoDB.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import math
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Protocol

from cliniko_automations.cliniko import errors as cliniko_errors
from cliniko_automations.cliniko.transport import BELIEVABLE_SKEW_SECONDS
from cliniko_automations.common.timestamps import iso

from .changes import (
    Change,
    ContactSnapshot,
    FieldHasher,
    PublishedState,
    Unsent,
    classify,
    known_hashes,
    unsent_change,
)
from .events import MAX_CALL_BYTES, EventBuilder, OutgoingEvent

# EventBridge takes at most 10 entries a PutEvents call.
MAX_ENTRIES = 10
SECOND = dt.timedelta(seconds=1)
# Accounts polled at once: inside boto3's default pool of 10 connections per client.
MAX_PARALLEL_ACCOUNTS = 8
# How far Cliniko's clock may be behind ours and still be believed (its answers' `Date`): a
# first run that ends before any answer told it leaves the next run this far back.
BELIEVED_SKEW = dt.timedelta(seconds=BELIEVABLE_SKEW_SECONDS)


@dataclass(frozen=True)
class SecondPosition:
    """How far a run read a busy second by id before its time ran out: the second, the last id
    read in it, and when its reading from the first id began (on Cliniko's clock, as the
    second is, when its answers told it)."""

    second: dt.datetime
    after_id: int
    read_from: dt.datetime


@dataclass(frozen=True)
class ContactsPage:
    contacts: Sequence[ContactSnapshot]
    has_next: bool
    # How many contacts the request matched (Cliniko's total_entries); None when unknown.
    total: int | None = None
    # Cliniko's clock less this run's when it answered (its `Date`: whole seconds, so never
    # more than it was); None when unknown or not believed.
    clock_offset: dt.timedelta | None = None


class ContactsSource(Protocol):
    """An account's contacts changed at or after `since` (archived ones included), in
    `updated_at` order, page `page` of 100."""

    def changed_since(self, since: dt.datetime, page: int) -> ContactsPage: ...

    def changed_in_second(self, second: dt.datetime, after_id: int) -> ContactsPage:
        """The contacts changed within that one second whose id is above `after_id`, in id
        order, the first 100: a second holding more than a page is read by id, not by page
        number, so a contact that leaves it mid-read (changed again) moves none past us."""
        ...


class FeedStore(Protocol):
    def lease(self, account: str, owner: str, seconds: float) -> bool:
        """Hold the account for one run (scheduled runs may overlap); False if another has it."""
        ...

    def release(self, account: str, owner: str) -> None: ...

    def cursor(self, account: str) -> dt.datetime | None: ...

    def position(self, account: str) -> SecondPosition | None:
        """Where the last run left a busy second's reading by id, as `cursor` read it."""
        ...

    def save_cursor(
        self,
        account: str,
        cursor: dt.datetime,
        *,
        caught_up: bool,
        position: SecondPosition | None = None,
    ) -> None: ...

    def published(self, account: str, contact_ids: Sequence[str]) -> dict[str, PublishedState]: ...

    def record(self, account: str, states: Sequence[PublishedState]) -> None: ...


class EventSink(Protocol):
    def publish(self, events: Sequence[OutgoingEvent]) -> None:
        """Put every event on the bus, or raise `PublishFailed`."""
        ...


class PublishFailed(Exception):
    """Some events could not be put on the bus (the message names counts and codes only).
    `accepted`: the positions, in the list given to `publish`, of the events that were."""

    def __init__(self, message: str, accepted: frozenset[int] = frozenset()) -> None:
        super().__init__(message)
        self.accepted = accepted


@dataclass
class AccountResult:
    account: str
    listed: int = 0
    changes: int = 0
    events: int = 0
    duplicates: int = 0
    requests: int = 0
    by_type: dict[str, int] = field(default_factory=dict)
    # Seconds from each published change's updated_at to its publication, both on Cliniko's
    # clock (`clock_offset`, when its answers told it), never below 0.
    lags: list[float] = field(default_factory=list, repr=False)
    complete: bool = True
    error: str | None = None
    cursor: str | None = None
    # Cliniko's clock less this run's, from the run's first listing (ContactsPage).
    clock_offset: dt.timedelta | None = field(default=None, repr=False)

    def as_dict(self) -> dict[str, object]:
        summary = {k: v for k, v in self.__dict__.items() if k not in ("lags", "clock_offset")}
        summary["max_lag_seconds"] = round(max(self.lags), 3) if self.lags else None
        return summary


class SourceUnavailable(Exception):
    """An account's Cliniko source cannot be built (its key's secret is missing or unreadable):
    that account's run fails, not the others'. The message is a fixed reason, safe to log."""


class CorruptState(Exception):
    """An item of the feed's own table cannot be read (edited by hand, or by another
    version): that account's runs fail with the fixed reason this carries (corrupt_cursor,
    corrupt_state) until an operator mends or deletes the item; other accounts go on."""


class ChangeFeed:
    def __init__(
        self,
        source_for_account: Callable[[str], ContactsSource],
        store: FeedStore,
        sink: EventSink,
        hasher: FieldHasher,
        builder: EventBuilder,
        *,
        overlap: dt.timedelta,
        start_at: dt.datetime | None = None,
        run_id: str,
        lease_seconds: float,
        out_of_time: Callable[[], bool] = lambda: False,
        clock: Callable[[], dt.datetime] = lambda: dt.datetime.now(dt.UTC),
        on_access_refused: Callable[[str, cliniko_errors.ClinikoError], None] = lambda *_: None,
        key_replaced: Callable[[str], bool] = lambda _account: False,
    ) -> None:
        self._run_id = run_id
        # (account, error): Cliniko refused the account's key or its user, which every later
        # run meets alike until the deployment is fixed: tell the operator.
        self._on_access_refused = on_access_refused
        # (account): whether the refused key is no longer the one in its secret (rotated
        # within the secrets' cache, the old key archived): the next run uses the new one, and
        # nothing needs fixing.
        self._key_replaced = key_replaced
        self._lease_seconds = lease_seconds
        self._source_for_account = source_for_account
        self._store = store
        self._sink = sink
        self._hasher = hasher
        self._builder = builder
        self._overlap = overlap
        self._start_at = start_at
        self._out_of_time = out_of_time
        self._clock = clock

    def run(self, accounts: Sequence[str]) -> list[AccountResult]:
        """Every account's result, in the order given; an error that is not an account's
        own (the store failing) is raised once every account's poll has ended."""
        if len(accounts) < 2:
            return [self.poll(account) for account in accounts]
        # Loaded here: a one-account run never pays for the import.
        from concurrent.futures import ThreadPoolExecutor

        with ThreadPoolExecutor(
            max_workers=min(len(accounts), MAX_PARALLEL_ACCOUNTS), thread_name_prefix="poll"
        ) as pool:
            return list(pool.map(self.poll, accounts))

    def poll(self, account: str) -> AccountResult:
        result = AccountResult(account)
        if not self._store.lease(account, self._run_id, self._lease_seconds):
            # Two runs of one account would publish the same changes twice.
            result.complete, result.error = False, "another_run_is_polling"
            return result
        try:
            return self._poll(account, result)
        finally:
            self._store.release(account, self._run_id)

    def _poll(self, account: str, result: AccountResult) -> AccountResult:
        try:
            cursor = self._store.cursor(account)
        except CorruptState as error:
            result.complete, result.error = False, str(error)
            return result
        # A first run from now, not from a backfill date: "now" on Cliniko's clock, which
        # stamps the changes, once its first answer tells it (`_on_clinikos_clock`).
        from_now = cursor is None and self._start_at is None
        if cursor is None:
            # First run: from now (no history), or from the configured backfill date. Saved at
            # once: if this run fails, the next starts here (or before: see the end of the
            # run), not from its own "now". From now, saved as far back as Cliniko's clock
            # may be believed behind ours until its first answer tells that clock: saved as
            # our now, a run killed before that answer (a crash, a timeout) left the next to
            # start after what Cliniko, behind us, stamped meanwhile.
            cursor = self._start_at or self._clock().replace(microsecond=0)
            saved = cursor - BELIEVED_SKEW if from_now else cursor
            self._store.save_cursor(account, saved, caught_up=False)
        since = cursor - self._overlap
        # The furthest a cursor saved by this run may go: a second the run read less than the
        # overlap ago and then went past (its next page from a later second) may still take a
        # change being committed, which the next run's overlap must read (`_read_past`).
        ceiling: dt.datetime | None = None

        def capped(moved: dt.datetime) -> dt.datetime:
            return moved if ceiling is None else min(moved, ceiling)

        left_at = self._store.position(account)
        # Inside a second that holds more than a page: the last id read there, and when its
        # reading began; kept with the cursor while the overlap still reads that second.
        kept = left_at
        after_id: int | None = None
        read_from = self._clock()  # replaced, with after_id, by _resume
        # The fewest contacts the next request by updated_at may match, and the cursor and
        # position to go back to if it matches fewer.
        at_least: tuple[int, dt.datetime, SecondPosition | None] | None = None
        try:
            source = self._source_for_account(account)
            while True:
                if self._out_of_time():
                    result.complete = False
                    break
                before_page = (cursor, kept)
                asked_at = self._clock()
                if after_id is None:
                    listing = source.changed_since(since, 1)
                    result.requests += 1
                    fewest, page_from, page_kept = at_least or (0, cursor, kept)
                    at_least = None
                    if listing.total is not None and listing.total < fewest:
                        # The last page was not the earliest changes: a Cliniko that ignored
                        # `sort` and answered in created_at order, with a page that happened
                        # to look sorted. The changes the count misses lie before the cursor
                        # that page moved: back to where it was, and the run stops (the
                        # page's changes were recorded: read again, none is sent twice).
                        cursor = page_from
                        self._store.save_cursor(
                            account,
                            cursor,
                            caught_up=False,
                            position=self._in_overlap(page_kept, cursor),
                        )
                        raise cliniko_errors.UnexpectedResponse(
                            "Cliniko's pages of contacts are not sorted by updated_at"
                        )
                    if result.clock_offset is None:
                        result.clock_offset = listing.clock_offset
                    if from_now:
                        from_now = False
                        start = _on_clinikos_clock(cursor, listing.clock_offset)
                        if start < cursor:
                            cursor = start
                            self._store.save_cursor(
                                account,
                                cursor,
                                caught_up=False,
                                position=self._in_overlap(kept, cursor),
                            )
                            if cursor < since:
                                # Cliniko's clock further behind than the overlap: what it
                                # stamped since this run began is not all on that page.
                                since = cursor - self._overlap
                                continue
                else:
                    listing = source.changed_in_second(since, after_id)
                    result.requests += 1
                # When the page was read, on Cliniko's clock, which stamps the changes.
                read_at = asked_at + (result.clock_offset or dt.timedelta(0))
                self._publish_page(account, listing.contacts, result)
                if listing.contacts:
                    newest = max(c.updated_at for c in listing.contacts)
                    # Never past this run's own clock: a Cliniko clock running ahead would
                    # otherwise carry the cursor past changes made once it is set right.
                    cursor = max(cursor, min(newest, self._clock().replace(microsecond=0)))
                if after_id is not None:
                    last_id = max((int(c.contact_id) for c in listing.contacts), default=after_id)
                    kept = SecondPosition(since.replace(microsecond=0), last_id, read_from)
                    if listing.has_next and listing.contacts:
                        after_id = last_id
                    else:
                        # That second is read: on from the next one. Its position stays, read
                        # to its last id: the next polls' overlap reads the second again, and
                        # resumed from its first id every quiet poll re-read all of it.
                        second = since.replace(microsecond=0)
                        ceiling = self._read_past(ceiling, second, second + SECOND, read_at)
                        since, after_id = second + SECOND, None
                    self._store.save_cursor(
                        account,
                        capped(cursor),
                        caught_up=False,
                        position=self._in_overlap(kept, capped(cursor)),
                    )
                    continue
                # An empty page ends the listing too, with or without a next link: nothing
                # changed at or after `since` (the first page of a keyset is never empty
                # while something follows it).
                caught_up = not listing.has_next or not listing.contacts
                self._store.save_cursor(
                    account,
                    capped(cursor),
                    caught_up=caught_up,
                    position=self._in_overlap(kept, capped(cursor)),
                )
                if caught_up:
                    break
                last = max(c.updated_at for c in listing.contacts)
                first = min(c.updated_at for c in listing.contacts)
                if last > since and first.replace(microsecond=0) < last.replace(microsecond=0):
                    ceiling = self._read_past(ceiling, since, last, read_at)
                    since = last
                    if listing.total is not None:
                        # Every contact the page did not show comes after its last, and a
                        # change only moves a contact later: the next request, from the last
                        # one's second, matches all those and the page's own from that second.
                        earlier = sum(
                            c.updated_at.replace(microsecond=0) < last.replace(microsecond=0)
                            for c in listing.contacts
                        )
                        at_least = (listing.total - earlier, *before_page)
                else:
                    since = max(since, last)
                    # A full page inside one second: read that whole second again, by id. Not
                    # on from the page's highest id: Cliniko shows whole seconds but may keep
                    # fractions, so that page was the second's earliest changes, not its
                    # lowest ids (the ones read again are dropped as duplicates).
                    after_id, read_from = self._resume(left_at, since, result.clock_offset)
        except cliniko_errors.ClinikoError as error:
            result.complete, result.error = False, cliniko_errors.error_kind(error)
            if cliniko_errors.access_hint(error) is not None:
                if self._key_replaced(account):
                    result.error = cliniko_errors.KEY_ROTATED
                else:
                    self._on_access_refused(account, error)
        except PublishFailed:
            result.complete, result.error = False, "publish_failed"
        except (SourceUnavailable, CorruptState) as error:
            result.complete, result.error = False, str(error)
        if from_now:
            # A first run from now that no answer reached (Cliniko failing, the key's secret
            # missing): the next starts from the cursor saved, and nothing will move it to
            # Cliniko's clock. As far back as that clock may be believed behind ours: a few
            # minutes before the feed's start may be published, none after it is missed.
            cursor -= BELIEVED_SKEW
            self._store.save_cursor(account, cursor, caught_up=False)
        result.cursor = iso(capped(cursor))
        return result

    def _read_past(
        self,
        ceiling: dt.datetime | None,
        since: dt.datetime,
        until: dt.datetime,
        read_at: dt.datetime,
    ) -> dt.datetime | None:
        """The run's ceiling once it goes on from `until`, having read the seconds from
        `since` at `read_at`: a change stamped in one of them may be committed up to the
        overlap after it (the overlap's own premise), and one read less than that ago may
        take one still. The next run's overlap reads it again from the earliest such second.
        Without, a change committed a moment after its second was read was lost for good once
        the run read on past later seconds: only the next run's start had the overlap."""
        fresh = max(
            since.replace(microsecond=0),
            (read_at - self._overlap).replace(microsecond=0) + SECOND,
        )
        if fresh >= until.replace(microsecond=0):
            return ceiling
        bound = fresh + self._overlap
        return bound if ceiling is None else min(ceiling, bound)

    def _in_overlap(
        self, kept: SecondPosition | None, cursor: dt.datetime
    ) -> SecondPosition | None:
        """A busy second's position while a poll from `cursor` still reads that second."""
        if kept is not None and kept.second >= (cursor - self._overlap).replace(microsecond=0):
            return kept
        return None

    def _resume(
        self,
        left_at: SecondPosition | None,
        second: dt.datetime,
        clock_offset: dt.timedelta | None,
    ) -> tuple[int, dt.datetime]:
        """Where to read a busy second by id from: its first id, or where an earlier run's time
        ran out. A second holding more than one run can read was read from its first id by
        every run, and the feed never got past it. The earlier run's ids are not read again
        only when its reading began more than the overlap after the second: every change
        stamped in it was committed by then (the overlap's own premise), so none hides among
        the ids already read. When the reading begins is taken on Cliniko's clock
        (`clock_offset`), as the second is: on ours, a minute ahead of Cliniko's, every reading
        looked a minute late, and the next run read on past ids a change still being committed
        in that second may have taken."""
        second = second.replace(microsecond=0)
        if (
            left_at is not None
            and left_at.second == second
            and left_at.read_from - second > self._overlap
        ):
            return left_at.after_id, left_at.read_from
        return 0, self._clock() + (clock_offset or dt.timedelta(0))

    def _publish_page(
        self, account: str, contacts: Sequence[ContactSnapshot], result: AccountResult
    ) -> None:
        result.listed += len(contacts)
        latest: dict[str, ContactSnapshot] = {}
        for contact in contacts:
            # A page may show a contact once; keep its newest state if it somehow shows twice.
            known = latest.get(contact.contact_id)
            if known is None or contact.updated_at >= known.updated_at:
                latest[contact.contact_id] = contact
        result.duplicates += len(contacts) - len(latest)
        published = self._store.published(account, list(latest))
        owed: list[_Publication] = []
        new: list[_Publication] = []
        for contact in latest.values():
            previous = published.get(contact.contact_id)
            hashes = self._hasher.hashes(contact)
            change = classify(account, contact, previous, hashes, hasher=self._hasher)
            if change is None:
                result.duplicates += 1
            if previous is not None and previous.unsent:
                # What earlier runs' changes left unsent, with the contact's values only while
                # it is still in the state that change reached (the recorded one).
                publication = _Publication(previous)
                same = previous.same_state(contact, known_hashes(contact, previous, hashes))
                for unsent in previous.unsent:
                    reached = same and unsent.event_id == previous.event_id
                    late = unsent_change(account, previous, unsent, contact if reached else None)
                    publication.add(late, self._builder.events_for(late, unsent), unsent)
                owed.append(publication)
                # The new change goes only once all that is owed was taken (else the run
                # stops first), so it is recorded over the state with nothing owed.
                previous = dataclasses.replace(previous, unsent=())
            if change is not None:
                publication = _Publication(previous)
                publication.add(change, self._builder.events_for(change))
                new.append(publication)
        # What is owed first, in calls of its own: a change refused again must not reach its
        # subscribers after the contact's next change, taken in the same call.
        self._publish(account, owed, result)
        self._publish(account, new, result)

    def _publish(
        self, account: str, publications: Sequence[_Publication], result: AccountResult
    ) -> None:
        for batch in _batches([part for p in publications for part in p.parts]):
            events = [event for part in batch for event in part.events]
            failed: PublishFailed | None = None
            try:
                if events:
                    self._sink.publish(self._builder.signed_now(events))
                accepted = frozenset(range(len(events)))
            except PublishFailed as error:
                failed, accepted = error, error.accepted
            position = 0
            for part in batch:
                part.accepted = [position + n in accepted for n in range(len(part.events))]
                position += len(part.events)
            # Each contact the call touched is recorded at once (what EventBridge took must not
            # be sent again, whatever the next call does); when it failed, the run stops.
            touched = [p for p in publications if any(part in batch for part in p.parts)]
            self._record(account, touched, result)
            result.events += len(accepted)
            if failed is not None:
                raise failed

    def _record(
        self, account: str, publications: Sequence[_Publication], result: AccountResult
    ) -> None:
        states = [s for s in (p.recorded() for p in publications) if s is not None]
        if states:
            self._store.record(account, states)
        # On Cliniko's clock, as updated_at is: with its clock behind this one's the lag read
        # on ours was overstated by the difference, and ahead, it went below 0.
        published_at = self._clock() + (result.clock_offset or dt.timedelta(0))
        for publication in publications:
            change = publication.moved_to()
            if change is None or change.snapshot is None:
                continue
            result.changes += 1
            result.by_type[change.type] = result.by_type.get(change.type, 0) + 1
            lag = (published_at - change.snapshot.updated_at).total_seconds()
            result.lags.append(max(0.0, lag))


@dataclass(eq=False)
class _Part:
    """One change's events, sent in one PutEvents call; `unsent`: the earlier run's part
    of the change they complete (None: the contact's new change)."""

    change: Change
    events: list[OutgoingEvent]
    unsent: Unsent | None
    accepted: list[bool] | None = None  # per event, once the call was made

    def refused(self) -> list[OutgoingEvent]:
        accepted = self.accepted or [False] * len(self.events)
        return [event for event, ok in zip(self.events, accepted, strict=True) if not ok]


@dataclass(eq=False)
class _Publication:
    """A contact's events on a page: what its recorded state left unsent, or its new change."""

    previous: PublishedState | None
    parts: list[_Part] = field(default_factory=list)

    def add(
        self, change: Change, events: list[OutgoingEvent], unsent: Unsent | None = None
    ) -> None:
        self.parts.append(_Part(change, events, unsent))

    def moved_to(self) -> Change | None:
        """The new change, when EventBridge took any of its events (then it is recorded, and
        what it took is never sent again); a change refused whole is sent whole next run."""
        new = self.parts[-1] if self.parts and self.parts[-1].unsent is None else None
        return new.change if new is not None and any(new.accepted or ()) else None

    def recorded(self) -> PublishedState | None:
        """The state to record: the new change's, or the previous one, with what is still
        unsent; None when that is what is recorded already (or nothing was published)."""
        moved = self.moved_to()
        state = moved.state if moved is not None else self.previous
        if state is None:
            return None
        unsent = []
        for part in self.parts:
            refused = part.refused()
            if not refused or (part.unsent is None and moved is None):
                continue
            subscribers = tuple(e.subscriber for e in refused if e.subscriber is not None)
            unsent.append(
                part.change.unsent(bus=len(subscribers) < len(refused), subscribers=subscribers)
            )
        recorded = dataclasses.replace(state, unsent=tuple(unsent))
        return None if recorded == self.previous else recorded


def _batches(parts: Sequence[_Part]) -> list[list[_Part]]:
    """Parts packed into PutEvents calls of at most 10 entries and MAX_CALL_BYTES, never
    splitting a change's events across calls."""
    batches: list[list[_Part]] = []
    current: list[_Part] = []
    entries = size = 0
    for part in parts:
        if len(part.events) > MAX_ENTRIES:
            raise ValueError("a change has more events than one PutEvents call takes")
        weight = sum(event.size() for event in part.events)
        if current and (entries + len(part.events) > MAX_ENTRIES or size + weight > MAX_CALL_BYTES):
            batches.append(current)
            current, entries, size = [], 0, 0
        current.append(part)
        entries += len(part.events)
        size += weight
    if current:
        batches.append(current)
    return batches


def _on_clinikos_clock(start: dt.datetime, clock_offset: dt.timedelta | None) -> dt.datetime:
    """A first run's start (this run's "now"), moved back to Cliniko's clock when that runs
    behind (`clock_offset`), to the whole second. Cliniko stamps the changes: a start on a
    clock ahead of its own by more than the overlap missed, for good, every change it stamped
    in between (each run lists from the cursor on). One ahead of ours is left alone: what it
    stamps from now on is later than our "now" anyway. An answer that tells nothing of
    Cliniko's clock (no `Date`, or one not believed) is as good as no answer: as far back as
    that clock may be believed behind ours, as a first run no answer reached."""
    if clock_offset is None:
        return start - BELIEVED_SKEW
    if clock_offset >= dt.timedelta(0):
        return start
    return (start + clock_offset).replace(microsecond=0)


def lag_percentiles(lags: Sequence[float]) -> Mapping[str, float]:
    """p50 and p95 of lags (nearest rank), for figures and logs."""
    if not lags:
        return {}
    ordered = sorted(lags)

    def rank(p: float) -> float:
        return ordered[max(0, math.ceil(p * len(ordered)) - 1)]

    return {"p50": rank(0.50), "p95": rank(0.95)}
