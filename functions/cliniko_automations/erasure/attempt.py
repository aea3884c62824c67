"""One attempt at an erasure request: look up the contacts, purge what this system keeps of
the person, then scrub, archive and verify each contact, recording each step in the trail.

Erasure also reaches what this system keeps of the person: every submission body stored for
their email, or for a matched contact's name and one of its phones (by keyed hash; the queues
carry only ids), is deleted, and tombstones keep older submissions of theirs from bringing
them back (see common/submission_store.py); and
the webhook deliveries EventBridge gave up on that carry the fields of a matched contact
(changefeed/webhook_dead_letters.py), when the webhook stack's queue is configured.

The lookup searches each account of the request's scope (accounts.py); a contact is one
account's, and is scrubbed, archived and verified through that account's client.
"""

from __future__ import annotations

from collections.abc import Callable, Collection, Mapping, Sequence
from dataclasses import dataclass, replace
from datetime import datetime
from typing import Any

from cliniko_automations.cliniko import errors as cliniko_errors
from cliniko_automations.cliniko.filters import (
    KEYSET_SORT,
    DateTimeFilter,
    NumericFilter,
    StringFilter,
)
from cliniko_automations.cliniko.rules import contact_fields, is_archived
from cliniko_automations.common.identity_claims import contact_claims, email_claim
from cliniko_automations.common.person_keys import (
    PersonKeys,
    compared_email,
    contact_keys,
    earlier_contact_keys,
    email_hash,
    phone_entries,
    text_of,
)
from cliniko_automations.common.plain_data import as_data, as_json
from cliniko_automations.common.submission_store import PurgeCut
from cliniko_automations.common.timestamps import iso
from cliniko_automations.erasure.accounts import ErasureAccounts
from cliniko_automations.erasure.errors import (
    AlreadyRecorded,
    OverHourlyLimit,
    RequestInProgress,
    SeveralMatches,
)
from cliniko_automations.erasure.models import (
    PER_CALL,
    ContactResult,
    ErasureRequest,
    Outcome,
    Purged,
    Result,
)
from cliniko_automations.erasure.ports import ErasureCeiling, SubmissionStore, WebhookLetters
from cliniko_automations.erasure.scrub import (
    HONEST_NOTE,
    PLACEHOLDER_EMAIL,
    SCRUBBED_VALUES,
    fields_to_scrub,
    is_erased,
    placeholder,
)
from cliniko_automations.erasure.trail import LOOKUP, OUTCOME_SK, attempt_of, attempt_sk

SUBMISSION_STORE = "submission_store"
# How many of the purged submissions' ids the trail lists (the count is always complete). The
# purge record, the outcome record and the stored answer are each one DynamoDB item, 400 KB at
# most: some 11,000 ids (uuids) filled one, and a person's bodies number as many as senders
# sent with their email while they were queued, parked or dead-lettered.
LISTED_SUBMISSIONS = 1000
# The most writes one contact's scrub takes: the whole scrub, then again with placeholders for
# what Cliniko refused blank, then without what it refused whatever was sent (Rails names every
# refused field at once; one more in case it does not).
SCRUB_WRITES = 4
# The error of an attempt that found an intake worker busy with the person's email throughout.
SUBMISSION_IN_PROGRESS = "submission_in_progress"
WEBHOOK_DEAD_LETTERS = "webhook_dead_letters"
# The lookup's result when the stack's hourly ceiling refused the attempt (ceiling.py).
OVER_HOURLY_LIMIT = "over_hourly_limit"
# The error of an attempt whose invocation ran out of time purging this system's stores.
PURGE_UNFINISHED = "purge_unfinished"
# The webhook letters' purge stops with this much of the invocation left, for Cliniko's lookup,
# scrub, archive and read-back after it.
LETTERS_LEAVE_SECONDS = 10.0
# A letters' purge that began with at least this much time of its own and was still cut had
# an invocation's worth: the same request id sent again would read the same first letters
# again and get no further, so the erasure goes on without the rest. One that began with less
# (the submissions' purge took the time) fails the attempt: sent again, it finds those gone.
LETTERS_FAIR_SECONDS = 10.0


class _StoreFailed(Exception):
    """One of this system's own stores failed during the purge: `kind` names it."""

    def __init__(self, kind: str) -> None:
        self.kind = kind


