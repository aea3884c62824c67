"""The cleanup core against the emulator over real HTTP: what each rule archives, what a dry
run leaves alone, and how an interrupted run is finished by the next one."""

from __future__ import annotations

import datetime as dt
from collections import Counter

import pytest
from cliniko_automations.cleanup.config import CleanupRule
from cliniko_automations.cleanup.core import Cleanup
from cliniko_automations.cliniko import RetryPolicy

NOW = dt.datetime.now(dt.UTC)


def ago(days: int) -> str:
    return (NOW - dt.timedelta(days=days)).strftime("%Y-%m-%dT%H:%M:%SZ")


def rule(**overrides) -> CleanupRule:
    return CleanupRule.model_validate(
        {
            "name": "test-submissions",
            "account": "clinic",
            "where": [
                {"field": "email", "op": "like", "value": "%@example.com"},
                {"field": "created_at", "op": "older_than_days", "value": 7},
            ],
            **overrides,
        }
    )


class World:
    def __init__(self, cliniko, **client_options) -> None:
        self.cliniko = cliniko
        self.client = cliniko.client(**client_options)
        self.ledger: list[str] = []

    def seed(self, *contacts: dict, from_intake: bool = True) -> list[str]:
        ids = self.cliniko.control.seed(contacts=list(contacts))
        if from_intake:
            self.ledger += ids
        return ids

    def cleanup(self, out_of_time=lambda: False) -> Cleanup:
        return Cleanup(
            client_for_account=lambda account: self.client,
            ledger_ids=lambda account: list(self.ledger),
            out_of_time=out_of_time,
        )

    def archived(self) -> set[str]:
        return {c["id"] for c in self.cliniko.control.contacts() if c["archived_at"]}

    def writes(self) -> Counter:
        return Counter(
            r["path"].rsplit("/", 1)[-1]
            for r in self.cliniko.control.requests()
            if r["method"] != "GET"
        )


@pytest.fixture
def world(cliniko) -> World:
    return World(cliniko)


def test_only_matching_contacts_the_intake_created_are_archived(world):
    (test_one,) = world.seed({"first_name": "T", "email": "t1@example.com", "created_at": ago(10)})
    (recent,) = world.seed({"first_name": "T", "email": "t2@example.com", "created_at": ago(2)})
    (real,) = world.seed({"first_name": "R", "email": "r@clinic.example", "created_at": ago(10)})
    (staff,) = world.seed(
        {"first_name": "S", "email": "s@example.com", "created_at": ago(10)}, from_intake=False
    )

    (result,) = world.cleanup().run([rule()], dry_run=False)

    assert (result.matched, result.archived, result.failed, result.complete) == (1, 1, 0, True)
    assert result.contact_ids == [test_one]
    assert world.archived() == {test_one}
    assert {recent, real, staff}.isdisjoint(world.archived())


def test_a_dry_run_reports_ids_and_writes_nothing(world):
    ids = world.seed(
        {"first_name": "A", "email": "a@example.com", "created_at": ago(30)},
        {"first_name": "B", "email": "b@example.com", "created_at": ago(30)},
    )
    world.cliniko.control.clear_requests()

    (result,) = world.cleanup().run([rule()], dry_run=True)

    assert result.dry_run is True
    assert (result.matched, result.archived) == (2, 0)
    assert sorted(result.contact_ids) == sorted(ids)
    assert {r["method"] for r in world.cliniko.control.requests()} == {"GET"}
    assert world.archived() == set()


def test_a_rule_not_limited_to_the_intake_sees_staff_contacts_too(world):
    (mine,) = world.seed({"first_name": "A", "email": "a@example.com", "created_at": ago(9)})
    (staff,) = world.seed(
        {"first_name": "S", "email": "s@example.com", "created_at": ago(8)}, from_intake=False
    )
    (result,) = world.cleanup().run([rule(created_by_intake=False)], dry_run=False)
    assert result.contact_ids == [mine, staff]  # oldest first
    assert world.archived() == {mine, staff}


def test_stale_contacts_by_last_update(world):
    (stale,) = world.seed({"first_name": "Old", "created_at": ago(900), "updated_at": ago(800)})
    (fresh,) = world.seed({"first_name": "New", "created_at": ago(900), "updated_at": ago(10)})
    stale_rule = rule(
        name="stale", where=[{"field": "updated_at", "op": "older_than_days", "value": 365}]
    )
    (result,) = world.cleanup().run([stale_rule], dry_run=False)
    assert result.contact_ids == [stale]
    assert world.archived() == {stale}
    assert fresh not in world.archived()


def test_ledger_ids_are_asked_about_a_hundred_at_a_time(world):
    world.seed(
        *(
            {"first_name": f"T{i}", "email": f"t{i}@example.com", "created_at": ago(20)}
            for i in range(150)
        )
    )
    world.cliniko.control.clear_requests()

    (result,) = world.cleanup().run([rule()], dry_run=False)

    assert (result.matched, result.archived, result.complete) == (150, 150, True)
    assert len(result.contact_ids) == 100  # the answer lists a hundred; the counts are complete
    methods = Counter(r["method"] for r in world.cliniko.control.requests())
    assert methods == {"GET": 2, "POST": 150}  # 2 lookups for 150 ledger ids, 1 archive each


def test_a_run_out_of_time_is_finished_by_the_next_without_archiving_twice(world):
    ids = world.seed(
        *(
            {"first_name": f"T{i}", "email": f"t{i}@example.com", "created_at": ago(20)}
            for i in range(12)
        )
    )
    checks = iter(range(10_000))
    # Time runs out after a few checks: during the archiving of the first run.
    (first,) = world.cleanup(out_of_time=lambda: next(checks) >= 6).run([rule()], dry_run=False)
    assert first.complete is False
    assert 0 < first.archived < 12

    (second,) = world.cleanup().run([rule()], dry_run=False)
    assert second.complete is True
    assert second.matched == 12 - first.archived  # archived contacts no longer match
    assert world.archived() == set(ids)
    assert world.writes() == {"archive": 12}

    (third,) = world.cleanup().run([rule()], dry_run=False)
    assert (third.matched, third.archived) == (0, 0)


def test_cliniko_refusing_stops_the_rule_and_the_next_run_retries(cliniko):
    world = World(cliniko, retry_policy=RetryPolicy(max_attempts=1))
    ids = world.seed(
        *(
            {"first_name": f"T{i}", "email": f"t{i}@example.com", "created_at": ago(20)}
            for i in range(3)
        )
    )
    cliniko.control.set_faults(fail_next=[503], methods=["POST"])

    (result,) = world.cleanup().run([rule()], dry_run=False)

    assert (result.matched, result.archived, result.failed) == (3, 0, 1)
    assert result.complete is False
    assert result.error == "cliniko_ServerError"
    assert world.archived() == set()

    (retry,) = world.cleanup().run([rule()], dry_run=False)
    assert (retry.archived, retry.complete) == (3, True)
    assert world.archived() == set(ids)


def test_a_failed_search_is_reported_not_raised(cliniko):
    world = World(cliniko, retry_policy=RetryPolicy(max_attempts=1))
    world.seed({"first_name": "T", "email": "t@example.com", "created_at": ago(20)})
    cliniko.control.set_faults(fail_next=[502], methods=["GET"])
    (result,) = world.cleanup().run([rule()], dry_run=False)
    assert (result.matched, result.complete, result.error) == (0, False, "cliniko_ServerError")
    assert world.archived() == set()
