"""What a cleanup run must leave alone: a contact its person met again through the form, one
staff changed while its batch was being archived, and what a plan says against what the run
then does."""

from __future__ import annotations

import datetime as dt
from collections import Counter

import pytest
from cliniko_automations.cleanup.config import CleanupRule, load_cleanup_rules
from cliniko_automations.cleanup.core import CleanupStep
from cliniko_automations.intake.submission import ContactDraft
from cliniko_automations.intake_worker.worker import IntakeWorker

from tests.integration.cleanup.test_core_against_emulator import World, after_calls, ago, rule
from tests.integration.intake_worker.resources import json_submission
from tests.unit.cleanup.test_status import cli
from tests.unit.intake_worker.fakes import MemoryClaims, MemoryIntents, MemoryParking


@pytest.fixture
def world(aws, cliniko) -> World:
    return World(cliniko)


def shipped(name: str) -> CleanupRule:
    """A rule of the shipped cleanup_rules.yaml, on the test's account."""
    (found,) = load_cleanup_rules().selected([name])
    return found.model_copy(update={"account": "clinic"})


@pytest.mark.parametrize("scope", ["intake's contacts", "every contact"])
def test_a_person_who_sent_the_form_today_is_not_archived_as_stale(world, scope):
    # The intake made this contact four years ago (it is in the ledger); nobody changed it.
    (old,) = world.seed(
        {"first_name": "Ana", "last_name": "Lima", "email": "ana@clinic.example",
         "created_at": ago(4 * 365), "updated_at": ago(4 * 365)}
    )  # fmt: skip
    # Today Ana sends the form again, with the details Cliniko already holds.
    worker = IntakeWorker(
        claims=MemoryClaims(),
        intents=MemoryIntents(),
        ledger=world.ledger,
        parking=MemoryParking(),
    )
    draft = ContactDraft(first_name="Ana", last_name="Lima", email="ana@clinic.example")
    outcome = worker.process(json_submission(draft, account="clinic"), world.client)
    assert (outcome.action, outcome.contact_id) == ("unchanged", old)

    # Tonight's cleanup: the shipped rule "Form contacts nobody has touched for three years",
    # or the same age on every contact of the account (the intake's among them).
    stale = shipped("stale-form-contacts")
    if scope == "every contact":
        stale = stale.model_copy(update={"created_by_intake": False})
    world.step(world.start(stale), stale)

    assert world.archived() == set(), "archived a contact whose person sent the form today"


def test_a_dry_run_writes_nothing_to_cliniko_and_plans_what_the_run_archives(world):
    world.seed_matching(3)
    world.seed({"first_name": "S", "email": "s@example.com", "created_at": ago(10)},
               from_intake=False)  # fmt: skip
    every = rule("every", created_by_intake=False)
    world.cliniko.control.clear_requests()
    dry = world.start(rule(), every, dry_run=True)
    world.step(dry, rule(), every)
    methods = Counter(r["method"] for r in world.cliniko.control.requests())
    assert set(methods) == {"GET"}, methods
    planned = world.runs.contact_ids(dry.run_id, "matched")

    real = world.start(rule(), every)
    world.step(real, rule(), every)
    # A contact both rules match is each one's match in the plan, and archived once.
    assert {i for ids in planned.values() for i in ids} == world.archived()
    assert sum(p.archived for p in world.runs.load(real.run_id).rules) == len(world.archived())


def test_a_rule_with_no_updated_at_cutoff_archives_a_contact_whose_person_wrote_today(world):
    # The test-submissions rule asks the created date only: a person's submission today meets
    # no cutoff of it (only an updated_at one), and is no reason to keep or to fail the run.
    ids = world.seed_matching(2)
    world.ledger.seen(ids[0], dt.datetime.now(dt.UTC).replace(microsecond=0).isoformat())
    world.step(world.start(rule()), rule())
    assert world.archived() == set(ids)


def test_the_age_boundary(world):
    # Exactly 1095 days ago to the second: not older than 1095 days.
    now = dt.datetime.fromisoformat(world.start(rule()).started_at)
    exact = (now - dt.timedelta(days=1095)).strftime("%Y-%m-%dT%H:%M:%SZ")
    frac = (now - dt.timedelta(days=1095)).strftime("%Y-%m-%dT%H:%M:%S.400000Z")
    offset = (
        (now - dt.timedelta(days=1095))
        .astimezone(dt.timezone(dt.timedelta(hours=10)))
        .strftime("%Y-%m-%dT%H:%M:%S+10:00")
    )
    ids = world.seed(
        {"first_name": "E", "updated_at": exact, "created_at": exact},
        {"first_name": "F", "updated_at": frac, "created_at": exact},
        {"first_name": "O", "updated_at": offset, "created_at": exact},
        {"first_name": "S", "updated_at": ago(2000), "created_at": ago(2000)},
    )
    # Untouched in Cliniko for longer, but its person's last submission was exactly then.
    world.ledger.seen(ids[-1], (now - dt.timedelta(days=1095)).replace(microsecond=0).isoformat())
    stale = shipped("stale-form-contacts")
    state = world.start(stale)
    state_started = dt.datetime.fromisoformat(state.started_at)
    assert state_started == now
    world.step(state, stale)
    assert world.archived() == set(), ids


