"""The cleanup step against the emulator over real HTTP and the ledger and runs tables in moto:
what each rule archives, what a dry run leaves alone, how a cut or killed step resumes (each
contact archived exactly once, by the emulator's request log), and that rules take turns."""

from __future__ import annotations

import dataclasses
import datetime as dt
import time
import uuid
from collections import Counter

import boto3
import pytest
from cliniko_automations.cleanup.config import CleanupRule
from cliniko_automations.cleanup.core import CleanupStep, RuleProgress, RunState
from cliniko_automations.cleanup.runs import DynamoRuns
from cliniko_automations.cliniko import RetryPolicy
from cliniko_automations.cliniko import errors as cliniko_errors
from cliniko_automations.common.ledger import DynamoLedger, LedgerEntry

from tests.fixtures.dropped_filters import DropsFilters
from tests.integration.cleanup.tables import create_cleanup_tables

NOW = dt.datetime.now(dt.UTC)


def ago(days: int) -> str:
    return (NOW - dt.timedelta(days=days)).strftime("%Y-%m-%dT%H:%M:%SZ")


def rule(name: str = "test-submissions", **overrides) -> CleanupRule:
    return CleanupRule.model_validate(
        {
            "name": name,
            "account": "clinic",
            "where": [
                {"field": "email", "op": "like", "value": "%@example.com"},
                {"field": "created_at", "op": "older_than_days", "value": 7},
            ],
            **overrides,
        }
    )


def org_contacts_rule(name: str) -> CleanupRule:
    """A rule on every contact, not only the intake's: @example.org ones a week old."""
    return rule(
        name,
        created_by_intake=False,
        where=[
            {"field": "email", "op": "like", "value": "%@example.org"},
            {"field": "created_at", "op": "older_than_days", "value": 7},
        ],
    )


class Killed(BaseException):
    """Stands for the process dying inside a step (not an Exception: nothing handles it)."""


class World:
    def __init__(self, cliniko, **client_options) -> None:
        self.cliniko = cliniko
        # A long timeout: on a loaded machine a slow answer would otherwise be retried (archive
        # is idempotent), and the request log would show two archive requests for one contact.
        self.client = cliniko.client(timeout=60, **client_options)
        dynamodb = boto3.client("dynamodb")
        ledger_table, runs_table = create_cleanup_tables(f"t{uuid.uuid4().hex[:8]}")
        self.ledger = DynamoLedger(dynamodb, ledger_table)
        self.runs = DynamoRuns(dynamodb, runs_table)
        self.clock = lambda: dt.datetime.now(dt.UTC)  # the steps' (a test may set it)

    def seed(self, *contacts: dict, from_intake: bool = True) -> list[str]:
        ids = self.cliniko.control.seed(contacts=list(contacts))
        if from_intake:
            for contact_id in ids:
                self.ledger.record(LedgerEntry(contact_id, "clinic", "form", "sub", ago(0)))
        return ids

    def seed_matching(self, count: int, from_intake: bool = True) -> list[str]:
        return self.seed(
            *({"first_name": "T", "email": f"t{i}@example.com", "created_at": ago(10)}
              for i in range(count)),
            from_intake=from_intake,
        )  # fmt: skip

    def start(self, *rules: CleanupRule, dry_run: bool = False) -> RunState:
        state = RunState(
            run_id=uuid.uuid4().hex,
            dry_run=dry_run,
            started_at=NOW.isoformat(),
            rules=[RuleProgress.start(r) for r in rules],
        )
        self.runs.create("cleanup_rules", state)
        return state

    def step(self, state: RunState, *rules: CleanupRule, out_of_time=lambda: False, client=None):
        """One step from the last checkpoint, as a new Lambda invocation would run it."""
        loaded = self.runs.load(state.run_id)
        outcome = CleanupStep(
            rules={r.name: r for r in rules},
            client_for_account=lambda account: client or self.client,
            ledger=self.ledger,
            checkpoints=self.runs,
            out_of_time=out_of_time,
            clock=self.clock,
        ).run(loaded)
        return outcome, loaded

    def archived(self) -> set[str]:
        return {c["id"] for c in self.cliniko.control.contacts() if c["archived_at"]}

    def archive_requests(self) -> Counter:
        """Archive requests Cliniko carried out, per contact. A 429 is refused before anything
        is done (and retried by the client); it is not an archive."""
        return Counter(
            r["path"].split("/")[-2]
            for r in self.cliniko.control.requests()
            if r["method"] == "POST" and r["path"].endswith("/archive") and r["status"] != 429
        )

    def active(self) -> list[str]:
        return self.ledger.active_ids("clinic", None, 10_000)


