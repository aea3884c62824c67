"""What changed: a contact as listed, its last published state, and the event it makes.

Field values are never kept: each field is remembered as a keyed hash (HMAC-SHA256 with a key
from Secrets Manager, bound to the contact id so equal values of two contacts do not match),
and a change names the fields whose hashes moved. Classification:

- contact.created     first seen, and created_at == updated_at (nothing changed since)
- contact.archived    archived_at set (or the legacy deleted_at, cliniko_source.py), and
                      it was not set when last published (or first seen archived)
- contact.unarchived  archived_at cleared since last published (Cliniko's app can restore
                      a contact; its API cannot)
- contact.updated     anything else; a contact first seen after it was created lists every
                      field with a value as changed, with `first_seen` true

Each kind says too whether the contact is in the state an erasure leaves (`erased`, by the
erasure's own test of it, erasure/scrub.py): its receivers are to delete what they hold of it.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import hashlib
import hmac
import json
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from cliniko_automations.cliniko.rules import WRITABLE_FIELD_NAMES
from cliniko_automations.common.timestamps import iso
from cliniko_automations.erasure.scrub import is_scrubbed

# The fields whose changes are named: every field a client may write (the spec's
# `ContactWrite`) and the archive. Derived ones (`country`, `type`) follow these.
TRACKED_FIELDS = (*WRITABLE_FIELD_NAMES, "archived_at")


@dataclass(frozen=True)
class ContactSnapshot:
    """A contact as a listing showed it. `fields` hold personal data: never log them."""

    contact_id: str
    created_at: dt.datetime
    updated_at: dt.datetime
    archived_at: dt.datetime | None
    fields: Mapping[str, Any] = field(repr=False)
    # Whether the listing showed `archived_at` or `deleted_at` at all: one that left both out
    # says nothing of whether the contact is archived.
    archive_shown: bool = True


@dataclass(frozen=True)
class Unsent:
    """A published change whose events EventBridge took only in part, and those still to send:
    its bus event (`bus`) and its deliveries to `subscribers`. What they say, never a value."""

    event_id: str
    type: str
    updated_at: str
    changed_fields: tuple[str, ...]
    first_seen: bool
    bus: bool
    subscribers: tuple[str, ...]
    # Whether the change reached the erased state: a delivery sent late, without the values,
    # must still tell its receiver to delete its copy.
    erased: bool = False


@dataclass(frozen=True)
class PublishedState:
    """What the feed last published for a contact: no values, only hashes; and what of its
    changes is still to send (`unsent`, oldest first), sent before any later change."""

    contact_id: str
    updated_at: str
    archived: bool
    hashes: Mapping[str, str]
    event_id: str
    unsent: tuple[Unsent, ...] = ()

    def same_state(self, snapshot: ContactSnapshot, hashes: Mapping[str, str]) -> bool:
        """Whether `snapshot` (with these field hashes) is the very state recorded here."""
        return self.updated_at == iso(snapshot.updated_at) and dict(self.hashes) == dict(hashes)


@dataclass(frozen=True)
class Change:
    event_id: str
    type: str
    account: str
    contact_id: str
    updated_at: str
    changed_fields: tuple[str, ...]
    first_seen: bool
    state: PublishedState
    # The contact holds what an erasure writes (every personal field blank or a placeholder):
    # a flag, no value, so it goes to every subscriber, opted in to fields or not.
    erased: bool
    # The values of the state the change reached, as listed; None for a change sent late
    # after its contact changed again, whose values are gone: its deliveries carry the summary.
    snapshot: ContactSnapshot | None = field(default=None, repr=False)

    def unsent(self, *, bus: bool, subscribers: tuple[str, ...]) -> Unsent:
        return Unsent(
            self.event_id,
            self.type,
            self.updated_at,
            self.changed_fields,
            self.first_seen,
            bus,
            subscribers,
            self.erased,
        )

    def summary(self) -> dict[str, Any]:
        """The event's detail: ids, type, time, field names and the erasure mark, no personal
        data."""
        return {
            "event_id": self.event_id,
            "type": self.type,
            "account": self.account,
            "contact_id": self.contact_id,
            "updated_at": self.updated_at,
            "changed_fields": list(self.changed_fields),
            "first_seen": self.first_seen,
            "erased": self.erased,
        }

    def with_fields(self) -> dict[str, Any]:
        """The summary plus the contact's fields, for subscribers an operator opted in."""
        if self.snapshot is None:
            raise ValueError("a change sent late has no values to send")
        contact = {name: self.snapshot.fields.get(name) for name in sorted(self.snapshot.fields)}
        contact["id"] = self.contact_id
        contact["created_at"] = iso(self.snapshot.created_at)
        contact["updated_at"] = self.updated_at
        contact["archived_at"] = (
            iso(self.snapshot.archived_at) if self.snapshot.archived_at else None
        )
        return {**self.summary(), "contact": contact}


