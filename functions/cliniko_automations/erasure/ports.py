"""What the erasure workflow needs from the world, as protocols: the adapters are audit.py,
idempotency.py, ceiling.py, common/submission_store.py, changefeed/webhook_dead_letters.py and
the Cliniko client (one per account, accounts.py)."""

from __future__ import annotations

from collections.abc import Callable, Collection, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Protocol

from cliniko_automations.erasure.models import Outcome


class AuditLog(Protocol):
    def records(self, request_id: str) -> list[dict[str, Any]]:
        """Every record of a request, ordered by sort key."""
        ...

    def append(self, request_id: str, sk: str, record: Mapping[str, Any]) -> None:
        """Add one record; AlreadyRecorded when the key exists (the log is append-only)."""
        ...


class SubmissionStore(Protocol):  # see common/submission_store.py
    def tombstone(self, keys: Collection[str], erased_at: datetime) -> None:
        """Keep submissions for these email (or name and phone) keys made before `erased_at`
        from being processed."""
        ...

    def fence(self, key: str, erased_at: datetime, claims: Collection[str]) -> bool:
        """Tombstone `key` once no intake worker holds any of these identity claims, waiting
        a few seconds for one that does: False when one still does."""
        ...

    def purge(
        self, email_hmac: str, *, time_left: Callable[[], float | None] | None = None
    ) -> list[str]:
        """Delete every stored submission body for this email; their submission ids. Once
        `time_left` (seconds) is spent, or the store fails, PurgeCut with those deleted so far."""
        ...

    def purge_person(
        self,
        name_hmac: str,
        name_phone: Collection[str],
        *,
        time_left: Callable[[], float | None] | None = None,
    ) -> list[str]:
        """Delete every stored submission body for this name that shares one of these
        name-and-phone keys; their submission ids. `time_left` as for `purge`."""
        ...


@dataclass(frozen=True)
class LettersPurged:
    """What a purge of the webhook dead letters did: how many it deleted, and how many of the
    contacts' letters it kept as erasure notices (fields holding only what an erasure wrote,
    and what tells a receiver to delete its copy)."""

    deleted: int
    notices_kept: int = 0


class WebhookLetters(Protocol):  # see changefeed/webhook_dead_letters.py
    def purge(
        self,
        contacts: Collection[tuple[str, str]],
        *,
        time_left: Callable[[], float | None] | None = None,
    ) -> LettersPurged:
        """Delete the undelivered webhooks that carry these contacts' fields, each given as
        (account, contact id), but for erasure notices. None is read once `time_left`
        (seconds) is spent: then PurgeCut with the ids of those deleted so far (and `kept`,
        the notices kept), when letters were left unread."""
        ...


class ContactsClient(Protocol):  # the part of ClinikoClient the core uses
    def expect_requests(self, count: int) -> None: ...
    def list_contacts(self, filters: Sequence[Any] = (), sort: str | None = None) -> list[Any]: ...
    def get_contact(self, contact_id: str, *, include_archived: bool = False) -> Any: ...
    def update_contact(
        self, contact_id: str, body: Mapping[str, Any], *, include_archived: bool = False
    ) -> Any: ...
    def archive_contact(self, contact_id: str) -> None: ...


class ErasureCeiling(Protocol):  # see ceiling.py
    def admit(self, request_id: str, contacts: int, now: datetime, read: Any = None) -> None:
        """Count `contacts` about to be erased by `request_id` against the stack's rolling
        hour, or raise OverHourlyLimit, counting nothing. `read`: what `check_room` returned."""
        ...

    def check_room(self, request_id: str, now: datetime) -> Any:
        """Raise OverHourlyLimit when the hour has no room for one more contact; what it
        read, for `admit`."""
        ...


class OncePerRequest(Protocol):  # see idempotency.py
    def __call__(self, identity: Mapping[str, Any], attempt: Callable[[], Outcome]) -> Outcome:
        """Run `attempt` for the request `identity["request_id"]`, or answer without running it:
        its stored outcome once it completed, RequestInProgress while another attempt runs,
        RequestIdConflict when the id came before with another identity."""
        ...
