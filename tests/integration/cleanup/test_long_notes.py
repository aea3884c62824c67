"""Contacts with long notes (Cliniko's `notes` are unbounded): a batch of them, 100 contacts
past the 8 MiB the client holds on one page, must not stop a rule on every run."""

from __future__ import annotations

from collections import Counter

import pytest

from tests.integration.cleanup.test_core_against_emulator import (
    World,
    ago,
    org_contacts_rule,
    rule,
)

NOTES = "n" * 90_000  # 100 of them pass 8 MiB on one page of 100


@pytest.fixture
def world(aws, cliniko) -> World:
    return World(cliniko)


def seed_long(world: World, count: int, domain: str, *, from_intake: bool) -> list[str]:
    ids: list[str] = []
    for start in range(0, count, 50):  # control requests of some 4.5 MB each
        ids += world.seed(
            *(
                {
                    "first_name": "T",
                    "email": f"t{i}@{domain}",
                    "created_at": ago(10),
                    "notes": NOTES,
                }
                for i in range(start, min(count, start + 50))
            ),
            from_intake=from_intake,
        )
    return ids


def run_to_the_end(world: World, *rules):
    state = world.start(*rules)
    for _ in range(10):
        outcome, done = world.step(state, *rules)
        if outcome.next == "done":
            return done
        assert outcome.next == "step", outcome
    raise AssertionError("the run never ended")


def test_a_ledger_batch_of_contacts_with_long_notes_is_archived(world):
    """The intake's rule asks Cliniko which of 100 ledger ids match, in one `id:=` listing."""
    ids = seed_long(world, 100, "example.com", from_intake=True)

    done = run_to_the_end(world, rule())

    (progress,) = done.rules
    assert progress.error is None and not progress.stopped, progress
    assert (progress.asked, progress.matched, progress.archived) == (100, 100, 100)
    assert world.archived() == set(ids)
    assert world.archive_requests() == Counter(dict.fromkeys(ids, 1))
    assert world.active() == []


def test_a_rule_on_every_contact_pages_contacts_with_long_notes_by_id(world):
    """A rule beyond the ledger lists Cliniko by id, a batch of 100 a listing."""
    ids = seed_long(world, 130, "example.org", from_intake=False)

    done = run_to_the_end(world, org_contacts_rule("org"))

    (progress,) = done.rules
    assert progress.error is None and not progress.stopped, progress
    assert (progress.matched, progress.archived, progress.batches) == (130, 130, 2)
    assert world.archived() == set(ids)
    assert world.archive_requests() == Counter(dict.fromkeys(ids, 1))


def test_a_cut_batch_of_contacts_with_long_notes_is_verified_and_finished(world):
    """A step cut inside a batch: the next one asks again about the batch (two `id:=`
    listings of up to 100 contacts, archived ones included) before archiving the rest."""
    ids = seed_long(world, 100, "example.com", from_intake=True)
    state = world.start(rule())
    calls = {"n": 0}

    def out_of_time() -> bool:
        calls["n"] += 1
        return calls["n"] > 40  # the batch found, 38 or so archived, then out of time

    outcome, cut = world.step(state, rule(), out_of_time=out_of_time)
    assert outcome.next == "step" and cut.rules[0].phase == "archive", cut.rules[0]
    assert 0 < cut.rules[0].archived < 100

    outcome, done = world.step(state, rule())

    (progress,) = done.rules
    assert outcome.next == "done" and progress.error is None, progress
    assert progress.archived == 100
    assert world.archived() == set(ids)
    assert world.archive_requests() == Counter(dict.fromkeys(ids, 1))
