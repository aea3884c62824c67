"""One bounded step of a cleanup run: find a batch of contacts a rule matches, archive it (or,
in a dry run, only report it by id), checkpoint, and go on to the next rule's batch.

A run is many steps (a Step Functions loop, or the local run's loop); everything a step needs
to carry on is in `RunState`, which the step checkpoints after every batch, so a step killed
at any point costs at most the batch it was on.

- Find once, then archive. A rule limited to the intake's contacts pages through the ledger's
  *active* entries (archived ones left that set) by id, 100 at a time, and asks Cliniko which
  of them match (one request with an `id:=` filter). Other rules page through Cliniko's
  filtered list by id (`id:>cursor`, `sort=id`): a keyset page, so contacts archived meanwhile
  never shift the pages. The cursor is the last id of the batch.
- Exactly once. A step that starts with a batch still to archive (the last step stopped or was
  killed inside it) first asks Cliniko about that batch again, archived contacts included
  (`archived_at:*`): those already archived are counted, not archived a second time.
- Fair. Rules take turns, one batch each, so a backlogged rule never starves the others.
- A refusal for now (429 past the wait the client allows, 5xx, no connection) never abandons a
  rule: the step checkpoints and asks to be called again after a wait.

Nothing here knows about Lambda, Step Functions or DynamoDB.
"""

from __future__ import annotations

import contextlib
import dataclasses
import datetime as dt
import hashlib
import itertools
import json
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Literal, Protocol

from cliniko_automations.cleanup.config import CleanupRule
from cliniko_automations.cliniko import errors as cliniko_errors
from cliniko_automations.cliniko.config import PER_PAGE
from cliniko_automations.cliniko.filters import KEYSET_SORT, DateTimeFilter, Filter, NumericFilter
from cliniko_automations.cliniko.rules import contact_fields

# Cliniko's largest page; also how many ledger ids go into one `id:=` filter.
BATCH = PER_PAGE
# How many failed contact ids a rule's progress keeps (the count is always complete).
LISTED_FAILURES = 100
# The wait asked for after a refusal that names no reset time (5xx, no connection).
RETRY_WAIT_SECONDS = 30
# How long a batch is archived on Cliniko's word that it matches: past it, what is left of the
# batch is asked about again (one request). A batch archived at the bulk share beside a busy
# intake takes minutes (each request may wait CLINIKO_MAX_WAIT_SECONDS), and a contact staff
# changed meanwhile (no longer stale) must not be archived on what the rule saw before.
RECHECK_SECONDS = 60
# How long a rule may meet only 5xx or no answer before it stops (its error in the report,
# CleanupStoppedAlarm): Cliniko ends a query running over 30 s in 504, and a rule whose listing
# always runs that long was waited on forever, its run holding the lock against every
# scheduled run with nothing alarmed. An outage shorter than this is ridden out; after it, the
# next scheduled run tries the rule's contacts again. 429s never count: Cliniko answered.
FAILING_FOR_SECONDS = 6 * 3600
# How many turns a contact's archive may meet 5xx or no answer while Cliniko answers the rule's
# other requests before the contact counts as failed and the batch goes on without it: one
# contact Cliniko cannot archive (its own data trips Cliniko up) held up its whole rule, every
# run, until FAILING_FOR_SECONDS stopped it.
ARCHIVE_FAULTS_BEFORE_FAILED = 3

# The most contacts one run archives under a rule that sets no `max_archives_per_run`. A rule
# edited too broadly (a date typo, a `not_equals`) with CleanupDryRun off archived every contact
# it selected at Cliniko's pace, some 12,000 an hour, with no alarm (CleanupFailed counts
# refusals only); archives are undone one contact at a time in Cliniko. A clinic's daily run
# archives tens; a first run over a backlog, read in its dry run first, sets its own maximum.
MAX_ARCHIVES_PER_RUN = 500
# The error of a rule stopped by its maximum (CleanupStoppedAlarm).
ARCHIVE_LIMIT = "archive_limit"

