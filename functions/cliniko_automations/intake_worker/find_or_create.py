"""Find-or-create decisions for one submission: pure functions, no I/O.

The worker (worker.py) asks Cliniko for candidates and hands them here; this module decides
what the submission means for Cliniko: create a contact, update the one it matches (per the
source's update policy), leave it alone, or park it for a person because guessing would be
wrong. Contacts arrive as plain JSON-shaped mappings (`Contact.to_dict()`), so the rules are
tested without a client, a server or AWS.

Identity rules (documented in README's intake section and the worker's report):
- With an email: the contact whose stored (lower-cased) email equals the submitted one.
- Without an email but with first name, last name and at least one phone number: contacts
  with that first and last name (compared case-insensitively, Cliniko's filter narrows the
  list) that share a phone number with the submission (compared digit-wise, so
  "+61 412 345 678" and "0412 345 678" match).
- Anything else (no email and no name+phone) has no identity to deduplicate on: it is
  created, and only a redelivery of the same submission is recognised (the create intent).
- Archived contacts are looked up too, but never revived silently (Cliniko cannot unarchive
  a contact, and a re-created duplicate would hide the archive decision): when only archived
  contacts match, the submission is parked for a person to decide.
- Several active matches are never guessed between: parked, nothing written.

Adopting a contact as the result of this submission's own lost create (the create reached
Cliniko but its answer did not reach us) needs proof, because anything adopted is recorded
as made by the intake (the ledger the cleanup trusts) and gets none of the submission's
fields written: Cliniko's `created_at` must fall inside that create attempt's window (from
just before the request to when its answer was lost, put on Cliniko's clock when the lookup's
answer tells it, a clock-skew margin either side), and
every field the create sent must be on the contact as sent (compared as Cliniko stores them).
A contact that fails either test was made by someone else (staff, another submission) and is
treated as any existing contact: the source's update policy, outcome "updated", no ledger.
No marker is added to the contacts the intake creates: Cliniko has no hidden or custom field
on contacts, and `notes` is what staff read and edit (and what some sources fill from the
form), so a token there would be noise in the record, could be deleted by hand, and would
still need these checks when it is missing.
"""

from __future__ import annotations

from collections.abc import Collection, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from enum import StrEnum
from typing import Any, Literal

from cliniko_automations.cliniko.rules import PHONE_TYPES, country_code_for, is_archived, is_blank
from cliniko_automations.cliniko.transport import BELIEVABLE_SKEW_SECONDS
from cliniko_automations.common.identity_claims import email_claim, name_claim
from cliniko_automations.common.person_keys import (
    APOSTROPHES,
    MAX_PREFIX_DIGITS,
    MIN_SUFFIX_DIGITS,
    compared_email,
    composed,
    decomposed,
    fold_name,
    phone_digits,
    phone_entries,
    text_of,
)
from cliniko_automations.intake.submission import ContactDraft, UpdatePolicy

Contact = Mapping[str, Any]

# Cliniko's clock and ours are not the same clock: a create attempt's window is widened by
# this much on both sides. The window is put on Cliniko's clock when the lookup's answer
# tells it (`CreateWindow.on_clinikos_clock`); this margin is for when it does not, and for
# the whole seconds of Cliniko's `Date` and the request's time on the wire when it does.
CLOCK_SKEW = timedelta(minutes=2)
# How far apart a `Date` may put Cliniko's clock from ours and still be believed
# (transport.served_at): a listing by `created_at` asks this much earlier, so that the
# contact a create made is listed while Cliniko's clock runs that far behind ours.
BELIEVED_SKEW = timedelta(seconds=BELIEVABLE_SKEW_SECONDS)
# When an attempt died without noting when its create's answer was lost (a crash, a killed
# invocation), its window ends this long after it began: a Lambda invocation cannot run
# longer, and a request it sent is answered (or abandoned by Cliniko) well within that.
ATTEMPT_LIMIT = timedelta(minutes=15)


_APOSTROPHE_AS_SPACE = str.maketrans(dict.fromkeys(APOSTROPHES, " "))


class LookupKind(StrEnum):
    EMAIL = "email"
    NAME_PHONE = "name_phone"
    NONE = "none"