def after_calls(count: int, then=True):
    """out_of_time that answers False `count` times, then `then` (or raises it)."""
    calls = {"n": 0}

    def out_of_time() -> bool:
        calls["n"] += 1
        if calls["n"] <= count:
            return False
        if isinstance(then, BaseException):
            raise then
        return then

    return out_of_time


@pytest.fixture
def world(aws, cliniko) -> World:
    return World(cliniko)


def test_only_matching_contacts_the_intake_created_are_archived(world):
    (test_one,) = world.seed({"first_name": "T", "email": "t1@example.com", "created_at": ago(10)})
    (recent,) = world.seed({"first_name": "T", "email": "t2@example.com", "created_at": ago(2)})
    (real,) = world.seed({"first_name": "R", "email": "r@clinic.example", "created_at": ago(10)})
    world.seed(  # staff-made: not in the ledger
        {"first_name": "S", "email": "s@example.com", "created_at": ago(10)}, from_intake=False
    )
    state = world.start(rule())

    outcome, done = world.step(state, rule())

    assert outcome.next == "done" and done.status == "finished"
    (progress,) = done.rules
    assert (progress.asked, progress.matched, progress.archived, progress.failed) == (3, 1, 1, 0)
    assert world.archived() == {test_one}
    # The archived entry left the ledger's active set; the others stay.
    assert sorted(world.active()) == sorted([recent, real])
    assert world.runs.contact_ids(state.run_id, "archived") == {"test-submissions": [test_one]}


def test_a_dry_run_archives_nothing_and_reports_by_id(world):
    ids = world.seed_matching(3)
    state = world.start(rule(), dry_run=True)

    outcome, done = world.step(state, rule())

    assert outcome.next == "done"
    assert done.rules[0].matched == 3 and done.rules[0].archived == 0
    assert world.archived() == set()
    assert world.archive_requests() == Counter()
    assert world.runs.contact_ids(state.run_id, "matched") == {"test-submissions": sorted(ids)}
    assert sorted(world.active()) == sorted(ids)


def test_archived_contacts_are_never_asked_about_again(world):
    ids = world.seed_matching(150)
    world.step(world.start(rule()), rule())
    assert world.archived() == set(ids)
    world.cliniko.control.clear_requests()

    outcome, done = world.step(world.start(rule()), rule())

    assert outcome.next == "done" and done.rules[0].asked == 0
    assert world.cliniko.control.requests() == []


def test_a_cut_step_resumes_where_it_stopped_archiving_each_contact_once(world):
    # Below 200 requests in all, so the test never waits for Cliniko's next minute.
    ids = world.seed_matching(150)
    state = world.start(rule())

    steps = 0
    while True:
        steps += 1
        outcome, _ = world.step(state, rule(), out_of_time=after_calls(30))
        if outcome.next == "done":
            break
        assert outcome.next == "step"
    assert steps > 3
    assert world.archived() == set(ids)
    assert world.archive_requests() == Counter(dict.fromkeys(ids, 1))
    final = world.runs.load(state.run_id)
    assert final.rules[0].archived == 150 and final.status == "finished"
    assert sorted(world.runs.contact_ids(state.run_id, "archived")["test-submissions"]) == sorted(
        ids
    )


@pytest.mark.parametrize("kill_after", [1, 2, 30, 101, 140])
def test_a_killed_step_is_rerun_and_each_contact_is_archived_exactly_once(world, kill_after):
    ids = world.seed_matching(150)
    state = world.start(rule())
    with pytest.raises(Killed):
        world.step(state, rule(), out_of_time=after_calls(kill_after, Killed()))

    outcome, final = world.step(state, rule())

    assert outcome.next == "done"
    assert world.archived() == set(ids)
    assert world.archive_requests() == Counter(dict.fromkeys(ids, 1))
    assert final.rules[0].archived == 150
    assert world.active() == []


def test_a_kill_between_archiving_and_recording_is_caught_by_verifying_the_batch(world):
    """The harshest cut: Cliniko archived contacts but neither the ledger nor the checkpoint
    knows (the process died right after the requests). The rerun asks about the batch again."""
    ids = world.seed_matching(5)
    state = world.start(rule())
    # The first step found the batch and checkpointed it, then died ...
    with pytest.raises(Killed):
        world.step(state, rule(), out_of_time=after_calls(1, Killed()))
    assert world.runs.load(state.run_id).rules[0].phase == "archive"
    # ... after two archive requests had reached Cliniko.
    for contact_id in ids[:2]:
        world.client.archive_contact(contact_id)

    outcome, final = world.step(state, rule())

    assert outcome.next == "done"
    assert world.archive_requests() == Counter(dict.fromkeys(ids, 1))
    assert final.rules[0].archived == 5
    assert world.active() == []


