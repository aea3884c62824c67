"""Run cleanup rules: find the contacts each rule matches, then archive them (or, in a dry
run, only report them by id).

A rule's candidates are found before anything is archived: archiving while paging through a
filtered list would shift the pages under the listing and skip contacts. Rules limited to the
intake's contacts ask Cliniko about the ledger's ids, 100 at a time (one `id:=` filter a
request), so staff-made contacts cost nothing however many there are; other rules page
through Cliniko's filtered list.

A run stops starting work when `out_of_time()` says so and reports the rule incomplete:
archived contacts never match again, so the next run carries on where this one stopped.
Nothing here knows about Lambda, EventBridge or DynamoDB.
"""

from __future__ import annotations

import datetime as dt
import itertools
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass, field, fields
from typing import Any, Protocol

from cliniko_automations.cleanup.config import CleanupRule
from cliniko_automations.cliniko import errors as cliniko_errors
from cliniko_automations.cliniko.filters import Filter, NumericFilter

# Cliniko's largest page; also how many ledger ids go into one `id:=` filter.
ID_BATCH = 100
# How many matched ids a result lists (the counts are always complete).
LISTED_IDS = 100


@dataclass
class RuleResult:
    rule: str
    account: str
    dry_run: bool
    matched: int = 0
    archived: int = 0
    failed: int = 0
    # False when the run stopped early (time, or a Cliniko error); the next run continues.
    complete: bool = True
    error: str | None = None
    contact_ids: list[str] = field(default_factory=list)
    # Cliniko refused the account's key (401) or its user (403): the deployment needs fixing,
    # and the handler tells the operator how. Not part of the reported result.
    refused: cliniko_errors.Unauthorized | cliniko_errors.Forbidden | None = field(
        default=None, repr=False, compare=False
    )

    def as_dict(self) -> dict[str, object]:
        return {
            f.name: list(value) if isinstance(value := getattr(self, f.name), list) else value
            for f in fields(self)
            if f.name != "refused"
        }


class ContactsClient(Protocol):
    """What the cleanup needs of `ClinikoClient`."""

    def iter_contacts(
        self, filters: Sequence[Filter] = (), sort: str | None = None
    ) -> Iterator[Any]: ...

    def archive_contact(self, contact_id: str) -> None: ...


class Cleanup:
    def __init__(
        self,
        client_for_account: Callable[[str], ContactsClient],
        ledger_ids: Callable[[str], Iterable[str]],
        out_of_time: Callable[[], bool] = lambda: False,
        clock: Callable[[], dt.datetime] = lambda: dt.datetime.now(dt.UTC),
    ) -> None:
        self._client_for_account = client_for_account
        self._ledger_ids = ledger_ids
        self._out_of_time = out_of_time
        self._clock = clock

    def run(self, rules: Sequence[CleanupRule], *, dry_run: bool) -> list[RuleResult]:
        return [self.run_rule(rule, dry_run=dry_run) for rule in rules]

    def run_rule(self, rule: CleanupRule, *, dry_run: bool) -> RuleResult:
        result = RuleResult(rule=rule.name, account=rule.account, dry_run=dry_run)
        client = self._client_for_account(rule.account)
        try:
            matched, result.complete = self._matches(rule, client)
        except cliniko_errors.ClinikoError as error:
            result.complete, result.error = False, cliniko_errors.error_kind(error)
            if isinstance(error, cliniko_errors.Unauthorized | cliniko_errors.Forbidden):
                result.refused = error
            return result
        result.matched = len(matched)
        result.contact_ids = matched[:LISTED_IDS]
        if dry_run:
            return result
        for contact_id in matched:
            if self._out_of_time():
                result.complete = False
                break
            try:
                client.archive_contact(contact_id)
            except cliniko_errors.NotFound:
                continue  # archived or removed since it was listed: nothing left to do
            except cliniko_errors.ClinikoError as error:
                result.failed += 1
                result.complete, result.error = False, cliniko_errors.error_kind(error)
                if isinstance(error, cliniko_errors.Unauthorized | cliniko_errors.Forbidden):
                    result.refused = error
                    break  # every other archive would be refused alike
                if isinstance(error, cliniko_errors.RateLimited | cliniko_errors.ServerError):
                    break  # Cliniko is refusing for now: the next run retries what is left
                continue
            result.archived += 1
        return result

    def _matches(self, rule: CleanupRule, client: ContactsClient) -> tuple[list[str], bool]:
        """The ids of the contacts `rule` matches, and whether the search finished in time."""
        filters = rule.filters(self._clock())
        matched: list[str] = []
        if rule.created_by_intake:
            ids = iter(self._ledger_ids(rule.account))
            while batch := list(itertools.islice(ids, ID_BATCH)):
                if self._out_of_time():
                    return matched, False
                by_id = [*filters, NumericFilter("id").eq(batch)]
                matched += [contact.id for contact in client.iter_contacts(by_id)]
            return matched, True
        for contact in client.iter_contacts(filters, sort="created_at"):
            if self._out_of_time():
                return matched, False
            matched.append(contact.id)
        return matched, True