@dataclass(frozen=True)
class Lookup:
    """How to find the submission's contact in Cliniko."""

    kind: LookupKind
    email: str | None = None
    first_name: str | None = None
    last_name: str | None = None
    phones: tuple[str, ...] = ()

    def claim_key(self, account: str) -> str | None:
        """A non-personal key that concurrent workers serialise on, or None (no identity).

        A hash, so that the claim item (kept in DynamoDB for a minute) carries no personal
        data; the account is part of it because two clinics may know the same person.
        """
        if self.kind is LookupKind.EMAIL:
            assert self.email is not None  # lookup_for sets what its kind looks up by
            return email_claim(account, self.email)
        if self.kind is LookupKind.NAME_PHONE:
            return name_claim(account, self.first_name, self.last_name)
        return None

    def writing_claim_key(self, account: str) -> str | None:
        """The claim an email's worker also takes while it creates or updates the contact,
        when the submission names a first and last name and a phone: the name's, which a
        submission of the same person without an email holds while it looks them up by name
        and phone. Claimed by the email alone, that one looked while the contact was being
        made, found nobody, and made the person twice; worked one after the other, it finds
        and updates the contact. Taken after the email's, never before: a worker holding a
        name's claim alone takes no other, so no two workers wait on each other."""
        if self.kind is LookupKind.EMAIL and self.first_name and self.last_name and self.phones:
            return name_claim(account, self.first_name, self.last_name)
        return None


def lookup_for(draft: ContactDraft) -> Lookup:
    email = draft.lookup_email
    first = (draft.first_name or "").strip()
    last = (draft.last_name or "").strip()
    phones = tuple(p for p in (phone_digits(n.number) for n in draft.phone_numbers) if p)
    named = bool(first and last and phones)
    if email:
        if named:
            # Looked up by the email alone: the name and phones are for `writing_claim_key`.
            return Lookup(
                LookupKind.EMAIL, email=email, first_name=first, last_name=last, phones=phones
            )
        return Lookup(LookupKind.EMAIL, email=email)
    if named:
        return Lookup(LookupKind.NAME_PHONE, first_name=first, last_name=last, phones=phones)
    return Lookup(LookupKind.NONE)


def name_spellings(first: str, last: str) -> list[tuple[str, str]]:
    """The name as typed, then as staff most often type one (Title Case, lower, UPPER): the
    spellings a lookup that minds case must try in turn. Last, a name with accents as letters
    and combining accents: the intake composes what it takes (2026-12-06), and the contacts
    it made before from a phone's decomposed "José" hold it so, which Cliniko's filters
    compare by code point."""
    spellings: list[tuple[str, str]] = []
    for spell in (str, str.title, str.lower, str.upper, decomposed):
        spelled = (spell(first), spell(last))
        if spelled not in spellings:
            spellings.append(spelled)
    return spellings


def spacing_free(name: str) -> str:
    """A name as a `~~` pattern that any spacing of its words meets ("Mary  Ann" and "Mary Ann"
    are one name to `matches`, which decides; the filter only narrows), and any apostrophe
    ("O'Brien" as staff typed it, "O’Brien" as a phone did)."""
    return "%".join(name.translate(_APOSTROPHE_AS_SPACE).split())


# What a `~~` pattern may read as other than itself: `%`, Cliniko's wildcard, and `_` and `\`,
# an SQL LIKE's wildcard and escape (its docs do not say what `~~` is). A name holding one is
# asked for with `=` instead: a typed "%" made the lookup a listing of every contact of the
# clinic, a page of the shared budget per hundred contacts, from one post of a public form.
LIKE_PATTERN_CHARACTERS = frozenset("%_\\")


def holds_pattern_characters(name: str) -> bool:
    return not LIKE_PATTERN_CHARACTERS.isdisjoint(name)


def phones_match(left: str, right: str) -> bool:
    if not left or not right:
        return False
    if left == right:
        return True
    short, long = sorted((left, right), key=len)
    # "+61 412 345 678" -> 61412345678 and "0412 345 678" -> 412345678: a country code
    # prefix is the only difference allowed.
    return (
        len(short) >= MIN_SUFFIX_DIGITS
        and long.endswith(short)
        and len(long) - len(short) <= MAX_PREFIX_DIGITS
    )


def contact_phone_digits(contact: Contact) -> list[str]:
    found: list[str] = []
    for phone in phone_entries(contact.get("phone_numbers")):
        for key in ("normalized_number", "number"):
            digits = phone_digits(phone.get(key))
            if digits:
                found.append(digits)
    return found