class RefusesItsSecondListing:
    """The client, but the step's second listing is refused (a 503 after the client's
    retries): verifying a batch is two listings, the archived ones and what still matches."""

    def __init__(self, client) -> None:
        self.client, self.listings = client, 0

    def iter_contacts(self, filters=(), sort=None):
        self.listings += 1
        if self.listings == 2:
            raise cliniko_errors.ServerError("503 after retries", status_code=503)
        return self.client.iter_contacts(filters, sort)

    def archive_contact(self, contact_id):
        return self.client.archive_contact(contact_id)


def test_what_a_verify_counted_is_not_counted_again_after_a_refusal(world):
    # Verifying counted the cut step's archives but kept them in the batch until its second
    # listing; that one refused, the count was saved with the batch, and the next step counted
    # them again.
    ids = world.seed_matching(5)
    state = world.start(rule())
    with pytest.raises(Killed):
        world.step(state, rule(), out_of_time=after_calls(1, Killed()))
    for contact_id in ids[:2]:
        world.client.archive_contact(contact_id)
    world.step(state, rule(), client=RefusesItsSecondListing(world.client))

    outcome, final = world.step(state, rule())

    assert outcome.next == "done"
    assert (final.rules[0].matched, final.rules[0].archived) == (5, 5)
    assert world.archive_requests() == Counter(dict.fromkeys(ids, 1))


class ArchiveFindsOneGone:
    """The client, but one contact is gone when its archive comes (removed since its batch
    was found): Cliniko answers 404."""

    def __init__(self, client, gone: str) -> None:
        self.client, self.gone = client, gone

    def iter_contacts(self, filters=(), sort=None):
        return self.client.iter_contacts(filters, sort)

    def archive_contact(self, contact_id):
        if contact_id == self.gone:
            raise cliniko_errors.NotFound("404 Not Found", status_code=404)
        return self.client.archive_contact(contact_id)


def test_a_contact_gone_before_its_archive_is_not_a_failure_nor_the_run_s_archive(world):
    # Nothing is left to archive: no refusal to count, list or alarm on (CleanupFailed). Nor
    # is it this run's archive (staff archived it, or it was deleted): counted and listed as
    # gone, where an undo of the run's archives would not unarchive it, and out of the
    # ledger's active set, which Cliniko's lists would never take it out of.
    ids = world.seed_matching(3)
    state = world.start(rule())
    outcome, final = world.step(state, rule(), client=ArchiveFindsOneGone(world.client, ids[1]))
    assert outcome.next == "done"
    (progress,) = final.rules
    assert (progress.failed, progress.failed_ids, progress.error) == (0, [], None)
    assert (progress.archived, progress.gone) == (2, 1)
    assert world.runs.contact_ids(state.run_id, "gone") == {progress.rule: [ids[1]]}
    assert sorted(world.runs.contact_ids(state.run_id, "archived")[progress.rule]) == sorted(
        [ids[0], ids[2]]
    )
    assert world.archived() == {ids[0], ids[2]} and world.active() == []


def test_a_rule_on_the_intake_s_contacts_never_archives_one_it_did_not_ask_about(world):
    # The rule asks Cliniko about the ledger's ids: a listing that holds another contact (the
    # id filter ignored) stops the rule; archived, staff's own contacts would have gone.
    world.seed_matching(2)
    world.seed(
        {"first_name": "S", "email": "staff@example.com", "created_at": ago(30)}, from_intake=False
    )
    state = world.start(rule())

    _, final = world.step(state, rule(), client=DropsFilters(world.client, "id"))

    (progress,) = final.rules
    assert world.archived() == set()
    assert progress.stopped and progress.error == "cliniko_UnexpectedResponse", progress