Phase = Literal["find", "archive", "done"]
# RuleProgress's fields new on 2026-12-05, with their defaults: stored only when they differ.
# A release before them, rolled back to under a running run, builds RuleProgress from every
# stored field, and one it does not know failed each step, the release and `cleanup.py status`
# in a TypeError, the run's lock held its hour; so only a rule meeting 5xx or part-way through
# archiving a batch (batch_archived) fails so, not one between batches (a dry run always is).
STORED_ONLY_WHEN_SET: dict[str, Any] = {
    "failing_since": None,
    "archive_faults": {},
    "batch_archived": False,
    # New on 2026-12-06.
    "gone": 0,
}


@dataclass
class RuleProgress:
    rule: str
    account: str
    created_by_intake: bool
    phase: Phase = "find"
    # The last id of the last batch found (a ledger id, or a Cliniko contact id).
    cursor: str | None = None
    # The batch found and not archived yet.
    pending: list[str] = field(default_factory=list)
    # True once the batch in `pending` is the last one.
    exhausted: bool = False
    asked: int = 0  # ledger ids asked about, or contacts listed
    matched: int = 0
    archived: int = 0
    # Found, then gone before its archive (Cliniko answered 404: archived by staff meanwhile,
    # or deleted): not this run's archive, and out of the ledger's active set all the same.
    gone: int = 0
    failed: int = 0
    batches: int = 0
    error: str | None = None  # the kind of the last Cliniko error
    failed_ids: list[str] = field(default_factory=list)
    # When the rule's turns began to meet only 5xx or no answer (ISO 8601; None while Cliniko
    # answers): past FAILING_FOR_SECONDS of it, the rule stops.
    failing_since: str | None = None
    # Contacts of the batch whose archive met 5xx or no answer, with how many turns it did so
    # while Cliniko answered another request of the turn (ARCHIVE_FAULTS_BEFORE_FAILED).
    archive_faults: dict[str, int] = field(default_factory=dict)
    # Whether a contact of the batch was archived: until one is, archives failing for each
    # contact may be Cliniko refusing every write (a maintenance window), no contact's fault.
    batch_archived: bool = False
    # The rule as the run began with it (`rule_fingerprint`: a hash, since a rule's values may
    # be a person's email, which the runs table keeps 90 days out of an erasure's reach; a run
    # stored before keeps the rule's JSON): the rules file may change while a run goes on for
    # hours, and a changed rule stops the run's work on it (`_advance`).
    definition: str | dict[str, Any] | None = None

    @property
    def stopped(self) -> bool:
        """Ended before its work was done (a key or filter Cliniko refuses for good, the rule
        removed or changed mid-run; `error` says why). Not a field of its own: a run stored
        before this was asked reads the same."""
        return self.phase == "done" and self.error is not None and not self.exhausted

    def stop(self, error: str) -> None:
        # Not exhausted: a rule stopped on its last batch did not get through it.
        self.phase, self.error, self.exhausted, self.pending = "done", error, False, []
        self.archive_faults, self.batch_archived = {}, False

    @classmethod
    def start(cls, rule: CleanupRule) -> RuleProgress:
        return cls(
            rule.name, rule.account, rule.created_by_intake, definition=rule_fingerprint(rule)
        )


def rule_fingerprint(rule: CleanupRule) -> str:
    """SHA-256 of the rule's JSON: tells a changed rule without keeping its values."""
    text = json.dumps(rule.as_json(), sort_keys=True, separators=(",", ":"))
    return hashlib.sha256(text.encode()).hexdigest()


@dataclass
class RunState:
    run_id: str
    dry_run: bool
    started_at: str  # ISO 8601; rules' ages are measured from it, the same in every step
    rules: list[RuleProgress]
    next_rule: int = 0  # whose turn it is (round robin)
    steps: int = 0
    # failed: the state machine gave up on it (its steps kept failing) and released it.
    status: Literal["running", "finished", "failed"] = "running"

    @property
    def done(self) -> bool:
        return all(progress.phase == "done" for progress in self.rules)

    def as_dict(self) -> dict[str, Any]:
        data = dataclasses.asdict(self)
        for progress in data["rules"]:
            for name, default in STORED_ONLY_WHEN_SET.items():
                if progress[name] == default:
                    del progress[name]
        return data

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> RunState:
        # Fields this code does not know (a run stored by a later release, the stack rolled
        # back under it) are left out, where they ended every step of the run in a TypeError.
        known = {f.name for f in dataclasses.fields(RuleProgress)}
        values = {k: v for k, v in data.items() if k in {f.name for f in dataclasses.fields(cls)}}
        values["rules"] = [
            RuleProgress(**{k: v for k, v in progress.items() if k in known})
            for progress in data["rules"]
        ]
        return cls(**values)