def matches(lookup: Lookup, contact: Contact) -> bool:
    """Whether a contact Cliniko returned for the lookup's filters really is a match.

    Cliniko's filters narrow the list; this check is the one that decides (the email filter
    already compares lower-cased, names are compared folded, phones digit-wise).
    """
    if lookup.kind is LookupKind.EMAIL:
        return compared_email(contact.get("email")) == lookup.email
    if lookup.kind is LookupKind.NAME_PHONE:
        if fold_name(contact.get("first_name")) != fold_name(lookup.first_name):
            return False
        if fold_name(contact.get("last_name")) != fold_name(lookup.last_name):
            return False
        theirs = contact_phone_digits(contact)
        return any(phones_match(ours, other) for ours in lookup.phones for other in theirs)
    return False


def parse_time(value: Any) -> datetime | None:
    if isinstance(value, datetime):
        return value
    if isinstance(value, str) and value:
        return datetime.fromisoformat(value.replace("Z", "+00:00"))
    return None


@dataclass(frozen=True)
class CreateWindow:
    """When one create attempt could have made a contact: from just before its request to
    when its answer was lost (or, unknown, the longest an attempt can last)."""

    started_at: datetime
    lost_at: datetime | None = None

    def contains(self, moment: datetime) -> bool:
        end = self.lost_at or self.started_at + ATTEMPT_LIMIT
        return self.started_at - CLOCK_SKEW <= moment <= end + CLOCK_SKEW

    def on_clinikos_clock(self, clock_offset: timedelta | None) -> CreateWindow:
        """The same window on Cliniko's clock, `clock_offset` ahead of ours (negative: behind;
        None: unknown, left on ours), as Cliniko's `created_at` for the create reads."""
        if not clock_offset:
            return self
        return CreateWindow(
            self.started_at + clock_offset,
            None if self.lost_at is None else self.lost_at + clock_offset,
        )


def made_by_create(draft: ContactDraft, contact: Contact, window: CreateWindow) -> bool:
    """Whether `contact` is provably what this draft's create made in `window`: created in
    it, and carrying every field the create sent, as sent."""
    created = parse_time(contact.get("created_at"))
    if created is None or not window.contains(created):
        return False
    for name, value in draft.cliniko_fields().items():
        known, theirs = stored_value(contact, name)
        # A field the answer left out cannot disprove it; every one it carries must agree.
        if known and not _same(name, value, theirs):
            return False
    return True


# --- deciding ---------------------------------------------------------------------------

Action = Literal["create", "update", "unchanged", "park", "adopt"]


@dataclass(frozen=True)
class Decision:
    action: Action
    contact_id: str | None = None
    changes: Mapping[str, Any] = field(default_factory=dict)
    # Non-personal reason code for parking (goes to logs, metrics and the parked message).
    reason: str | None = None
    candidate_ids: tuple[str, ...] = ()


def decide(
    draft: ContactDraft,
    lookup: Lookup,
    candidates: Iterable[Contact],
    policy: UpdatePolicy,
    *,
    lost_create: CreateWindow | None = None,
    unanswered: Collection[str] = (),
) -> Decision:
    """What to do, given the contacts Cliniko returned for the lookup.

    `lost_create` is set when an earlier attempt at this same submission sent a create whose
    answer it never had: a single match that this create provably made (see
    `made_by_create`) is adopted as created by us; any other match is someone else's.
    """
    found = [c for c in candidates if matches(lookup, c)]
    active = [c for c in found if not is_archived(c)]
    archived = [c for c in found if is_archived(c)]
    if len(active) > 1 and policy == "overwrite" and lookup.kind is LookupKind.EMAIL:
        # Parked as name_differs, then given a contact of their own with the shared address by
        # staff: the replay is that person's (else it could only be parked again).
        alike = [c for c in active if named_alike(draft, c)]
        if len(alike) == 1:
            active = alike
    if len(active) > 1:
        return Decision(
            "park", reason="several_matches", candidate_ids=tuple(str(c["id"]) for c in active)
        )
    if len(active) == 1:
        contact = active[0]
        if lost_create is not None and made_by_create(draft, contact, lost_create):
            return Decision("adopt", contact_id=str(contact["id"]))
        if lost_create is not None and _edited_since_made_in(contact, lost_create):
            # Perhaps this create's, corrected since: updated, it would never enter the ledger.
            return Decision(
                "park", reason="ambiguous_recovery", candidate_ids=(str(contact["id"]),)
            )
        if policy == "overwrite" and named_otherwise(draft, contact):
            # One address, two people (a reception's, a claims desk's, a family's): overwritten,
            # one person's contact would become the other's. Staff decide.
            return Decision("park", reason="name_differs", candidate_ids=(str(contact["id"]),))
        changes = plan_update(draft, contact, policy, unanswered)
        if not changes:
            return Decision("unchanged", contact_id=str(contact["id"]))
        return Decision("update", contact_id=str(contact["id"]), changes=changes)
    if archived:
        return Decision(
            "park", reason="archived_match", candidate_ids=tuple(str(c["id"]) for c in archived)
        )
    if lost_create is not None:
        # Listed by the name, made in the window, changed since (its phone corrected while the
        # message waited): perhaps this create's, no longer matched. Staff decide.
        edited = [
            c for c in candidates if not is_archived(c) and _edited_since_made_in(c, lost_create)
        ]
        if edited:
            return Decision(
                "park",
                reason="ambiguous_recovery",
                candidate_ids=tuple(str(c["id"]) for c in edited),
            )
    return Decision("create", changes=draft.cliniko_fields())