@pytest.mark.parametrize(
    ("dropped", "from_intake"),
    [("email", True), ("email", False), ("created_at", True), ("created_at", False)],
)
def test_a_rule_whose_filter_cliniko_drops_archives_nothing_it_does_not_select(
    world, dropped, from_intake
):
    # A Cliniko (or a proxy) that drops one of the rule's filters lists contacts the rule does
    # not select: on an email pattern, every intake contact; with created_by_intake: false,
    # staff's own. The rule stops at the first, before its batch is archived.
    world.seed_matching(2, from_intake=from_intake)
    (outside,) = world.seed(
        {"first_name": "P", "email": "p@clinic-patient.org", "created_at": ago(30)}
        if dropped == "email"
        else {"first_name": "N", "email": "new@example.com", "created_at": ago(1)},
        from_intake=from_intake,
    )
    chosen = rule(created_by_intake=from_intake)
    state = world.start(chosen)

    _, final = world.step(state, chosen, client=DropsFilters(world.client, dropped))

    (progress,) = final.rules
    assert outside not in world.archived()
    assert world.archived() == set()
    assert progress.stopped and progress.error == "cliniko_UnexpectedResponse", progress


def test_a_contact_two_rules_match_is_archived_and_counted_by_one(world):
    # The first rule's step is cut mid-batch; the second rule took what was left of it, and
    # the first rule's verify then counted those as its own too: reported under both.
    ids = world.seed_matching(5)
    first = rule("rule-a")
    second = rule("rule-b", where=[{"field": "created_at", "op": "older_than_days", "value": 7}])
    state = world.start(first, second)
    world.step(state, first, second, out_of_time=after_calls(3))
    while (stepped := world.step(state, first, second))[0].next != "done":
        pass

    final = stepped[1]
    reported = world.runs.contact_ids(state.run_id, "archived")
    assert sum(p.archived for p in final.rules) == 5
    assert set(reported.get("rule-a", [])).isdisjoint(reported.get("rule-b", []))
    assert set(reported.get("rule-a", [])) | set(reported.get("rule-b", [])) == set(ids)
    assert world.archive_requests() == Counter(dict.fromkeys(ids, 1))


def older_than_a_week(name: str) -> CleanupRule:
    """A rule on every contact a week old: it matches whatever `rule()` matches, and more."""
    return rule(
        name,
        created_by_intake=False,
        where=[{"field": "created_at", "op": "older_than_days", "value": 7}],
    )


@pytest.mark.parametrize("first_rule_then", ["changed", "removed", "kept, a contact edited"])
def test_a_contact_in_a_cut_batch_is_still_archived_by_a_rule_that_matches_it(
    world, first_rule_then
):
    # Left out of every other rule while in the cut rule's batch, a contact was archived by no
    # rule when the cut rule stopped (changed, removed) or no longer matched it (edited).
    ids = world.seed_matching(5)
    first, second = rule("rule-a"), older_than_a_week("rule-b")
    state = world.start(first, second)
    _, cut = world.step(state, first, second, out_of_time=after_calls(3))
    rules: tuple[CleanupRule, ...] = (first, second)
    if first_rule_then == "changed":
        rules = (older_than_a_week("rule-a"), second)
    elif first_rule_then == "removed":
        rules = (second,)
    else:
        world.client.update_contact(cut.rules[0].pending[0], {"email": "x@example.net"})
    while world.step(state, *rules)[0].next != "done":
        pass
    assert world.archived() == set(ids)
    assert world.archive_requests() == Counter(dict.fromkeys(ids, 1))


def test_a_rule_on_every_contact_takes_the_intake_s_ones_out_of_the_ledger_too(world):
    # Archived by a rule that is not the intake's, a contact the intake made stayed in the
    # ledger's active set, and every intake rule's run asked Cliniko about it again.
    (made,) = world.seed({"first_name": "I", "email": "i@example.org", "created_at": ago(10)})
    (typed,) = world.seed(
        {"first_name": "S", "email": "s@example.org", "created_at": ago(10)}, from_intake=False
    )
    every = org_contacts_rule("every-contact")
    state = world.start(every)
    outcome, final = world.step(state, every)

    assert outcome.next == "done" and final.rules[0].archived == 2
    assert world.archived() == {made, typed}
    assert world.active() == []


def test_a_rule_on_updated_at_counts_what_a_cut_step_archived_though_archiving_moved_it(world):
    # Archiving moves updated_at: checked against the rule again, the contacts a cut step had
    # archived no longer matched, went uncounted and stayed active in the ledger for good.
    ids = world.seed(
        *(
            {
                "first_name": "T",
                "email": f"t{n}@example.com",
                "created_at": ago(90),
                "updated_at": ago(60),
            }
            for n in range(5)
        )
    )
    stale = rule("stale", where=[{"field": "updated_at", "op": "older_than_days", "value": 30}])
    state = world.start(stale)
    with pytest.raises(Killed):
        world.step(state, stale, out_of_time=after_calls(1, Killed()))
    for contact_id in ids[:2]:  # reached Cliniko before the kill, not recorded
        world.client.archive_contact(contact_id)

    outcome, final = world.step(state, stale)

    assert outcome.next == "done"
    assert world.archive_requests() == Counter(dict.fromkeys(ids, 1))
    assert final.rules[0].archived == 5
    assert world.active() == []