@dataclass(frozen=True)
class Match:
    """A contact the lookup found, in the account it was found in."""

    account: str
    fields: dict[str, Any]

    @property
    def contact_id(self) -> str:
        return str(self.fields["id"])


@dataclass(frozen=True)
class Tools:
    """What every attempt works with: the Cliniko accounts, the submission store (None: not
    reached, as in tests of Cliniko alone), the pepper for email hashes, the clock,
    `append(request_id, sk, record)`, which chains a record into the trail (AlreadyRecorded if
    its key exists), the webhook dead letters (None: no webhook stack's queue
    configured) and the time left."""

    accounts: ErasureAccounts
    submissions: SubmissionStore | None
    pepper: str
    clock: Callable[[], datetime]
    append: Callable[[str, str, Mapping[str, Any]], Any]
    webhook_letters: WebhookLetters | None = None
    # Seconds the invocation leaves (None: no bound), less what recording the outcome and
    # answering take: this system's own stores stop there, as Cliniko's requests do.
    time_left: Callable[[], float | None] = lambda: None
    # The stack's ceiling on contacts erased per rolling hour (None: none, as in tests of
    # Cliniko alone).
    ceiling: ErasureCeiling | None = None


class Attempt:
    """One pass over a request: look up, then scrub, archive and verify each contact."""

    def __init__(
        self,
        tools: Tools,
        request: ErasureRequest,
        caller: str,
        received: Mapping[str, Any],
        number: int,
        scope: Sequence[str],
        matched_before: Mapping[str, Sequence[str]] | None = None,
        purged_before: int = 0,
        letters_before: int = 0,
        shown_before: Mapping[str, Sequence[str]] | None = None,
    ) -> None:
        """`purged_before`: the stored bodies earlier attempts of the request deleted (one
        out of time, one whose Cliniko part failed), which the outcome's count includes;
        `letters_before` the same of the webhook dead letters; `shown_before` the contacts
        an earlier attempt's 409 listed, by account (trail.shown_before; None: none stopped
        for confirmation)."""
        self.tools = tools
        self.request = request
        self.caller = caller
        self.received = received
        self.number = number
        # The accounts searched, in order, and the contact ids each matched.
        self.scope = list(scope)
        self.matched_before = matched_before or {}
        self.purged_before = purged_before
        self.letters_before = letters_before
        self.shown_before = shown_before
        self.by_account: dict[str, list[str]] = {}
        # What an answer tells of the request's purge before this attempt's own: one failing
        # before it reaches its purge (Cliniko down at the lookup) still tells what went.
        self.purged: list[Purged] = [
            Purged(store=store, count=count)
            for store, count in (
                (SUBMISSION_STORE, purged_before),
                (WEBHOOK_DEAD_LETTERS, letters_before),
            )
            if count
        ]
        # What to check when Cliniko refused the key or its user while erasing a contact.
        self.access_hint: str | None = None

    def record(self, suffix: str, record: Mapping[str, Any]) -> None:
        try:
            self.tools.append(self.request.request_id, attempt_sk(self.number, suffix), record)
        except AlreadyRecorded:
            # Another call is working on the same attempt of this request.
            raise RequestInProgress(self.request.request_id) from None

    def outcome(self, **values: Any) -> Outcome:
        return Outcome(
            request_id=self.request.request_id,
            dry_run=self.request.dry_run,
            received_at=self.received["received_at"],
            due_at=self.received["due_at"],
            due_extended=bool(self.received.get("due_extended")),
            accounts=self.by_account,
            purged=self.purged,
            **values,
        )

    def execute(self) -> Outcome:
        room = None
        if not self.request.dry_run and self.tools.ceiling:
            # A full hour refuses before the tombstones and the lookup (admit, below, counts).
            room = self.tools.ceiling.check_room(self.request.request_id, self.tools.clock())
        if not self.request.dry_run:
            try:
                if not self.fence():
                    return self.fail(SUBMISSION_IN_PROGRESS, [], [])
            except _StoreFailed as failed:
                return self.fail(failed.kind, [], [])
        matches: list[Match] = []
        for account in self.scope:
            try:
                matches.extend(self.lookup(account))
            except cliniko_errors.ClinikoError as error:
                kind, hint = self.refusal(account, error)
                return self.fail(kind, [], [], hint, account=account)
        contact_ids = [match.contact_id for match in matches]
        self.by_account = {
            name: [m.contact_id for m in matches if m.account == account]
            for account in self.scope
            for name in self.tools.accounts.names_of(account)
        }
        # Across accounts too: one email in two clinics may still be two people.
        awaiting = len(matches) > 1 and not self.request.erase_all_matches
        if len(matches) > 1 and self.request.erase_all_matches and self.shown_before is not None:
            # A confirmation confirms the 409 its caller read: a contact that took the email
            # since (someone else, perhaps) is listed in a 409 of its own, not erased unseen.
            awaiting = any(
                m.contact_id not in self.shown_before.get(m.account, ()) for m in matches
            )
        found = "found" if matches else "no_record_found"
        if awaiting:
            found = "awaiting_confirmation"
        refused: OverHourlyLimit | None = None
        if matches and not awaiting and not self.request.dry_run and self.tools.ceiling:
            # After the lookup, so the count is the contacts about to be scrubbed (a wide
            # erase_all_matches counts them all); before anything this system or Cliniko keeps
            # changes, so a refused attempt leaves everything as it found it.
            try:
                self.tools.ceiling.admit(
                    self.request.request_id, len(matches), self.tools.clock(), room
                )
            except OverHourlyLimit as error:
                refused, found = error, OVER_HOURLY_LIMIT
        self.record(
            LOOKUP,
            {
                "record": "lookup",
                "at": iso(self.tools.clock()),
                "caller": self.caller,
                "erase_all_matches": self.request.erase_all_matches,
                "contact_ids": contact_ids,
                "accounts": self.by_account,
                "result": found,
            },
        )
        if refused is not None:
            # Raised out of the idempotent attempt, as SeveralMatches is: no outcome stored,
            # so the same request id is sent again later, not a duplicate.
            raise refused
        if awaiting:
            # Counted by the name each account is searched under: a name sharing its key
            # lists the same contacts again.
            searched = {account: self.by_account[account] for account in self.scope}
            raise SeveralMatches(self.request.request_id, contact_ids, searched)
        if not self.request.dry_run:
            # Before the scrub: a retry finds the contacts by email only while they still
            # have it, so a failed purge must stop the attempt before Cliniko changes.
            try:
                if not self.purge(matches):
                    return self.fail(SUBMISSION_IN_PROGRESS, contact_ids, [])
                self.purge_webhook_letters(matches)
            except _StoreFailed as failed:
                return self.fail(failed.kind, contact_ids, [])
        if not matches:
            return self.finish(
                self.outcome(
                    status="completed",
                    result="no_record_found",
                    message=(
                        "No record was found: no Cliniko contact, archived ones included, "
                        f"matches the request in {_accounts_text(list(self.by_account))}. "
                        "Nothing was changed."
                    ),
                )
            )
        results = [self.handle(match) for match in matches]
        failures = [r for r in results if r.action == "failed"]
        if failures:
            return self.fail("contact_failed", contact_ids, results, self.access_hint)
        if self.request.dry_run:
            message = (
                f"Dry run: nothing was changed. {len(results)} contact(s) would be scrubbed and "
                "archived; the field names that would change are listed. "
                "Cliniko would keep an archived record with no personal data."
            )
            result: Result = "dry_run"
        else:
            message = (
                f"{len(results)} contact(s) scrubbed and archived, and verified by reading them "
                "back. " + HONEST_NOTE
            )
            result = "erased"
        return self.finish(
            self.outcome(
                status="completed",
                result=result,
                contact_ids=contact_ids,
                contacts=results,
                message=message,
            )
        )

    def fence(self) -> bool:
        """Before the lookup, tombstone the request's email once no intake worker is creating
        or updating a contact for it in an account searched (common/identity_claims.py): a
        worker that looked before the purge's tombstones and created after the lookup would
        otherwise bring the person back unseen. False when a worker's claim stayed held."""
        submissions, email = self.tools.submissions, self.request.email
        if submissions is None or not email:
            return True
        claims = [
            email_claim(name, email)
            for account in self.scope
            for name in self.tools.accounts.names_of(account)
        ]
        try:
            return submissions.fence(
                email_hash(self.tools.pepper, email), self.tools.clock(), claims
            )
        except Exception as error:
            raise _StoreFailed(f"submission_store_error:{type(error).__name__}") from error

    def purge(self, matches: Sequence[Match]) -> bool:
        """Tombstone, then delete, every stored submission of the request's email and of the
        matched contacts (their emails, and their names with one of their phones, the
        worker's identity without an email): nothing this system keeps brings them back.
        False when an intake worker kept holding a matched contact's identity after the
        tombstones: it may be updating the contact, and an update landing after the scrub
        would write the person back into the archived record."""
        submissions = self.tools.submissions
        if submissions is None:
            return True
        contacts = [m.fields for m in matches]
        people = [*self._keys(self.request.email, {})] + [
            keys for contact in contacts for keys in self._keys(contact.get("email"), contact)
        ]
        emails = sorted({k.email_hmac for k in people if k.email_hmac})
        names: dict[str, set[str]] = {}
        for keys in people:
            if keys.name_hmac:
                names.setdefault(keys.name_hmac, set()).update(keys.name_phone)
        tombstones = sorted({*emails, *(key for phones in names.values() for key in phones)})
        if not tombstones:
            return True
        now = self.tools.clock()
        deleted: set[str] = set()
        claims = [
            claim
            for match in matches
            for name in self.tools.accounts.names_of(match.account)
            for claim in contact_claims(name, match.fields)
        ]
        try:  # the store's own errors: the core knows no boto
            # Tombstones first: a submission read after them is dropped, so none slips between.
            submissions.tombstone(tombstones, now)
            # Then wait out a worker that read them before they were written: one holding a
            # matched contact's identity has its update answered once it lets go, before the
            # scrub; one that claims after this reads the tombstones and stops. (The fence
            # before the lookup covers only the request's email: a request by contact id
            # names none, and a worker may know the person by name and phone.)
            if claims and not submissions.fence(tombstones[0], now, claims):
                return False
            time_left = self.tools.time_left
            for digest in emails:
                deleted.update(submissions.purge(digest, time_left=time_left))
            for name_hmac, name_phone in sorted(names.items()):
                deleted.update(submissions.purge_person(name_hmac, name_phone, time_left=time_left))
        except PurgeCut as cut:
            # Out of time before Cliniko changes (a flood left more bodies than one
            # invocation deletes): the trail counts what went, and the same request id
            # sent again goes on from what is left.
            # A store failing part-way the same: what it deleted is gone, and counted.
            deleted.update(cut.deleted)
            self._record_purge(now, tombstones, deleted, unfinished=True)
            if cut.error is not None:
                kind = f"submission_store_error:{type(cut.error).__name__}"
                raise _StoreFailed(kind) from cut.error
            raise _StoreFailed(PURGE_UNFINISHED) from None
        except Exception as error:
            raise _StoreFailed(f"submission_store_error:{type(error).__name__}") from error
        self._record_purge(now, tombstones, deleted)
        return True

    def _record_purge(
        self, now: datetime, tombstones: Sequence[str], deleted: set[str], unfinished: bool = False
    ) -> None:
        """The attempt's purge record counts what it deleted; the outcome, the request's whole
        purge, earlier attempts' included."""
        listed = sorted(deleted)[:LISTED_SUBMISSIONS]
        own = Purged(store=SUBMISSION_STORE, count=len(deleted), submission_ids=listed)
        record = {
            "record": "purge",
            "at": iso(now),
            "tombstones": len(tombstones),
            "purged": [as_data(own)],
        }
        if unfinished:
            record["unfinished"] = True
        self.record("purge", record)
        whole = replace(own, count=own.count + self.purged_before)
        self.purged = [whole, *(p for p in self.purged if p.store != SUBMISSION_STORE)]

    def _keys(self, email: Any, contact: Mapping[str, Any]) -> tuple[PersonKeys, ...]:
        """The keys of one person's details, as Cliniko (or the request) gives them (values of
        another type than text are no details), and those of their name as it was folded
        before, which submissions stored then are kept under."""

        phones = [
            text_of(phone.get("number")) for phone in phone_entries(contact.get("phone_numbers"))
        ]
        first, last = text_of(contact.get("first_name")), text_of(contact.get("last_name"))
        return (
            contact_keys(self.tools.pepper, text_of(email), first, last, phones),
            *earlier_contact_keys(first, last, phones, pepper=self.tools.pepper),
        )

    def purge_webhook_letters(self, matches: Sequence[Match]) -> None:
        """Delete the undelivered webhooks that carry the erased contacts' fields."""
        letters = self.tools.webhook_letters
        if letters is None or not matches:
            return
        invocation_left = self.tools.time_left

        def own_time_left() -> float | None:
            left = invocation_left()
            return None if left is None else left - LETTERS_LEAVE_SECONDS

        given = own_time_left()
        try:
            done = letters.purge(
                [
                    (name, match.contact_id)
                    for match in matches
                    for name in self.tools.accounts.names_of(match.account)
                ],
                time_left=own_time_left,
            )
        except PurgeCut as cut:
            # Out of time with letters unread (or SQS failing part-way): the trail says the
            # purge is unfinished, and counts what went.
            self._record_webhook_purge(len(cut.deleted), cut.kept, unfinished=True)
            if cut.error is not None:
                kind = f"webhook_dead_letters_error:{type(cut.error).__name__}"
                raise _StoreFailed(kind) from cut.error
            if given is not None and given < LETTERS_FAIR_SECONDS:
                # The submissions' purge took the time: the attempt stops before Cliniko
                # changes, and the same request id sent again (the bodies gone) gives the
                # letters theirs, still finding the contacts by their email.
                raise _StoreFailed(PURGE_UNFINISHED) from None
            # More letters than an invocation reads: those past the cut expire with the queue
            # and are never replayed (their contact is erased), as those past max_read.
            return
        except Exception as error:
            raise _StoreFailed(f"webhook_dead_letters_error:{type(error).__name__}") from error
        self._record_webhook_purge(done.deleted, done.notices_kept)

    def _record_webhook_purge(self, count: int, kept: int, unfinished: bool = False) -> None:
        """The attempt's record counts the letters it deleted, and the erasure notices it kept
        (an earlier erasure's, which a receiver that was down still needs); the outcome, the
        request's deletions (a retry after Cliniko refused the scrub finds none left, and said
        0)."""
        purged = Purged(store=WEBHOOK_DEAD_LETTERS, count=count)
        whole = replace(purged, count=count + self.letters_before)
        self.purged = [*(p for p in self.purged if p.store != WEBHOOK_DEAD_LETTERS), whole]
        record: dict[str, Any] = {
            "record": "purge",
            "at": iso(self.tools.clock()),
            "purged": [as_data(purged)],
            "notices_kept": kept,
        }
        if unfinished:
            record["unfinished"] = True
        self.record("purge-webhooks", record)

    def lookup(self, account: str) -> list[Match]:
        """The request's contacts in one account."""
        client = self.tools.accounts.client(account)
        filters: list[Any] = [DateTimeFilter("archived_at").any()]
        if self.request.contact_id:
            filters.append(NumericFilter("id").eq([self.request.contact_id]))
        if self.request.email:
            filters.append(StringFilter("email").eq(self.request.email))
        if not self.request.dry_run:
            # The lookup, then a match's scrub, archive and read back: booked two at a time.
            client.expect_requests(4)
        # Read on by id past a first page: by offset, a match leaving the listing meanwhile
        # (staff correcting an email, another erasure's scrub) hid the first of the next page,
        # whom the erasure then reported erased while Cliniko still held them.
        listed = client.list_contacts(filters, sort=KEYSET_SORT)
        matches = [self._asked_for(contact_fields(contact)) for contact in listed]
        found = {str(fields["id"]) for fields in matches}
        unfinished = [i for i in self.matched_before.get(account, ()) if i not in found]
        if unfinished:
            # An earlier attempt matched these and may have scrubbed them (their email, which
            # the lookup finds them by, blanked) before it failed: found by id, and finished
            # if scrubbed (its email blank, or the placeholder where Cliniko refused a blank).
            # One that still has an email other than the request's was never scrubbed, and is
            # no longer this person's (staff changed it since).
            again = [DateTimeFilter("archived_at").any(), NumericFilter("id").eq(unfinished)]
            matches.extend(
                fields
                for fields in map(contact_fields, client.list_contacts(again))
                if _listed_as_asked(fields, unfinished)
                and text_of(fields.get("email")).strip() in ("", PLACEHOLDER_EMAIL)
            )
        return [Match(account, fields) for fields in matches]

    def _asked_for(self, fields: dict[str, Any]) -> dict[str, Any]:
        """`fields`, a contact the lookup listed, when it is one the request names: its id the
        request's contact id, its email the request's email. Cliniko's filters decide whom the
        erasure scrubs, and a Cliniko (or a proxy) that dropped one listed other people, who
        were scrubbed, archived and reported erased; such a listing fails the attempt before
        anything is changed."""
        if self.request.contact_id and str(fields.get("id")) != self.request.contact_id:
            raise cliniko_errors.UnexpectedResponse(
                "Cliniko listed a contact other than the id asked for (q[]=id:=)"
            )
        if self.request.email and compared_email(fields.get("email")) != self.request.email:
            raise cliniko_errors.UnexpectedResponse(
                "Cliniko listed a contact whose email is not the one asked for (q[]=email:=)"
            )
        return fields

    def handle(self, match: Match) -> ContactResult:
        fields, contact_id, account = match.fields, match.contact_id, match.account
        changes = fields_to_scrub(fields, absent_is_blank=False)
        archive = not is_archived(fields)
        if changes and not archive and not any(name in fields for name in changes):
            # Archived, and all that is left unknown is what the list did not show (the seed's
            # items carry no doctor_type; its GET /contacts/:id does): read the contact by id
            # rather than write it again, so an erased contact counts as done.
            fields = self.read_by_id(match)
            changes = fields_to_scrub(fields, absent_is_blank=False)
        if self.request.dry_run:
            result = ContactResult(
                contact_id=contact_id,
                account=account,
                action="would_scrub_and_archive" if changes or archive else "nothing_to_do",
                fields=changes,
                archive=archive,
            )
        elif not changes and not archive:
            # Already scrubbed and archived (an earlier request, or by hand): nothing to write.
            result = ContactResult(
                contact_id=contact_id,
                account=account,
                action="already_scrubbed_and_archived",
                verified=True,
            )
        else:
            result = self.erase(match, changes, archive)
        self.record(
            f"contact#{account}#{contact_id}",
            {
                "record": "contact",
                "at": iso(self.tools.clock()),
                "account": account,
                "contact_id": contact_id,
                "action": result.action,
                "fields": result.fields,
                "archive": result.archive,
                "verified": result.verified,
                "dry_run": self.request.dry_run,
                "result": as_json(result),
            },
        )
        return result

    def read_by_id(self, match: Match) -> dict[str, Any]:
        """The matched contact as GET /contacts/:id shows it, over what the list showed
        (the list's fields where Cliniko cannot be read now: the scrub then writes them)."""
        client = self.tools.accounts.client(match.account)
        try:
            found = contact_fields(client.get_contact(match.contact_id, include_archived=True))
        except cliniko_errors.ClinikoError:
            return match.fields
        return {**match.fields, **found}

    def erase(self, match: Match, changes: list[str], archive: bool) -> ContactResult:
        contact_id, account = match.contact_id, match.account
        client = self.tools.accounts.client(account)
        refused: list[str] = []
        try:
            if changes:
                # The whole scrub body, not only the changed fields: one write leaves no
                # personal field behind even if the read raced with an edit.
                # A contact already archived (by the cleanup, or staff) is likely reached by id
                # only with a filter on archived_at (ClinikoClient._scope); one that is not
                # is asked for as it always was.
                refused = _scrub(client, contact_id, include_archived=not archive)
            if archive:
                # Also when Cliniko refused a field: the rest of the person is gone, and the
                # archive takes what remains out of its lists (the read back reports it).
                client.archive_contact(contact_id)
            read_back = _read_archived_or_not(client, contact_id)
        except cliniko_errors.NotFound as error:
            if not archive:
                return self._archived_refused(match, changes, error)
            # Archived since the lookup (another request for the same person, the cleanup):
            # a Cliniko that reaches an archived contact by id only with an archived_at filter
            # answers 404. Read it as it is now, and finish it as an archived one.
            return self._archived_meanwhile(match, changes, error)
        except cliniko_errors.ValidationFailed as error:
            if not archive and changes:
                # Refused for no field of the scrub (those _scrub works around): the record.
                return self._archived_refused(match, changes, error)
            return self._failed(match, changes, archive, error)
        except cliniko_errors.ClinikoError as error:
            return self._failed(match, changes, archive, error)
        verified = len(read_back) == 1 and is_erased(read_back[0])
        if verified and refused:
            verified = _refused_left_blank(client, contact_id, read_back[0], refused)
        unverified = None
        if refused and not verified:
            unverified = f"cliniko_refused: {', '.join(refused)}"
        elif not verified:
            # Which fields the read back still finds (a field Cliniko answered 200 for and
            # ignored), or none when it did not find the contact: names only, never values.
            left = fields_to_scrub(read_back[0]) if len(read_back) == 1 else []
            if len(read_back) == 1 and not is_archived(read_back[0]):
                left.append("archived_at")
            unverified = (
                f"verification_failed: {', '.join(left)}" if left else "verification_failed"
            )
        return ContactResult(
            contact_id=contact_id,
            account=account,
            action="scrubbed_and_archived" if verified else "failed",
            fields=changes,
            archive=archive,
            verified=verified,
            error=unverified,
        )

    def _archived_meanwhile(
        self, match: Match, changes: list[str], error: cliniko_errors.ClinikoError
    ) -> ContactResult:
        client = self.tools.accounts.client(match.account)
        try:
            now = _read_archived_or_not(client, match.contact_id)
        except cliniko_errors.ClinikoError as again:
            return self._failed(match, changes, True, again)
        if len(now) != 1 or not is_archived(now[0]):
            return self._failed(match, changes, True, error)
        if is_erased(now[0]):
            return ContactResult(
                contact_id=match.contact_id,
                account=match.account,
                action="already_scrubbed_and_archived",
                verified=True,
            )
        return self.erase(Match(match.account, now[0]), changes, archive=False)

    def _archived_refused(
        self, match: Match, changes: list[str], error: cliniko_errors.ClinikoError
    ) -> ContactResult:
        """Cliniko would not update a contact it holds archived, personal fields and all
        (whether it does is not documented: a 404 or a 422 for the record). Sent again, the
        request meets the same refusal: the answer says what staff can do instead of "retry"."""
        self.access_hint = self.access_hint or (
            f"Cliniko account {match.account} would not update archived contact "
            f"{match.contact_id}, which still holds personal data: unarchive it in Cliniko, or "
            "blank its personal fields there by hand."
        )
        return self._failed(match, changes, False, error)

    def _failed(
        self, match: Match, changes: list[str], archive: bool, error: cliniko_errors.ClinikoError
    ) -> ContactResult:
        kind, hint = self.refusal(match.account, error)
        self.access_hint = self.access_hint or hint
        return ContactResult(
            contact_id=match.contact_id,
            account=match.account,
            action="failed",
            fields=changes,
            archive=archive,
            verified=False,
            error=kind,
        )

    def refusal(self, account: str, error: cliniko_errors.ClinikoError) -> tuple[str, str | None]:
        """The error's kind and, when Cliniko refused the account's key or its user, what to
        fix. A key its secret no longer holds (rotated within the secrets' cache, the old one
        archived) needs no fixing: sent again, the request uses the new one."""
        hint = account_hint(account, error)
        if hint is not None and self.tools.accounts.key_replaced(account):
            return cliniko_errors.KEY_ROTATED, None
        if hint is not None:
            self.tools.accounts.key_refused(account, error)
        return cliniko_errors.error_kind(error), hint

    def fail(
        self,
        error: str,
        contact_ids: list[str],
        results: list[ContactResult],
        hint: str | None = None,
        *,
        account: str | None = None,
    ) -> Outcome:
        """`account`: the one whose lookup failed, when one did."""
        self.record(
            "failed",
            {
                "record": "failed",
                "at": iso(self.tools.clock()),
                "error": error,
                "hint": hint,
                "account": account,
            },
        )
        return self.outcome(
            status="failed",
            result="failed",
            contact_ids=contact_ids,
            contacts=results,
            message=failed_message(error, hint, account),
        )

    def finish(self, outcome: Outcome) -> Outcome:
        outcome.finished_at = iso(self.tools.clock())
        try:
            self.tools.append(
                self.request.request_id,
                OUTCOME_SK,
                {
                    "record": "outcome",
                    "at": outcome.finished_at,
                    "caller": self.caller,
                    "status": outcome.status,
                    "result": outcome.result,
                    "dry_run": outcome.dry_run,
                    "contact_ids": outcome.contact_ids,
                    "outcome": as_json(outcome, exclude=PER_CALL),
                },
            )
        except AlreadyRecorded:
            raise RequestInProgress(self.request.request_id) from None
        return outcome