def named_otherwise(draft: ContactDraft, contact: Contact) -> bool:
    """Whether the contact found by the submission's email names someone else. With a first
    and a last name on both sides: another whole name. Split otherwise ("Mary Jane" "Watson"
    and "Mary" "Jane Watson"), with the title in front (a contact made from "Dr Jane Smith"
    before titles were read), or in another Unicode composition, it is the same name.

    With one name missing on either side: a name none of whose words the other's holds all of.
    "Omar" and "Omar Haddad" may be one person; "Mallory" and "Jane Smith" are not, nor
    "Reception" and "Omar Haddad". Read as "nothing to tell them apart by", a one-word name
    let anyone who knew a contact's address rename it and replace its phones. Without any
    name on a side there is nothing to compare."""
    ours, theirs = _whole_names(draft), _whole_names(contact)
    if ours and theirs:
        return ours.isdisjoint(theirs)
    our_words, their_words = _name_words(draft), _name_words(contact)
    if not (our_words and their_words):
        return False
    return not (our_words <= their_words or their_words <= our_words)


def named_alike(draft: ContactDraft, contact: Contact) -> bool:
    """Whether the contact carries the submission's whole name (as `named_otherwise` reads)."""
    return not _whole_names(draft).isdisjoint(_whole_names(contact))


def _whole_names(person: ContactDraft | Contact) -> set[str]:
    """A person's name as "first last", and "title first last": empty without both names."""
    first, last = (_folded(person, name) for name in ("first_name", "last_name"))
    if not (first and last):
        return set()
    title = _folded(person, "title")
    return {f"{first} {last}", f"{title} {first} {last}".strip()}


def _name_words(person: ContactDraft | Contact) -> frozenset[str]:
    """The words of a person's first and last names, folded as `_whole_names` reads them."""
    return frozenset(f"{_folded(person, 'first_name')} {_folded(person, 'last_name')}".split())


def _folded(person: ContactDraft | Contact, name: str) -> str:
    value = person.get(name) if isinstance(person, Mapping) else getattr(person, name)
    return fold_name(value)


def decide_recovery(
    draft: ContactDraft, candidates: Iterable[Contact], lost_create: CreateWindow
) -> Decision:
    """For an identity-less submission whose earlier attempt's create lost its answer: the
    contact that create provably made; parked where one made in its window was changed or
    archived since (perhaps its, no longer provably); else a create (the others are other
    people)."""
    active = [c for c in candidates if not is_archived(c)]
    ours = [c for c in active if made_by_create(draft, c, lost_create)]
    if len(ours) == 1:
        return Decision("adopt", contact_id=str(ours[0]["id"]))
    if not ours:
        # Created in the window and changed since (staff corrected it while the message
        # waited out its visibility timeout): perhaps this create's, no longer provably.
        # A create would make the person twice: staff decide.
        ours = [c for c in active if _edited_since_made_in(c, lost_create)]
    if ours:
        return Decision(
            "park", reason="ambiguous_recovery", candidate_ids=tuple(str(c["id"]) for c in ours)
        )
    # Made in the window and archived since (reception archived the new contact while the
    # message waited): perhaps this create's. Made again, it would undo their archive.
    archived = [
        c
        for c in candidates
        if is_archived(c)
        and (made_by_create(draft, c, lost_create) or _edited_since_made_in(c, lost_create))
    ]
    if archived:
        return Decision(
            "park", reason="archived_match", candidate_ids=tuple(str(c["id"]) for c in archived)
        )
    return Decision("create", changes=draft.cliniko_fields())