def test_a_rule_changed_or_removed_mid_run_stops_there_and_the_others_go_on(world):
    # A run lasts hours at 200 requests a minute; an operator who narrows a rule meanwhile (to
    # spare the contacts staff made) must not see more archived under what it said before.
    intake = world.seed_matching(150)
    staff = world.seed_matching(150, from_intake=False)
    broad, other = rule("broad", created_by_intake=False), rule("other")
    state = world.start(broad, other)
    world.step(state, broad, other, out_of_time=after_calls(1))  # the run is under way
    archived_before = world.archived()
    narrowed = rule("broad")  # the file now says created_by_intake: true
    while (result := world.step(state, narrowed, other))[0].next != "done":
        pass
    final = result[1]
    assert [(p.rule, p.phase, p.error, p.stopped) for p in final.rules] == [
        ("broad", "done", "rule_changed", True),
        ("other", "done", None, False),
    ]
    assert set(staff) & world.archived() <= archived_before  # no staff contact since
    # Taken out of the file altogether: the same, by its own reason, not a failed step.
    state = world.start(rule("gone"), other)
    _, final = world.step(state, other)
    assert (final.rules[0].error, final.rules[0].stopped) == ("rule_removed", True)
    assert set(intake) <= world.archived()


@pytest.mark.parametrize("edit", ["changed", "removed"])
def test_a_rule_stopped_mid_batch_counts_what_a_cut_step_archived_of_it(world, edit):
    # A step dies after two archives reached Cliniko, before its checkpoint; the operator then
    # edits the rule. Dropped uncounted, those two were missing from the run's report (what an
    # undo reads) and stayed active in the ledger, asked about on every run.
    ids = world.seed_matching(5)
    original = rule()
    state = world.start(original)
    with pytest.raises(Killed):  # the batch is found and checkpointed, then the step dies
        world.step(state, original, out_of_time=after_calls(1, Killed()))
    for contact_id in ids[:2]:  # two archives that reached Cliniko before it died
        world.client.archive_contact(contact_id)
    narrowed = rule(where=[{"field": "email", "op": "like", "value": "%@example.org"}])

    _, final = world.step(state, *([narrowed] if edit == "changed" else []))

    (progress,) = final.rules
    assert (progress.error, progress.stopped) == (f"rule_{edit}", True)
    assert progress.archived == 2
    assert sorted(world.runs.contact_ids(state.run_id, "archived")[progress.rule]) == sorted(
        ids[:2]
    )
    assert set(ids[:2]).isdisjoint(world.active()) and set(ids[2:]) <= set(world.active())
    assert world.archived() == set(ids[:2])  # nothing more under what the rule said before


def test_a_run_stored_with_its_rules_json_goes_on_and_still_tells_a_changed_rule(world):
    # Runs stored before the state kept a rule's fingerprint kept the rule itself (its values
    # may be a person's email): they go on after the upgrade, and still stop on a change.
    world.seed_matching(3)
    same, changed = rule("same"), rule("changed")
    stored = [
        dataclasses.replace(RuleProgress.start(r), definition=r.model_dump(mode="json"))
        for r in (same, changed)
    ]
    state = RunState(uuid.uuid4().hex, False, NOW.isoformat(), stored)
    world.runs.create("cleanup_rules", state)

    _, final = world.step(state, same, rule("changed", created_by_intake=False))

    assert [(p.rule, p.error, p.stopped) for p in final.rules] == [
        ("same", None, False),
        ("changed", "rule_changed", True),
    ]
    assert final.rules[0].archived == 3


def test_rules_take_turns_so_a_backlog_never_starves_the_others(world):
    backlog = world.seed_matching(500)
    (other,) = world.seed(
        {"first_name": "O", "email": "o@example.org", "created_at": ago(10)}, from_intake=False
    )
    big = rule("big-backlog")
    small = org_contacts_rule("other-rule")
    state = world.start(big, small)

    # A step with time for two turns only: the backlogged rule gets one, the other one too.
    outcome, after = world.step(state, big, small, out_of_time=after_calls(2 + 100 + 1))

    assert outcome.next == "step"
    assert other in world.archived()
    assert after.rules[1].phase == "done" and after.rules[1].archived == 1
    assert after.rules[0].archived == 100 < len(backlog)
    assert after.next_rule == 0  # the backlog's turn again