class FieldHasher:
    def __init__(self, key: bytes) -> None:
        if len(key) < 16:
            raise ValueError("the field-hash key must have at least 16 bytes")
        self._key = key

    def hashes(self, snapshot: ContactSnapshot) -> dict[str, str]:
        values = dict(snapshot.fields)
        values["archived_at"] = iso(snapshot.archived_at) if snapshot.archived_at else None
        return {
            **{
                name: self._hash(snapshot.contact_id, name, values.get(name))
                for name in TRACKED_FIELDS
            },
            COUNTRY_READ: self._hash(snapshot.contact_id, COUNTRY_READ, 1),
        }

    def hashed_as_null(self, contact_id: str, name: str, digest: str | None) -> bool:
        """Whether `digest` is this contact's hash of `name` holding null."""
        return digest == self._hash(contact_id, name, None)

    def _hash(self, contact_id: str, name: str, value: Any) -> str:
        canonical = json.dumps(value, sort_keys=True, separators=(",", ":"), default=str)
        message = f"{contact_id}\0{name}\0{canonical}".encode()
        return hmac.new(self._key, message, hashlib.sha256).hexdigest()[:32]


# In the hashes of a state recorded since `country_code` is read from a listing's `country`
# (2026-12-04): before, a documented listing (no country_code) had it hashed as null for every
# contact, which says nothing of the country the contact had.
COUNTRY_READ = "country_code_from_country"


def _blank(value: Any) -> bool:
    return value in (None, "", [], {})


def known_hashes(
    snapshot: ContactSnapshot, previous: PublishedState, hashes: Mapping[str, str]
) -> dict[str, str]:
    """`hashes` of `snapshot`, a field the listing left out taking the hash `previous`
    recorded: unknown, not changed. Hashed as null, a listing without a field published a
    change nobody made (an "unarchived" for one without archived_at or deleted_at), and the
    next listing with it published it back."""
    unknown = [
        name for name in TRACKED_FIELDS if name != "archived_at" and name not in snapshot.fields
    ]
    if not snapshot.archive_shown:
        unknown.append("archived_at")
    return {
        **hashes,
        **{name: previous.hashes[name] for name in unknown if name in previous.hashes},
    }


def classify(
    account: str,
    snapshot: ContactSnapshot,
    previous: PublishedState | None,
    hashes: Mapping[str, str],
    *,
    hasher: FieldHasher | None = None,
) -> Change | None:
    """The change `snapshot` is since `previous`, or None when it was already published.

    A duplicate is the same (contact id, updated_at) with the same field hashes: the overlap
    window and retried runs list it again. The same updated_at with other hashes is a second
    change inside the same second, and is published.
    """
    updated_at = iso(snapshot.updated_at)
    archived = snapshot.archived_at is not None
    if (
        previous is not None
        and hasher is not None
        and COUNTRY_READ not in previous.hashes
        and COUNTRY_READ in hashes
        and hasher.hashed_as_null(
            snapshot.contact_id, "country_code", previous.hashes.get("country_code")
        )
    ):
        # Recorded before, from a listing without country_code (hashed as null): the country is
        # unknown, not changed (else the overlap's listing of an unchanged contact was published
        # again, naming country_code). A code a listing showed was hashed as it was.
        known = {"country_code": hashes["country_code"], COUNTRY_READ: hashes[COUNTRY_READ]}
        previous = dataclasses.replace(previous, hashes={**previous.hashes, **known})
    if previous is not None:
        hashes = known_hashes(snapshot, previous, hashes)
        if not snapshot.archive_shown:
            archived = previous.archived
        if previous.updated_at > updated_at:
            return None  # an older state than the one published (a late, stale listing)
        if previous.same_state(snapshot, hashes):
            return None
    digest = hashlib.sha256(
        json.dumps(sorted(hashes.items()), separators=(",", ":")).encode()
    ).hexdigest()
    # The previous event's id is in it too: a contact back in a state it had within the same
    # second (A, B, A) is a change of its own, not the first A again, which a subscriber
    # deduping on the id would drop. A retry of this change sees the same previous one.
    after = previous.event_id if previous is not None else ""
    event_id = (
        "msg_"
        + hashlib.sha256(
            f"{account}\0{snapshot.contact_id}\0{updated_at}\0{digest}\0{after}".encode()
        ).hexdigest()[:32]
    )
    if previous is None:
        first_seen = True
        changed = tuple(
            name
            for name in TRACKED_FIELDS
            if name != "archived_at" and not _blank(snapshot.fields.get(name))
        )
        if archived:
            kind = "contact.archived"
            changed = ("archived_at",)
        elif snapshot.created_at == snapshot.updated_at:
            kind = "contact.created"
        else:
            kind = "contact.updated"
    else:
        first_seen = False
        changed = tuple(
            name for name in TRACKED_FIELDS if hashes.get(name) != previous.hashes.get(name)
        )
        if archived and not previous.archived:
            kind = "contact.archived"
        elif not archived and previous.archived:
            kind = "contact.unarchived"
        else:
            kind = "contact.updated"
    state = PublishedState(snapshot.contact_id, updated_at, archived, dict(hashes), event_id)
    return Change(
        event_id,
        kind,
        account,
        snapshot.contact_id,
        updated_at,
        changed,
        first_seen,
        state,
        is_scrubbed(snapshot.fields),
        snapshot,
    )


def unsent_change(
    account: str, state: PublishedState, unsent: Unsent, snapshot: ContactSnapshot | None
) -> Change:
    """A change of `state.unsent`, to send what of it is left: with `snapshot`'s values only
    when `snapshot` is the state that change reached (its contact unchanged since)."""
    return Change(
        unsent.event_id,
        unsent.type,
        account,
        state.contact_id,
        unsent.updated_at,
        unsent.changed_fields,
        unsent.first_seen,
        state,
        unsent.erased,
        snapshot,
    )