@dataclass(frozen=True)
class StepOutcome:
    """What the loop does next: another step now, one after `wait_seconds`, or stop."""

    next: Literal["step", "wait", "done"]
    wait_seconds: int = 0


class ContactsClient(Protocol):
    """What the cleanup needs of `ClinikoClient`."""

    def iter_contacts(
        self, filters: Sequence[Filter] = (), sort: str | None = None
    ) -> Iterator[Any]: ...

    def archive_contact(self, contact_id: str) -> None: ...


class ActiveLedger(Protocol):
    """The intake's ledger as the cleanup uses it (`common.ledger.DynamoLedger`)."""

    def active_ids(self, account: str, after: str | None, limit: int) -> list[str]: ...

    def mark_archived(self, contact_ids: Sequence[str], archived_at: str) -> None: ...

    def last_submissions(self, contact_ids: Sequence[str]) -> dict[str, str]: ...


class Checkpoints(Protocol):
    """Where a run's progress and report go (`cleanup.runs.DynamoRuns`)."""

    def save(self, state: RunState) -> None: ...

    def record_ids(
        self, run_id: str, rule: str, batch: int, kind: str, contact_ids: Sequence[str]
    ) -> None: ...


class _Refused(Exception):
    """Cliniko refuses for now: checkpoint, then wait `seconds` before the next step."""

    def __init__(self, seconds: int) -> None:
        self.seconds = seconds


def _wait_after(error: cliniko_errors.ClinikoError, now: float) -> int:
    if isinstance(error, cliniko_errors.RateLimited) and error.reset_at is not None:
        return max(1, int(error.reset_at - now) + 1)
    return RETRY_WAIT_SECONDS


@dataclass(frozen=True)
class RuleQuery:
    """What a rule selects as its run began: Cliniko's filters, the `updated_at` cutoff the
    intake's ledger is read against, and the same conditions read by this process."""

    filters: list[Filter]
    updated_before: dt.datetime | None
    admits: Callable[[Any], bool]


def _selected(query: RuleQuery, listing: Iterator[Any]) -> Iterator[Any]:
    """`listing`, a listing for the rule's filters: stopped at the first contact the rule's
    conditions leave out. Cliniko's filters decide what the cleanup archives, and a Cliniko
    (or a proxy) that dropped one listed contacts no rule selects (every intake contact for
    an email pattern, staff's own for `created_by_intake: false`), which were archived."""
    for contact in listing:
        if not query.admits(contact):
            raise cliniko_errors.UnexpectedResponse(
                "Cliniko listed a contact the rule's conditions leave out (its q[] filters "
                "dropped or read otherwise): this rule cannot tell what it selects"
            )
        yield contact


def _within(ids: list[str], listing: Iterator[Any]) -> list[str]:
    """The ids of `listing`, a list of the contacts `ids` names. A Cliniko that ignored the
    id filter lists others, which a rule on the intake's contacts must never archive (staff
    made them): the rule stops at the first, before reading the account's every page."""
    asked = set(ids)
    listed = []
    for contact in listing:
        if contact.id not in asked:
            raise cliniko_errors.UnexpectedResponse(
                "Cliniko listed contacts outside the ids asked for (q[]=id:=): this rule "
                "cannot tell the intake's contacts from others"
            )
        listed.append(contact.id)
    return listed


def _transient(error: cliniko_errors.ClinikoError) -> bool:
    return isinstance(error, cliniko_errors.RateLimited | cliniko_errors.ServerError)


def _access_refused(error: cliniko_errors.ClinikoError) -> bool:
    """Cliniko refused the account's key (401) or its user (403): every other request of the
    rule would be refused alike, and the deployment needs fixing."""
    return isinstance(error, cliniko_errors.Unauthorized | cliniko_errors.Forbidden)