def test_rate_limited_keeps_the_rule_and_asks_for_a_wait(aws, cliniko):
    world = World(cliniko, retry_policy=RetryPolicy.within(0.5))
    ids = world.seed_matching(3)
    state = world.start(rule())
    cliniko.control.set_faults(throttle_window_s=2, methods=["POST"])

    outcome, after = world.step(state, rule())

    assert outcome.next == "wait" and outcome.wait_seconds >= 1
    assert after.rules[0].phase == "archive" and after.rules[0].error == "cliniko_RateLimited"
    cliniko.control.clear_faults()
    # The state machine's Wait: the 429 holds the key's budget until the announced reset.
    time.sleep(outcome.wait_seconds)
    outcome, final = world.step(state, rule())
    assert outcome.next == "done"
    assert world.archived() == set(ids)
    assert final.rules[0].archived == 3


def test_a_reset_further_than_a_window_is_waited_a_window_at_most(aws, cliniko):
    # Cliniko's clock 10 minutes ahead of this machine's (its Date not believed): its reset
    # reads 10 minutes away, and the run waited that long for a window that had reset
    # within the minute. It waits what the key's budget holds: 65 s at most.
    world = World(cliniko, retry_policy=RetryPolicy.within(0.5))
    world.seed_matching(3)
    state = world.start(rule())
    cliniko.control.set_skew(600)
    cliniko.control.set_faults(fail_next=[429], methods=["POST"])

    outcome, after = world.step(state, rule())

    assert after.rules[0].error == "cliniko_RateLimited"
    assert outcome.next == "wait" and 60 <= outcome.wait_seconds <= 66


def test_rules_beyond_the_ledger_page_cliniko_by_id(world):
    # More than one batch (100), fewer than 200 requests: the test never waits for a new minute.
    staff = world.seed_matching(130, from_intake=False)
    (real,) = world.seed(
        {"first_name": "R", "email": "r@clinic.example", "created_at": ago(10)}, from_intake=False
    )
    any_contact = rule(created_by_intake=False)

    plan, planned = world.step(world.start(any_contact, dry_run=True), any_contact)
    assert plan.next == "done" and planned.rules[0].matched == 130
    assert world.archived() == set()

    outcome, final = world.step(world.start(any_contact), any_contact)

    assert outcome.next == "done"
    assert world.archived() == set(staff)
    assert world.archive_requests() == Counter(dict.fromkeys(staff, 1))
    assert final.rules[0].archived == 130
    assert real not in world.archived()


def test_contacts_cliniko_refuses_are_reported_and_left_active(aws, cliniko):
    read_only = "MS0xreadonlykey000000000000-au1"
    cliniko.control.add_key(read_only, read_only=True)  # a user without archive permission
    world = World(cliniko, api_key=read_only)
    ids = world.seed_matching(3)
    state = world.start(rule())

    outcome, final = world.step(state, rule())

    assert outcome.next == "done"
    (progress,) = final.rules
    assert (progress.matched, progress.archived, progress.failed) == (3, 0, 3)
    assert progress.error == "cliniko_Forbidden" and sorted(progress.failed_ids) == sorted(ids)
    # Refused on its last (only) batch, the rule stopped: not a rule that did its work.
    assert progress.stopped
    # Still active: the next run tries them again.
    assert sorted(world.active()) == sorted(ids)


def test_entries_from_before_the_ledger_had_states_are_backfilled_once(world):
    (old,) = world.seed_matching(1, from_intake=False)
    # As the intake wrote entries before they had a state: not in the active index.
    boto3.client("dynamodb").put_item(
        TableName=world.ledger._table,
        Item={
            "contact_id": {"S": old},
            "account": {"S": "clinic"},
            "source": {"S": "form"},
            "submission_id": {"S": "sub"},
            "created_at": {"S": ago(30)},
        },
    )
    assert world.active() == []

    assert world.ledger.activate_unmarked() == 1
    assert world.ledger.activate_unmarked() == 0
    assert world.active() == [old]
    world.step(world.start(rule()), rule())
    assert world.archived() == {old}


