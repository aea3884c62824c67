"""The cleanup step against a Cliniko that lists in its default order (created_at, ties in
any order) whatever `sort` says: the keyset by id must not skip contacts and call the rule
done."""

from __future__ import annotations

import datetime as dt
import json
from types import SimpleNamespace

from cliniko_automations.cleanup.config import CleanupRule
from cliniko_automations.cleanup.core import CleanupStep, RuleProgress, RunState

BASE = 1390712996921091568


class IgnoresSort:
    """150 contacts, 40 created per second, ids rising with creation; listed by created_at
    with ties newest id first, as a server that drops an unknown sort column may."""

    def __init__(self) -> None:
        self.contacts = [(BASE + i, i // 40) for i in range(150)]  # (id, created second)
        self.archived: list[str] = []

    def iter_contacts(self, filters=(), sort=None):
        after = next((int(f.value) for f in filters if f.field == "id" and f.operator == ">"), 0)
        live = [c for c in self.contacts if c[0] > after and str(c[0]) not in self.archived]
        for cid, _ in sorted(live, key=lambda c: (c[1], -c[0])):
            # What the cleanup reads of a listed contact: its id, and its fields (to_dict).
            yield SimpleNamespace(id=str(cid), to_dict=lambda cid=cid: {"id": str(cid)})

    def archive_contact(self, contact_id: str) -> None:
        self.archived.append(contact_id)


class Nothing:
    def active_ids(self, account, after, limit):
        return []

    def mark_archived(self, ids, at):
        pass

    def save(self, state):
        json.dumps(state.as_dict())

    def record_ids(self, *args):
        pass


def run_rule(cliniko: IgnoresSort) -> RuleProgress:
    """A real run of one rule over `cliniko`, step after step until it is done (at most 10);
    the rule's progress."""
    rule = CleanupRule(
        name="all-test",
        account="a",
        created_by_intake=False,
        where=[{"field": "email", "op": "like", "value": "%@example.com"}],
    )
    store = Nothing()
    state = RunState(
        run_id="r",
        dry_run=False,
        started_at=dt.datetime.now(dt.UTC).isoformat(timespec="seconds"),
        rules=[RuleProgress.start(rule)],
    )
    step = CleanupStep({rule.name: rule}, lambda _: cliniko, store, store)
    for _ in range(10):
        if step.run(state).next == "done":
            break
    return state.rules[0]


def test_a_cliniko_that_ignores_sort_by_id_never_ends_the_rule_as_done_with_contacts_skipped():
    cliniko = IgnoresSort()
    progress = run_rule(cliniko)
    # Either every contact was archived, or the rule says it stopped short (never "done, 130").
    assert len(set(cliniko.archived)) == 150 or progress.stopped, (
        f"{len(set(cliniko.archived))} of 150 archived, rule {progress.phase}, "
        f"error {progress.error}"
    )


class RepeatsAnId(IgnoresSort):
    """Lists by id, as asked, but its page names one contact twice."""

    def iter_contacts(self, filters=(), sort=None):
        after = next((int(f.value) for f in filters if f.field == "id" and f.operator == ">"), 0)
        live = sorted(
            c[0] for c in self.contacts if c[0] > after and str(c[0]) not in self.archived
        )
        for cid in [*live[:3], live[2], *live[3:]]:
            yield SimpleNamespace(id=str(cid), to_dict=lambda cid=cid: {"id": str(cid)})


def test_a_listing_that_names_a_contact_twice_stops_the_rule_before_its_batch_is_archived():
    # Read as in order, the contact was archived, and counted, twice.
    cliniko = RepeatsAnId()
    progress = run_rule(cliniko)
    assert progress.stopped and "UnexpectedResponse" in str(progress.error), progress.error
    assert cliniko.archived == [] and progress.archived == 0