def _scrub(client: Any, contact_id: str, *, include_archived: bool) -> list[str]:
    """Write the scrub; returns the fields Cliniko refused whatever was sent, left as they were.

    Which fields Cliniko requires on an update is not documented, and one refused field
    refuses the whole write, which left every personal value in place, request after request.
    A field it refuses (blank) is sent again as its placeholder; one it refuses still, or with
    no placeholder, is left out, so that every other value goes (the read back then finds it:
    the contact is never reported erased)."""
    body = dict(SCRUBBED_VALUES)
    swapped: set[str] = set()
    left_out: list[str] = []
    for write in range(1, SCRUB_WRITES + 1):
        try:
            client.update_contact(contact_id, body, include_archived=include_archived)
            return left_out
        except cliniko_errors.ValidationFailed as error:
            # A field given null names none refused (Cliniko's errors may hold one).
            refused = sorted(
                n for n, text in error.errors.items() if text is not None and n in body
            )
            if not refused or write == SCRUB_WRITES:
                raise
            for name in refused:
                if name not in swapped and placeholder(name) not in (None, body[name]):
                    body[name] = placeholder(name)
                    swapped.add(name)
                else:
                    del body[name]
                    left_out.append(name)
            if not body:
                raise
    raise AssertionError("unreachable")  # the last write returns or raises