def on_a_clock(cliniko, contacts: int):
    """A run of `rule()` over `contacts` matching contacts, its steps on the clock `now[0]`
    (Cliniko's requests tried once): the world, the ids, the clock and `step() -> (outcome,
    the rule's progress)`, which takes `World.step`'s options."""
    world = World(cliniko, retry_policy=RetryPolicy(max_attempts=1))
    ids = world.seed_matching(contacts)
    state = world.start(rule())
    now = [NOW]
    world.clock = lambda: now[0]

    def step(**options):
        outcome, loaded = world.step(state, rule(), **options)
        return outcome, loaded.rules[0]

    return world, ids, now, step


def test_a_rule_cliniko_fails_for_hours_stops_so_the_run_ends_and_alarms(aws, cliniko):
    # Cliniko ends a query running over 30 s in 504: a rule whose listing always runs that long
    # (a wide filter on a large account) met 504 at every step, and the run waited and stepped
    # forever: holding the lock, it turned every scheduled run away, and nothing alarmed.
    world, ids, now, step = on_a_clock(cliniko, 3)

    cliniko.control.set_faults(error_rate=1.0, statuses=[504], methods=["GET"])
    outcome, progress = step()
    assert outcome.next == "wait" and progress.error == "cliniko_ServerError"
    # An outage of hours is ridden out, the rule kept.
    now[0] += dt.timedelta(hours=5)
    assert step()[0].next == "wait"
    # A turn Cliniko answers starts the count again.
    cliniko.control.clear_faults()
    now[0] += dt.timedelta(minutes=1)
    # (Cut after its find: the batch is left to archive.)
    step(out_of_time=after_calls(1))
    cliniko.control.set_faults(error_rate=1.0, statuses=[504], methods=["GET"])
    now[0] += dt.timedelta(hours=5)
    assert step()[0].next == "wait"
    now[0] += dt.timedelta(hours=5, minutes=59)
    assert step()[0].next == "wait"
    # Failing past FAILING_FOR_SECONDS: the rule stops (CleanupStoppedAlarm), the run finishes
    # and releases the lock; the next scheduled run tries the contacts again.
    now[0] += dt.timedelta(minutes=2)
    outcome, progress = step()
    assert outcome.next == "done"
    assert progress.stopped and progress.error == "cliniko_ServerError"
    assert sorted(world.active()) == sorted(ids)


def test_turns_that_archive_before_a_5xx_are_not_hours_of_failing(aws, cliniko):
    # A Cliniko answering the odd archive 5xx: each turn archived some of the batch, then met
    # one, and the 6 h count went on from the first, so a long batch beside a flaky Cliniko
    # stopped its rule as though Cliniko had not answered for hours.
    world, ids, now, step = on_a_clock(cliniko, 8)

    for failing in (ids[1], ids[3], ids[5]):  # each turn: one archived, then a 500
        cliniko.control.set_faults(
            error_rate=1.0, statuses=[500], paths=[f"/contacts/{failing}/archive"]
        )
        outcome, progress = step()
        assert outcome.next == "wait" and not progress.stopped
        now[0] += dt.timedelta(hours=4)

    cliniko.control.clear_faults()
    outcome, progress = step()
    assert outcome.next == "done" and (progress.archived, progress.failed) == (8, 0)
    assert world.archived() == set(ids)


@pytest.mark.parametrize(("position", "steps"), [(1, 3), (0, 4)], ids=["second", "first"])
def test_a_contact_cliniko_never_archives_fails_alone_and_the_batch_goes_on(
    aws, cliniko, position, steps
):
    # One contact whose archive always answers 500 (its own data trips Cliniko up) held up its
    # whole batch and rule: every turn began with it, rested 30 s, and met it again, until the
    # rule stopped after FAILING_FOR_SECONDS, every run, with the contacts after it never
    # archived.
    world = World(cliniko, retry_policy=RetryPolicy(max_attempts=1))
    ids = world.seed_matching(5)
    stuck = ids[position]
    state = world.start(rule())
    cliniko.control.set_faults(error_rate=1.0, statuses=[500], paths=[f"/contacts/{stuck}/archive"])

    outcomes = [world.step(state, rule()) for _ in range(steps)]

    assert [outcome.next for outcome, _ in outcomes] == ["wait"] * (steps - 1) + ["done"]
    progress = outcomes[-1][1].rules[0]
    assert (progress.archived, progress.failed, progress.failed_ids) == (4, 1, [stuck])
    assert progress.error == "cliniko_ServerError" and not progress.stopped
    assert world.archived() == set(ids) - {stuck}
    # Tried again on each turn (blamed only once Cliniko had archived others), then let be.
    assert world.archive_requests()[stuck] == steps
    assert world.active() == [stuck]  # the next run tries it again