class AccountMisconfigured(Exception):
    """An account's client cannot be made as deployed (its key secret missing, empty, denied
    or outside SecretsPrefix, the key malformed): raised by `client_for_account`, it stops
    that account's rules with `kind` as their error; the other accounts' rules go on."""

    def __init__(self, kind: str) -> None:
        self.kind = kind
        super().__init__(kind)


class CleanupStep:
    def __init__(
        self,
        rules: Mapping[str, CleanupRule],
        client_for_account: Callable[[str], ContactsClient],
        ledger: ActiveLedger,
        checkpoints: Checkpoints,
        out_of_time: Callable[[], bool] = lambda: False,
        clock: Callable[[], dt.datetime] = lambda: dt.datetime.now(dt.UTC),
        on_access_refused: Callable[[str, cliniko_errors.ClinikoError], None] = lambda *_: None,
        key_replaced: Callable[[str], bool] = lambda _account: False,
    ) -> None:
        self._rules = rules
        self._on_access_refused = on_access_refused  # (account, error): tell the operator
        # (account): whether the key Cliniko refused is no longer the one in its secret.
        self._key_replaced = key_replaced
        self._keys_kept: set[str] = set()  # accounts whose refused key is still their secret's
        self._client_for_account = client_for_account
        self._ledger = ledger
        self._checkpoints = checkpoints
        self._out_of_time = out_of_time
        self._clock = clock

    def run(self, state: RunState) -> StepOutcome:
        """Work through batches, rules taking turns, until the run is done or time is up."""
        state.steps += 1
        # A batch found by an earlier step may be partly archived already (a killed step).
        unverified = {p.rule for p in state.rules if p.phase == "archive"}
        # Rules Cliniko refused for now in this step, with the wait it asked: they sit out the
        # rest of the step, so one account's outage or 429 does not hold up the others' rules.
        resting: dict[str, int] = {}
        while not state.done and not self._out_of_time():
            progress = self._next_turn(state, resting)
            if progress is None:  # every rule left is refused for now
                self._checkpoints.save(state)
                return StepOutcome("wait", min(resting.values()))
            try:
                self._advance(state, progress, verify=progress.rule in unverified)
            except _Refused as refused:
                resting[progress.rule] = refused.seconds
            else:
                unverified.discard(progress.rule)
            self._checkpoints.save(state)
        if state.done:
            state.status = "finished"
            self._checkpoints.save(state)
            return StepOutcome("done")
        return StepOutcome("step")

    def _next_turn(self, state: RunState, resting: Mapping[str, int]) -> RuleProgress | None:
        count = len(state.rules)
        for offset in range(count):
            index = (state.next_rule + offset) % count
            rule = state.rules[index]
            if rule.phase != "done" and rule.rule not in resting:
                state.next_rule = (index + 1) % count
                return rule
        return None

    def _advance(self, state: RunState, progress: RuleProgress, *, verify: bool) -> None:
        """One turn of a rule: find its next batch, then archive it (not in a dry run)."""
        rule = self._rules.get(progress.rule)
        # A rule taken out of the file, or changed, since the run began stops here: an operator
        # who narrows a rule mid-run wants no more archived under what it said before.
        if rule is None:
            self._stop_counting_cut_archives(state, progress, "rule_removed")
            return
        if progress.definition is not None and progress.definition not in (
            rule_fingerprint(rule),
            # A run stored with the rule's JSON (before fingerprints; before the rules had
            # max_archives_per_run, which `as_json` leaves out when unset).
            rule.as_json(),
            rule.model_dump(mode="json"),
        ):
            self._stop_counting_cut_archives(state, progress, "rule_changed")
            return
        try:
            client = self._client_for_account(progress.account)
        except AccountMisconfigured as error:
            progress.stop(error.kind)
            return
        started = dt.datetime.fromisoformat(state.started_at)
        query = RuleQuery(
            rule.filters(started),
            rule.updated_before(started),
            lambda contact: rule.admits(contact_fields(contact), started),
        )
        try:
            if progress.phase == "find":
                self._find(progress, client, query)
                progress.failing_since = None  # Cliniko answers again
                progress.batches += 1
                if state.dry_run:
                    self._record(state, progress, "matched", progress.pending)
                    self._finish_batch(progress)
                    return
                limit = rule.max_archives_per_run or MAX_ARCHIVES_PER_RUN
                if progress.archived + len(progress.pending) > limit:
                    # Before any of the batch is archived: the run archives at most `limit`
                    # under this rule, and the stop is alarmed (CleanupStoppedAlarm).
                    progress.stop(ARCHIVE_LIMIT)
                    return
                progress.phase = "archive"
                self._checkpoints.save(state)  # the batch is known before any archive
            if progress.phase == "archive":
                if verify:
                    self._verify(state, progress, client, query)
                self._archive(state, progress, client, query)
                progress.failing_since = None
        except cliniko_errors.ClinikoError as error:
            if _access_refused(error):
                self._unless_key_replaced(progress.account)
            progress.error = kind = cliniko_errors.error_kind(error)
            if _transient(error) and not self._failing_too_long(progress, error):
                raise _Refused(_wait_after(error, self._clock().timestamp())) from error
            # Refused for good (a filter Cliniko rejects, a key without access): this rule
            # stops with its error in the report; the other rules go on.
            if _access_refused(error):
                self._on_access_refused(progress.account, error)
            progress.stop(kind)

    def _failing_too_long(self, progress: RuleProgress, error: cliniko_errors.ClinikoError) -> bool:
        """Whether the rule has met only 5xx or no answer for FAILING_FOR_SECONDS (this one
        included); a 429 neither counts nor ends the count."""
        if isinstance(error, cliniko_errors.RateLimited):
            return False
        now = self._clock()
        if progress.failing_since is None:
            progress.failing_since = now.isoformat()
            return False
        since = dt.datetime.fromisoformat(progress.failing_since)
        return (now - since).total_seconds() >= FAILING_FOR_SECONDS

    def _find(
        self,
        progress: RuleProgress,
        client: ContactsClient,
        query: RuleQuery,
    ) -> None:
        filters, updated_before = query.filters, query.updated_before
        if progress.created_by_intake:
            ids = self._ledger.active_ids(progress.account, progress.cursor, BATCH)
            matched = (
                _within(
                    ids,
                    _selected(query, client.iter_contacts([*filters, NumericFilter("id").eq(ids)])),
                )
                if ids
                else []
            )
            matched = self._unmet_since(matched, updated_before)
            progress.asked += len(ids)
            found = ids
        else:
            after = [NumericFilter("id").gt(progress.cursor)] if progress.cursor else []
            listing = _selected(query, client.iter_contacts([*filters, *after], sort=KEYSET_SORT))
            # One page: stop reading before the client asks for the next one.
            matched = [c.id for c in itertools.islice(listing, BATCH)]
            if any(int(b) <= int(a) for a, b in itertools.pairwise(matched)):
                # The cursor is a keyset on id: a Cliniko that lists in another order (one that
                # ignores `sort=id`: created_at, ties in any order) would have it skip contacts
                # and end the rule as done. Stopped here instead, before this batch is archived.
                raise cliniko_errors.UnexpectedResponse(
                    "Cliniko did not list the contacts in id order (sort=id): this rule cannot "
                    "page them by id"
                )
            progress.asked += len(matched)
            found = matched
            # An intake contact among them counts its last submission too (the ledger's).
            matched = self._unmet_since(matched, updated_before)
        progress.exhausted = len(found) < BATCH
        if found:
            progress.cursor = found[-1]
        progress.pending = matched
        progress.matched += len(matched)

    def _unmet_since(self, matched: list[str], updated_before: dt.datetime | None) -> list[str]:
        """Those of the intake's `matched` that no submission met since `updated_before`: a
        person who sent the form again and changed nothing left Cliniko's updated_at as it
        was, touched since the cutoff all the same (the ledger's)."""
        if not matched or updated_before is None:
            return matched
        sent = self._ledger.last_submissions(matched)
        return [
            i
            for i in matched
            if i not in sent or dt.datetime.fromisoformat(sent[i]) < updated_before
        ]

    def _verify(
        self,
        state: RunState,
        progress: RuleProgress,
        client: ContactsClient,
        query: RuleQuery,
    ) -> None:
        """Drop from the batch what an earlier, cut-off step archived (and count it)."""
        self._count_cut_archives(state, progress, client)
        if not progress.pending:
            return
        # Not seen: it no longer matches (changed meanwhile): left alone.
        progress.pending = self._still_matching(client, query, progress.pending)

    def _count_cut_archives(
        self, state: RunState, progress: RuleProgress, client: ContactsClient
    ) -> None:
        """Count, and drop from the batch, what an earlier, cut-off step archived of it."""
        if not progress.pending:
            return
        # By id alone: archiving moves updated_at, so a rule on it would no longer see the
        # contacts it archived itself.
        archived = {
            c.id
            for c in client.iter_contacts(
                [NumericFilter("id").eq(progress.pending), DateTimeFilter("archived_at").present()]
            )
        }
        # Counted and out of the batch together: a refusal of a query after this would
        # otherwise save the count with the batch unchanged, and the next step count them again.
        self._archived(state, progress, [i for i in progress.pending if i in archived])
        progress.pending = [i for i in progress.pending if i not in archived]

    def _stop_counting_cut_archives(
        self, state: RunState, progress: RuleProgress, error: str
    ) -> None:
        """Stop the rule (removed or changed mid-run), first counting what a cut-off step
        archived of its batch: dropped uncounted, the run's report left out archives it made
        (which an operator undoing a rule edited too broadly reads), and their ledger entries
        stayed active, asked about on every run. Cliniko failing that one request, the stop
        goes ahead all the same."""
        if progress.phase == "archive" and progress.pending:
            with contextlib.suppress(cliniko_errors.ClinikoError, AccountMisconfigured):
                client = self._client_for_account(progress.account)
                self._count_cut_archives(state, progress, client)
        progress.stop(error)

    def _still_matching(
        self,
        client: ContactsClient,
        query: RuleQuery,
        contact_ids: list[str],
    ) -> list[str]:
        """Those of `contact_ids` the rule selects now (lists leave archived contacts out)."""
        listing = client.iter_contacts([*query.filters, NumericFilter("id").eq(contact_ids)])
        seen = {c.id for c in _selected(query, listing)}
        still = [i for i in contact_ids if i in seen]
        return self._unmet_since(still, query.updated_before)

    def _archive(
        self,
        state: RunState,
        progress: RuleProgress,
        client: ContactsClient,
        query: RuleQuery,
    ) -> None:
        done: list[str] = []
        gone: list[str] = []
        checked = self._clock()
        answered = False  # whether Cliniko answered a request of this turn: it is up
        try:
            for contact_id in list(progress.pending):
                if self._out_of_time():
                    break
                recheck = (self._clock() - checked).total_seconds() > RECHECK_SECONDS
                if recheck or (contact_id in progress.archive_faults and not answered):
                    # What is left was found a while ago: a contact changed since (staff
                    # edited it) and no longer matching is left alone, as `_verify` leaves it.
                    # Asked too before a contact whose archive failed is tried again: its
                    # answer tells that contact's trouble from Cliniko's.
                    rest = [i for i in progress.pending if i not in done and i not in gone]
                    still = set(self._still_matching(client, query, rest))
                    progress.pending = [
                        i for i in progress.pending if i in done or i in gone or i in still
                    ]
                    checked, answered = self._clock(), True
                if contact_id not in progress.pending:
                    continue
                try:
                    client.archive_contact(contact_id)
                except cliniko_errors.NotFound:
                    # Gone since it was found (archived by staff, deleted): nothing to archive.
                    gone.append(contact_id)
                    answered = True
                    continue
                except cliniko_errors.ClinikoError as error:
                    # Cliniko is up, and archives: the trouble is this contact's.
                    blame = answered and (progress.batch_archived or bool(done))
                    if self._archive_fault(progress, contact_id, error, blame):
                        continue
                    if _transient(error):
                        raise
                    if _access_refused(error):
                        self._unless_key_replaced(progress.account)
                        # Every other archive of the batch would be refused alike: they all
                        # count as failed, and the rule stops (`_advance` tells the fix once).
                        self._failed(
                            progress,
                            [i for i in progress.pending if i not in done and i not in gone],
                        )
                        raise
                    self._failed(progress, [contact_id])
                    progress.error = cliniko_errors.error_kind(error)
                    continue
                done.append(contact_id)
                answered = True
        finally:
            # Whatever happens next, what was archived is counted and leaves the ledger.
            self._archived(state, progress, done)
            self._gone(state, progress, gone)
            if done or gone:  # Cliniko answered: a 5xx that ends this turn starts the count again
                progress.failing_since = None
            handled = {*done, *gone}
            progress.pending = [i for i in progress.pending if i not in handled]
        if not progress.pending:
            self._finish_batch(progress)

    def _archive_fault(
        self,
        progress: RuleProgress,
        contact_id: str,
        error: cliniko_errors.ClinikoError,
        blame: bool,
    ) -> bool:
        """Whether the contact, its archive met 5xx or no answer again while Cliniko archived
        others and answered the turn's other requests (`blame`), now counts as failed (and the
        batch goes on without it). Otherwise a contact whose archive met such an error goes to
        the end of the batch, so the next turn begins with the others; the caller rests the
        rule as after any 5xx."""
        if not isinstance(error, cliniko_errors.ServerError) or isinstance(
            error, cliniko_errors.OutOfTime
        ):
            return False
        faults = progress.archive_faults.get(contact_id, 0) + blame
        if faults >= ARCHIVE_FAULTS_BEFORE_FAILED:
            self._failed(progress, [contact_id])
            progress.error = cliniko_errors.error_kind(error)
            return True
        progress.archive_faults[contact_id] = faults
        progress.pending = [i for i in progress.pending if i != contact_id] + [contact_id]
        return False

    def _unless_key_replaced(self, account: str) -> None:
        """Cliniko refused the account's key: when its secret holds another one now (rotated
        within the secrets' cache, the old key archived), the rule rests a moment and its next
        turn's client holds the new key, with nothing counted as failed and no alarm."""
        if account in self._keys_kept:
            return
        if self._key_replaced(account):
            raise _Refused(1)
        self._keys_kept.add(account)

    @staticmethod
    def _failed(progress: RuleProgress, contact_ids: list[str]) -> None:
        """Refused for good: counted, listed (up to LISTED_FAILURES) and left active."""
        progress.failed += len(contact_ids)
        room = LISTED_FAILURES - len(progress.failed_ids)
        progress.failed_ids.extend(contact_ids[: max(0, room)])
        failed = set(contact_ids)
        progress.pending = [i for i in progress.pending if i not in failed]
        for contact_id in failed:
            progress.archive_faults.pop(contact_id, None)

    def _archived(self, state: RunState, progress: RuleProgress, contact_ids: list[str]) -> None:
        if not contact_ids:
            return
        progress.archived += len(contact_ids)
        progress.batch_archived = True
        self._settled(state, progress, "archived", contact_ids)

    def _gone(self, state: RunState, progress: RuleProgress, contact_ids: list[str]) -> None:
        """Counted and listed apart from the run's archives: an undo of the run's must not
        unarchive what staff archived."""
        if not contact_ids:
            return
        progress.gone += len(contact_ids)
        self._settled(state, progress, "gone", contact_ids)

    def _settled(
        self, state: RunState, progress: RuleProgress, kind: str, contact_ids: list[str]
    ) -> None:
        """Contacts no longer active in Cliniko, archived by this rule or gone before."""
        # Whichever rule archived it: a contact the intake made leaves the ledger's active set
        # (Cliniko's lists no longer show it, and it was asked about again on every run).
        self._ledger.mark_archived(contact_ids, self._clock().isoformat())
        for contact_id in contact_ids:
            progress.archive_faults.pop(contact_id, None)
        # This rule's, from now on: left in another rule's batch (a cut-off step's), that
        # rule's verify found it archived and counted it too.
        settled = set(contact_ids)
        for other in state.rules:
            if other is not progress:
                other.pending = [i for i in other.pending if i not in settled]
        self._record(state, progress, kind, contact_ids)

    def _record(
        self, state: RunState, progress: RuleProgress, kind: str, contact_ids: list[str]
    ) -> None:
        if contact_ids:
            self._checkpoints.record_ids(
                state.run_id, progress.rule, progress.batches, kind, contact_ids
            )

    @staticmethod
    def _finish_batch(progress: RuleProgress) -> None:
        progress.pending, progress.archive_faults, progress.batch_archived = [], {}, False
        progress.phase = "done" if progress.exhausted else "find"