def _refused_left_blank(
    client: Any, contact_id: str, listed: Mapping[str, Any], refused: Sequence[str]
) -> bool:
    """Whether the fields Cliniko refused to scrub hold nothing personal all the same (blank
    before the scrub). A list item may not show them at all (the seed's carry no doctor_type),
    and a field not shown is no field seen blank: those are read by id, and one Cliniko shows
    neither way, or a read that fails, leaves the contact unverified."""

    def shown(name: str, fields: Mapping[str, Any]) -> bool:
        # `country`, the name, follows country_code: the seed's contact shows that alone.
        return name in fields or (name == "country_code" and "country" in fields)

    unseen = [name for name in refused if not shown(name, listed)]
    if not unseen:
        return True
    try:
        fields = {
            **listed,
            **contact_fields(client.get_contact(contact_id, include_archived=True)),
        }
    except cliniko_errors.ClinikoError:
        return False
    return all(shown(name, fields) for name in unseen) and is_erased(fields)


def _read_archived_or_not(client: Any, contact_id: str) -> list[dict[str, Any]]:
    """The contact as a list filtered by id and `archived_at` shows it, which reaches it
    archived or not (by id alone, a Cliniko may answer 404 for an archived one)."""
    check = [DateTimeFilter("archived_at").any(), NumericFilter("id").eq([contact_id])]
    listed = [contact_fields(c) for c in client.list_contacts(check)]
    if not all(_listed_as_asked(fields, [contact_id]) for fields in listed):
        # Another contact, read as this one, could verify an erasure that did not happen.
        raise cliniko_errors.UnexpectedResponse(
            "Cliniko listed a contact other than the id asked for (q[]=id:=)"
        )
    return listed