@pytest.mark.parametrize("down", [["POST"], ["GET", "POST"]], ids=["writes", "everything"])
def test_while_cliniko_fails_every_archive_no_contact_is_blamed(aws, cliniko, down):
    # Archives that fail for everyone (an outage, or only writes refused in a maintenance
    # window) are waited out: a contact counts as failed only when its archive fails while
    # Cliniko archives the batch's others, and here none does until the outage ends.
    world = World(cliniko, retry_policy=RetryPolicy(max_attempts=1))
    ids = world.seed_matching(3)
    state = world.start(rule())
    # (Found before the outage: the batch is left to archive.)
    world.step(state, rule(), out_of_time=after_calls(1))
    cliniko.control.set_faults(error_rate=1.0, statuses=[503], methods=down)

    for _ in range(15):  # every contact tried five times over
        outcome, progress = world.step(state, rule())
        assert outcome.next == "wait" and progress.rules[0].failed == 0

    cliniko.control.clear_faults()
    outcome, final = world.step(state, rule())
    assert outcome.next == "done"
    assert (final.rules[0].archived, final.rules[0].failed) == (3, 0)
    assert world.archived() == set(ids)


def test_two_contacts_cliniko_never_archives_at_a_batch_end_both_fail_alone(aws, cliniko):
    # Once the rest of the batch is archived, the two fail by turns, and no turn archives
    # another: as a write outage looks. Read as one (blaming neither), they held the rule up
    # for FAILING_FOR_SECONDS, every run; a contact of the batch once archived, they are
    # blamed, and both end counted as failed.
    world = World(cliniko, retry_policy=RetryPolicy(max_attempts=1))
    ids = world.seed_matching(5)
    stuck = ids[3:]
    state = world.start(rule())
    cliniko.control.set_faults(
        error_rate=1.0, statuses=[500], paths=[f"/contacts/{i}/archive" for i in stuck]
    )

    outcomes = [world.step(state, rule()) for _ in range(6)]

    assert outcomes[-1][0].next == "done"
    progress = outcomes[-1][1].rules[0]
    assert (progress.archived, progress.failed, sorted(progress.failed_ids)) == (
        3,
        2,
        sorted(stuck),
    )
    assert world.archived() == set(ids[:3])


def stamp(moment: dt.datetime) -> str:
    return moment.astimezone(dt.UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


@pytest.mark.parametrize(
    "started",
    [
        # Sydney leaves daylight saving at 03:00 AEDT on 5 April 2026 (clocks back to 02:00):
        # a run started at 09:00 AEST that morning, its cutoff a week back in AEDT.
        dt.datetime(2026, 4, 4, 23, 0, tzinfo=dt.UTC),
        # A leap day, and the last fraction of a second of a month.
        dt.datetime(2028, 2, 29, 12, 0, tzinfo=dt.UTC),
        dt.datetime(2026, 3, 31, 23, 59, 59, 600_000, tzinfo=dt.UTC),
        # Started in the clinic's own zone: the same moment, the same cutoff.
        dt.datetime(2026, 10, 4, 9, 0, tzinfo=dt.timezone(dt.timedelta(hours=11))),
    ],
    ids=["sydney-dst-ends", "leap-day", "month-end-fraction", "local-offset"],
)
def test_an_age_rule_counts_whole_days_of_24_hours_back_from_the_run_s_start(world, started):
    # `older_than_days: 7` is 7 x 24 hours before the run began (whole seconds, UTC), whatever
    # the calendar or a zone's clock change did in between: older is archived, the same
    # second or later is not. A clinic's "a week" in local time may differ by the hour a
    # daylight-saving change moved its clocks.
    cutoff = (started - dt.timedelta(days=7)).replace(microsecond=0)
    second = dt.timedelta(seconds=1)
    older, at, newer = world.seed(
        *(
            {"first_name": "T", "email": f"t{n}@example.com", "created_at": stamp(moment)}
            for n, moment in enumerate((cutoff - second, cutoff, cutoff + second))
        )
    )
    rule_ = rule("week-old")
    state = RunState(
        run_id=uuid.uuid4().hex,
        dry_run=False,
        started_at=started.isoformat(),
        rules=[RuleProgress.start(rule_)],
    )
    world.runs.create("cleanup_rules", state)

    outcome, done = world.step(state, rule_)

    assert outcome.next == "done"
    assert (done.rules[0].matched, done.rules[0].archived) == (1, 1)
    assert world.archived() == {older}
    assert sorted(world.active()) == sorted([at, newer])