def test_a_plan_then_a_run_rechecks_what_staff_changed_in_between(world):
    first, edited = world.seed(
        {"first_name": "A", "created_at": ago(2000), "updated_at": ago(2000)},
        {"first_name": "B", "created_at": ago(2000), "updated_at": ago(2000)},
    )
    stale = shipped("stale-form-contacts")
    dry = world.start(stale, dry_run=True)
    world.step(dry, stale)
    assert sorted(world.runs.contact_ids(dry.run_id, "matched")["stale-form-contacts"]) == sorted(
        [first, edited]
    )
    world.cliniko.client().update_contact(edited, {"occupation": "GP"})
    world.step(world.start(stale), stale)
    assert world.archived() == {first}


def test_a_contact_staff_changed_while_its_batch_waited_for_the_next_step_is_left(world):
    # The step found the batch and its time ran out before archiving it: the next step, maybe
    # minutes later, asks Cliniko again, and a contact staff touched meanwhile is no longer
    # stale.
    first, edited = world.seed(
        {"first_name": "A", "created_at": ago(2000), "updated_at": ago(2000)},
        {"first_name": "B", "created_at": ago(2000), "updated_at": ago(2000)},
    )
    stale = shipped("stale-form-contacts")
    state = world.start(stale)
    outcome, _ = world.step(state, stale, out_of_time=after_calls(1))
    assert outcome.next == "step" and world.archived() == set()
    world.cliniko.client().update_contact(edited, {"occupation": "GP"})
    world.step(state, stale)
    assert world.archived() == {first}


class SlowArchives:
    """The cleanup's client archiving slowly: a batch of 100 at the bulk share of the budget
    takes 40 s at best, minutes beside a busy intake (each request may wait 60 s). Each archive
    here takes 50 s of the step's clock, and `meanwhile()` happens as the first one starts."""

    def __init__(self, inner, meanwhile) -> None:
        self.inner, self.meanwhile = inner, meanwhile
        self.now = dt.datetime.now(dt.UTC)
        self.started = False

    def clock(self) -> dt.datetime:
        return self.now

    def iter_contacts(self, *args, **kwargs):
        return self.inner.iter_contacts(*args, **kwargs)

    def archive_contact(self, contact_id: str) -> None:
        if not self.started:
            self.started = True
            self.meanwhile()
        self.now += dt.timedelta(seconds=50)
        self.inner.archive_contact(contact_id)


def step_archiving_slowly(world, rule: CleanupRule, meanwhile) -> None:
    """One step of a run of `rule`, its archives slow (SlowArchives)."""
    client = SlowArchives(world.client, meanwhile)
    CleanupStep(
        rules={rule.name: rule},
        client_for_account=lambda account: client,
        ledger=world.ledger,
        checkpoints=world.runs,
        clock=client.clock,
    ).run(world.runs.load(world.start(rule).run_id))


def test_a_batch_archived_slowly_is_asked_about_again_before_its_later_contacts(world):
    first, second, edited = world.seed(
        *({"first_name": n, "created_at": ago(2000), "updated_at": ago(2000)} for n in "ABC")
    )
    staff = world.cliniko.client()

    step_archiving_slowly(
        world,
        shipped("stale-form-contacts"),
        lambda: staff.update_contact(edited, {"occupation": "GP, back in touch"}),
    )

    assert world.archived() == {first, second}  # C, changed 100 s after it was found: left
    assert edited in world.active()


def test_the_plan_says_how_many_contacts_the_run_would_archive(world, capsys):
    world.seed_matching(3)
    every = rule("every", created_by_intake=False)
    dry = world.start(rule(), every, dry_run=True)
    world.step(dry, rule(), every)
    cli.print_status(world.runs, world.ledger, "cleanup_rules", dry.run_id, as_json=False)
    out = capsys.readouterr().out
    assert "matched 3" in out  # each rule's own match ...
    assert "would archive 3 contacts" in out  # ... and what a run would archive, once each


def test_a_submission_meeting_a_contact_the_ledger_does_not_hold_adds_no_entry(world):
    world.ledger.seen("12345", ago(0))
    assert world.ledger.last_submissions(["12345"]) == {}
    assert world.active() == []


@pytest.mark.parametrize("value", ["%", "%%"])
@pytest.mark.parametrize("op", ["like", "contains"])
def test_a_text_condition_of_only_wildcards_is_refused(op, value):
    with pytest.raises(ValueError, match="matches every email"):
        CleanupRule.model_validate(
            {"name": "oops", "account": "clinic", "created_by_intake": False,
             "where": [{"field": "email", "op": op, "value": value}]}
        )  # fmt: skip


def test_a_person_who_sends_the_form_while_the_batch_is_archived_is_left(world):
    first, second, cara = world.seed(
        *(
            {"first_name": n, "last_name": "Lima", "email": f"{n.lower()}@clinic.example",
             "created_at": ago(4 * 365), "updated_at": ago(4 * 365)}
            for n in ("Ana", "Bea", "Cara")
        )
    )  # fmt: skip
    worker = IntakeWorker(
        claims=MemoryClaims(), intents=MemoryIntents(), ledger=world.ledger, parking=MemoryParking()
    )
    draft = ContactDraft(first_name="Cara", last_name="Lima", email="cara@clinic.example")

    def resubmit() -> None:
        outcome = worker.process(json_submission(draft, account="clinic"), world.client)
        assert (outcome.action, outcome.contact_id) == ("unchanged", cara)

    step_archiving_slowly(world, shipped("stale-form-contacts"), resubmit)

    # Asked about again 100 s after it was found (RECHECK_SECONDS), after Cara sent the form:
    # the re-check counts the ledger's last submission as the find does. Before, it asked
    # Cliniko alone, whose updated_at had not moved, and archived her.
    assert world.archived() == {first, second}