def _edited_since_made_in(contact: Contact, window: CreateWindow) -> bool:
    created, updated = parse_time(contact.get("created_at")), parse_time(contact.get("updated_at"))
    return created is not None and window.contains(created) and (updated or created) > created


def stored_value(contact: Contact, name: str) -> tuple[bool, Any]:
    """(known, value) of a writable field as Cliniko returned it. A field the answer left out
    is unknown, not blank: Cliniko's documented list of contacts carries `country` (the name)
    but no `country_code`, and no `doctor_type`, and a blank would be filled over what staff
    set. The code is then read from the name."""
    if name in contact:
        return True, contact[name]
    if name == "country_code" and "country" in contact:
        country = contact["country"]
        if is_blank(country) or not isinstance(country, str):
            return True, None
        # A name no code is known for stays as it is: not blank, and never equal to a code.
        return True, country_code_for(country) or country
    return False, None


def _same_phones(ours: Sequence[Mapping[str, Any]], theirs: Any) -> bool:
    remaining = [
        (phone_digits(p.get("number") or p.get("normalized_number")), p.get("phone_type"))
        for p in phone_entries(theirs)
    ]
    if len(remaining) != len(ours):
        return False
    for phone in ours:
        digits = phone_digits(phone["number"])
        hit = next(
            (
                item
                for item in remaining
                if item[1] == phone.get("phone_type") and phones_match(digits, item[0])
            ),
            None,
        )
        if hit is None:
            return False
        remaining.remove(hit)
    return True


def _same(field_name: str, ours: Any, theirs: Any) -> bool:
    """Whether a submitted value and a stored one are the same, as Cliniko stores values
    (emails and country codes in any case, phones by their digits, blanks as "", text in any
    Unicode composition)."""
    if field_name == "phone_numbers":
        return _same_phones(ours, theirs)
    if field_name in ("email", "country_code"):
        return text_of(ours).strip().lower() == text_of(theirs).strip().lower()
    if isinstance(ours, str) and isinstance(theirs, str):
        # In one Unicode composition ("é" or "e" and a combining accent), as a person reads
        # them: overwritten with the other, staff's contact held bytes their search for what
        # they type does not find, for no visible change.
        return composed(ours.strip()) == composed(theirs.strip())
    same: bool = ours == theirs
    return same


def plan_update(
    draft: ContactDraft,
    contact: Contact,
    policy: UpdatePolicy,
    unanswered: Collection[str] = (),
) -> dict[str, Any]:
    """The PATCH body a matched contact gets under the policy (empty: nothing to send).

    fill_blanks: only fields blank in Cliniko gain the submitted value; whatever staff typed
    stays, and a field the answer left out is left alone. overwrite: submitted values replace
    differing ones, and ones the answer left out; the submitted phone numbers replace
    Cliniko's of their kinds, and the others (a fax staff added) are sent again with them,
    since Cliniko's update replaces the whole list. Fields the person did not answer
    (`unanswered`: a source's defaults, a notes template whose every answer was blank) only
    fill blanks under overwrite too: they are for the contacts a form creates.
    create_only: never touches an existing contact.
    """
    if policy == "create_only":
        return {}
    ours = draft.cliniko_fields()
    changes: dict[str, Any] = {}
    for name, value in ours.items():
        known, theirs = stored_value(contact, name)
        if policy == "fill_blanks" or name in unanswered:
            if known and is_blank(theirs):
                changes[name] = value
            continue
        if name == "phone_numbers" and known:
            value = _with_other_kinds(value, theirs)
        if not known or not _same(name, value, theirs):
            changes[name] = value
    return changes


def _with_other_kinds(ours: Sequence[Mapping[str, Any]], theirs: Any) -> list[dict[str, Any]]:
    """The submitted phone numbers, then Cliniko's of the kinds the submission gives none of."""
    kinds = {phone.get("phone_type") for phone in ours}
    kept = [
        {"number": phone["number"], "phone_type": phone["phone_type"]}
        for phone in phone_entries(theirs)
        if phone.get("phone_type") in PHONE_TYPES
        and phone.get("phone_type") not in kinds
        and isinstance(phone.get("number"), str)
        and phone["number"].strip()
    ]
    return [dict(phone) for phone in ours] + kept


def present_fields(draft: ContactDraft) -> Sequence[str]:
    """The names (never the values) of the fields a draft sets: safe to log and show."""
    return sorted(draft.cliniko_fields())
