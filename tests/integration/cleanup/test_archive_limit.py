"""The most contacts one cleanup run archives under a rule (`max_archives_per_run`, else
core.MAX_ARCHIVES_PER_RUN): a rule edited too broadly (a date typo, a `not_equals`) with
CleanupDryRun off archived every contact it selected, at Cliniko's pace (1.013 requests per
contact at 200 a minute, results/bench_bulk.json: some 12,000 an hour), and nothing alarmed.
The step against the emulator over real HTTP and the tables in moto, as
test_core_against_emulator.py drives it."""

from __future__ import annotations

from cliniko_automations.cleanup import core
from cliniko_automations.cleanup.core import ARCHIVE_LIMIT, rule_fingerprint

from tests.integration.cleanup.test_core_against_emulator import (
    World,
    org_contacts_rule,
    rule,
    world,  # noqa: F401  (the fixture)
)
from tests.integration.cleanup.test_handler import begin, deployed, invoke  # noqa: F401
from tests.integration.cleanup.test_stopped_rule_alarms import _cleanup_alarmed_metrics
from tests.integration.intake_worker.resources import emf_metrics


def broad(maximum: int | None = None):
    """Every contact of the account a week old, staff-made ones too (the typo'd rule)."""
    extra = {} if maximum is None else {"max_archives_per_run": maximum}
    return org_contacts_rule("typo").model_copy(update=extra)


def run_to_the_end(at: World, *rules, dry_run: bool = False):
    state = at.start(*rules, dry_run=dry_run)
    for _ in range(20):
        outcome, state = at.step(state, *rules)
        if outcome.next == "done":
            return state
    raise AssertionError("the run did not end")


def seed_org(at: World, count: int) -> list[str]:
    return at.seed(
        *({"first_name": "O", "email": f"o{i}@example.org", "created_at": "2020-01-01T00:00:00Z"}
          for i in range(count)),
        from_intake=False,
    )  # fmt: skip


def test_a_rule_stops_before_the_batch_that_would_pass_its_maximum(world):  # noqa: F811
    ids = seed_org(world, 250)
    typo = broad(maximum=150)

    done = run_to_the_end(world, typo)

    (progress,) = done.rules
    assert progress.stopped and progress.error == ARCHIVE_LIMIT
    # The first batch (100) went; the second would have made 200: none of it was archived.
    assert progress.archived == 100 and len(world.archived()) == 100
    assert sum(world.archive_requests().values()) == 100
    assert world.archived() < set(ids)
    assert done.status == "finished"


def test_a_rule_without_a_maximum_is_held_to_the_default(world, monkeypatch):  # noqa: F811
    # The default (500) at a test's size: the mechanism is the same at any number.
    monkeypatch.setattr(core, "MAX_ARCHIVES_PER_RUN", 100)
    seed_org(world, 150)

    done = run_to_the_end(world, broad())

    (progress,) = done.rules
    assert (progress.error, progress.archived) == (ARCHIVE_LIMIT, 100)
    assert len(world.archived()) == 100


def test_the_operator_raises_the_maximum_and_the_next_run_goes_on(world):  # noqa: F811
    ids = seed_org(world, 250)
    run_to_the_end(world, broad(maximum=150))

    done = run_to_the_end(world, broad(maximum=1000))

    (progress,) = done.rules
    assert progress.error is None and progress.archived == 150
    assert world.archived() == set(ids)


def test_a_dry_run_reports_everything_a_rule_matches_past_its_maximum(world):  # noqa: F811
    seed_org(world, 250)

    done = run_to_the_end(world, broad(maximum=150), dry_run=True)

    (progress,) = done.rules
    assert not progress.stopped and progress.matched == 250
    assert world.archived() == set()


def test_a_rule_without_the_key_keeps_the_fingerprint_a_running_run_holds():
    # The fingerprint the release before `max_archives_per_run` gave this rule: a run it began
    # goes on after the upgrade instead of stopping every rule as `rule_changed`.
    before = "abd5b4110ca1c6b4839d3378db5065baf253ea0254682d45ec35e8756233b769"
    assert rule_fingerprint(org_contacts_rule("org-contacts")) == before
    assert rule_fingerprint(broad(maximum=150)) != rule_fingerprint(broad())
    assert rule().max_archives_per_run is None


def test_a_rule_stopped_at_its_maximum_is_alarmed(deployed, cliniko, capsys, tmp_path):  # noqa: F811
    # The deployed fixture's rule, over staff-made contacts too (two @example.com ones now),
    # held to one archive a run.
    cliniko.control.seed(contacts=[{"first_name": "Sam", "email": "sam.staff@example.com"}])
    rules = tmp_path / "cleanup_rules.yaml"
    more = "    created_by_intake: false\n    max_archives_per_run: 1\n"
    rules.write_text(rules.read_text() + more, encoding="utf-8")
    started = begin(dry_run=False)

    answer = invoke({"action": "step", "run_id": started["run_id"], "iterations": 0})

    (progress,) = deployed["runs"].load(started["run_id"]).rules
    assert progress.error == ARCHIVE_LIMIT and progress.archived == 0
    assert answer["next"] == "done"
    emitted = emf_metrics(capsys.readouterr().out)
    assert emitted.get("CleanupStopped") == 1
    assert "CleanupStopped" in _cleanup_alarmed_metrics()
    assert not any(c["archived_at"] for c in cliniko.control.contacts(include_archived=True))