def _listed_as_asked(fields: Mapping[str, Any], ids: Collection[str]) -> bool:
    return str(fields.get("id")) in ids


def purged_before(records: Sequence[Mapping[str, Any]], store: str = SUBMISSION_STORE) -> int:
    """What the attempts recorded in `records` deleted of `store` (the stored bodies, or the
    webhook dead letters): each attempt's purge record counts its own."""
    return sum(
        int(purged.get("count", 0))
        for record in records
        if record.get("record") == "purge" and attempt_of(str(record.get("sk", ""))) is not None
        for purged in record.get("purged", [])
        if purged.get("store") == store
    )


def account_hint(account: str, error: cliniko_errors.ClinikoError) -> str | None:
    """What to check when Cliniko refused an account's key or its user, naming the account."""
    hint = cliniko_errors.access_hint(error)
    return f"Cliniko account {account}: {hint}" if hint else None


def _accounts_text(accounts: Sequence[str]) -> str:
    names = ", ".join(accounts)
    return f"Cliniko account {names}" if len(accounts) == 1 else f"Cliniko accounts {names}"


def failed_message(error: str, hint: str | None = None, account: str | None = None) -> str:
    """`account`: the one whose lookup failed, when one did (then no contact was changed in
    any account: every lookup comes before the first change)."""
    if account and not hint:
        error = f"{error} searching Cliniko account {account}; no contact was changed"
    if hint:
        # Misconfiguration: sending the request again changes nothing until it is fixed.
        return (
            f"The erasure did not finish ({error}): {hint} Sending the request again will fail "
            "the same way until that is fixed; then send it with the same request id."
        )
    return (
        f"The erasure did not finish ({error}). The request stays open: send it again with "
        "the same request id to retry. Contacts already scrubbed and archived count as done."
    )
