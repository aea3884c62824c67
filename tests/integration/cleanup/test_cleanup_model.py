"""A randomized stateful model of the scheduled cleanup: hypothesis interleaves contacts the
intake makes (ledger entries) and staff make, staff editing, archiving and restoring them (also
between a rule's find and its archive), a person sending the form again with nothing new, time
passing (so age rules start and stop matching), runs begun (dry or archiving, one rule or all),
steps through the real handler, steps cut short, killed midway (between archives, or after an
archive reached Cliniko and before anything recorded it) and retried, a second run begun while
one goes on, a second execution taking a run over, and Cliniko faults (429 with
X-RateLimit-Reset, 5xx), against the emulator over HTTP and moto. Batches are 4 contacts, so a
handful of contacts makes many batches and cursors.

Cliniko's clock and the cleanup's (a run's `started_at`, the step's re-check clock) are one
virtual clock, so days pass at will.

Invariants (README "Scheduled cleanup"):
- a dry run archives nothing and changes no ledger entry (its report only);
- a contact is archived only if a rule of its run selected it at the moment of the archive,
  ages measured from the run's start, the ledger's last submission counting as a touch; the
  one allowance is the README's: a contact changed within the last minute (RECHECK_SECONDS)
  before its archive, while the step went on (a change before the step began is for its find
  or its re-check of the batch to see);
- every contact that a rule of a completed archiving run selected when the run began, and that
  nobody touched while it went on, is archived by the end of it;
- at the end of every run, the ledger says archived for every intake contact a run archived,
  and an entry it says archived is archived in Cliniko unless staff restored it since (staff
  archives are not the ledger's business: such an entry stays active);
- one run at a time: a begin while a run holds the lock is refused naming it, an execution
  whose run was taken over stops with nothing archived;
- no name or email of a contact in any log line.
"""

from __future__ import annotations

import datetime as dt
import secrets
import types
from collections import Counter
from typing import Any, ClassVar

import boto3
import pytest
import yaml
from cliniko_automations.cleanup import actions, core, handler
from cliniko_automations.cleanup.config import CleanupRules
from cliniko_automations.cleanup.core import RECHECK_SECONDS
from cliniko_automations.cleanup.runs import DynamoRuns
from cliniko_automations.cliniko import ClinikoClient
from cliniko_automations.common.ledger import DynamoLedger, LedgerEntry
from hypothesis import strategies as st
from hypothesis.stateful import (
    RuleBasedStateMachine,
    initialize,
    invariant,
    precondition,
    rule,
    run_state_machine_as_test,
)

from tests.fixtures.apigw import LambdaContext
from tests.fixtures.state_machines import (
    a_fresh_start,
    assert_none_logged,
    assert_none_printed,
    cliniko_waits_pass_at_once,
    model_world,
    state_machine_settings,
    tapped_logs,
)
from tests.integration.cleanup.tables import create_cleanup_tables
from tests.integration.intake_worker.resources import (
    USER_AGENT,
    put_secrets,
    write_worker_config,
)

ACCOUNT = "test-clinic"
RULES = """\
rules:
  - name: form-tests
    account: test-clinic
    where:
      - {field: email, op: like, value: "%@example.com"}
      - {field: created_at, op: older_than_days, value: 7}
  - name: stale-intake
    account: test-clinic
    where:
      - {field: updated_at, op: older_than_days, value: 30}
  - name: stale-any
    account: test-clinic
    created_by_intake: false
    where:
      - {field: updated_at, op: older_than_days, value: 60}
"""
RULE_NAMES = ("form-tests", "stale-intake", "stale-any")
BATCH = 4
DAY = 86400
EXECUTION = "arn:aws:states:eu-west-1:123456789012:execution:stack-cleanup:"


class Killed(BaseException):
    """The Lambda dying: nothing after it runs, no handler catches it."""


class Clock:
    """Cliniko's time and the cleanup's: whole seconds."""

    now = dt.datetime.now(dt.UTC).replace(microsecond=0)


class _VirtualDatetime(dt.datetime):
    @classmethod
    def now(cls, tz: dt.tzinfo | None = None) -> dt.datetime:  # type: ignore[override]
        return Clock.now if tz is None else Clock.now.astimezone(tz)


# What `actions` (a run's started_at) and `core` (the step's re-check clock) see as `dt`.
VIRTUAL_DT = types.SimpleNamespace(
    datetime=_VirtualDatetime, timedelta=dt.timedelta, UTC=dt.UTC, timezone=dt.timezone
)


def iso(moment: dt.datetime) -> str:
    return moment.astimezone(dt.UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


class KilledContext(LambdaContext):
    """A context whose `kill_after`-th question about the time left kills the invocation
    (a question asked before each Cliniko request, each archive and each batch), or, with
    `cut_after`, answers that time is up from then on (the step checkpoints and ends)."""

    def __init__(self, kill_after: int | None = None, cut_after: int | None = None) -> None:
        super().__init__(function_name="CleanupFunction", timeout_ms=900_000)
        self.kill_after, self.cut_after, self.asked = kill_after, cut_after, 0

    def get_remaining_time_in_millis(self) -> int:
        self.asked += 1
        if self.kill_after is not None and self.asked >= self.kill_after:
            raise Killed
        if self.cut_after is not None and self.asked >= self.cut_after:
            return 1_000
        return super().get_remaining_time_in_millis()


class CleanupModel(RuleBasedStateMachine):
    world: ClassVar[dict[str, Any]] = {}

    def __init__(self) -> None:
        super().__init__()
        w = self.world
        self.emulator, self.control, self.mp = w["emulator"], w["control"], w["mp"]
        a_fresh_start(self.mp, w["moto"])
        self.control.reset()
        self.control.set_rate_limit(None)
        self.api_key = f"MS0xtest{secrets.token_hex(12)}-au1"
        self.control.add_key(self.api_key)
        w["n"] += 1
        directory = w["tmp"] / f"example{w['n']}"
        directory.mkdir()
        ledger_table, runs_table = create_cleanup_tables(f"m{w['n']}")
        put_secrets({"tests/cliniko/test-clinic": self.api_key})
        rules = directory / "cleanup_rules.yaml"
        rules.write_text(RULES, encoding="utf-8")
        self.rules = {r.name: r for r in CleanupRules.model_validate(yaml.safe_load(RULES)).rules}
        for name, value in {
            "LEDGER_TABLE": ledger_table,
            "CLEANUP_RUNS_TABLE": runs_table,
            "CLINIKO_USER_AGENT": USER_AGENT,
            "CLINIKO_BASE_URL": self.emulator.base_url_template,
            "CLINIKO_ACCOUNTS_FILE": str(write_worker_config(directory)),
            "CLEANUP_RULES_FILE": str(rules),
        }.items():
            self.mp.setenv(name, value)
        self.mp.delenv("CLEANUP_DRY_RUN", raising=False)
        dynamodb = boto3.client("dynamodb")
        self.ledger_table = ledger_table
        self.ledger = DynamoLedger(dynamodb, ledger_table)
        self.runs = DynamoRuns(dynamodb, runs_table)
        self.store = self.emulator.app.store
        Clock.now = dt.datetime.now(dt.UTC).replace(microsecond=0)
        self.n = 0
        self.intake: dict[str, bool] = {}  # contact id -> made by the intake (in the ledger)
        self.sent: dict[str, dt.datetime] = {}  # the ledger's last_submission_at
        self.touched: dict[str, list[dt.datetime]] = {}  # staff or the person, when
        self.by_cleanup: set[str] = set()  # archived by a run (or found archived in its batch)
        self.restored: set[str] = set()  # restored by staff after a run archived it
        self.run: dict[str, Any] | None = None
        self.executions = 0
        self.in_step = False
        self.meanwhile: tuple[int, str, int] | None = None  # staff act as the first archive goes
        self._undo: Any = None
        # Archives the cleanup made: (contact, its record then, when, its last submission).
        # Archives the cleanup made: (contact, its record then, when, its last submission,
        # whether the README's allowance covers it).
        self.archives: list[tuple[str, dict[str, Any], dt.datetime, Any, bool]] = []
        self.unreported: list[tuple[str, dict[str, Any], dt.datetime, Any, bool]] = []
        self.step_touches: dict[str, list[dt.datetime]] = {}
        self.values: set[str] = set()
        self.log = w["log"]
        self.log.lines.clear()
        self.mp.setattr(self.store, "archive", self._archive_seen)

    def teardown(self) -> None:
        TALLY["examples"] += 1
        self.emulator.app.faults.reset()
        report = self.control.violations()
        assert not report["request"] and not report["response"], report

    # -- Cliniko's side ------------------------------------------------------------------------

    def _archive_seen(self, shard: str, contact_id: str) -> dict[str, Any]:
        """Every archive Cliniko carries out: the cleanup's are checked against its rules as
        the contact is at that moment (`_check_archives`)."""
        real = type(self.store).archive
        if self.in_step:
            if self.meanwhile is not None:
                index, kind, jump = self.meanwhile
                self.meanwhile = None
                # One the run archives next: in the batch checkpointed before this archive,
                # else one its rules select.
                run = self.run
                assert run is not None
                state = self.runs.load(run["run_id"])
                others = [c for p in state.rules for c in p.pending if c != contact_id]
                if not others:
                    selected = self._selected_now(run["names"], run["started"])
                    others = sorted(selected - {contact_id}, key=int)
                if others:
                    self._staff(others[index % len(others)], kind)
                    TALLY[f"staff {kind} between a find and its archive"] += 1
                Clock.now += dt.timedelta(seconds=jump)
            record = self.store.get(shard, contact_id)
            if record["archived_at"] is None:
                # The README's allowance: changed within the minute before its archive, while
                # the step went on (a change before the step began is for its find to see).
                allowed = any(
                    t >= Clock.now - dt.timedelta(seconds=RECHECK_SECONDS)
                    for t in self.step_touches.get(contact_id, [])
                )
                self.archives.append(
                    (contact_id, record, Clock.now, self.sent.get(contact_id), allowed)
                )
            else:  # staff archived it first: nothing to check, the ledger must say archived
                self.by_cleanup.add(contact_id)
        return real(self.store, shard, contact_id)

    def _contact(self, intake: bool, test_email: bool, age_days: int, idle_days: int) -> str:
        self.n += 1
        first, last = f"Qzf{self.n}x", f"Qzl{self.n}x"
        email = f"qz{self.n}x@" + ("example.com" if test_email else "clinic.example")
        self.values |= {first, last, email}
        _ALL_VALUES.update((first, last, email))
        created = Clock.now - dt.timedelta(days=age_days)
        updated = max(created, Clock.now - dt.timedelta(days=idle_days))
        (cid,) = self.control.seed(
            contacts=[
                {
                    "first_name": first,
                    "last_name": last,
                    "email": email,
                    "created_at": iso(created),
                    "updated_at": iso(updated),
                }
            ]
        )
        self.intake[cid] = intake
        if intake:
            self.ledger.record(LedgerEntry(cid, ACCOUNT, "form", f"sub-{self.n}", iso(created)))
        return cid

    ages = st.sampled_from([90, 40, 10, 3, 0])

    @initialize(
        contacts=st.lists(
            st.tuples(st.booleans(), st.booleans(), ages, ages, st.sampled_from([None, 0, 20])),
            min_size=3,
            max_size=9,
        )
    )
    def contacts_before_the_first_run(
        self, contacts: list[tuple[bool, bool, int, int, int | None]]
    ) -> None:
        """Made by the intake or staff, `age` days ago, changed `idle` days ago; an intake
        contact's person may have sent the form again `resent` days ago, changing nothing."""
        for intake, test_email, age, idle, resent in contacts:
            cid = self._contact(intake, test_email, age, idle)
            if intake and resent is not None:
                self.sent[cid] = Clock.now - dt.timedelta(days=resent)
                self.ledger.seen(cid, self.sent[cid].isoformat())

    @initialize(
        start=st.sampled_from([False, False, None, True]),
        which=st.sampled_from([None, *RULE_NAMES]),
    )
    def a_run_may_be_under_way(self, start: bool | None, which: str | None) -> None:
        if start is not None:
            self._begin(start, which)

    @rule(intake=st.booleans(), test_email=st.booleans(), age=ages, idle=ages)
    def a_contact_is_made(self, intake: bool, test_email: bool, age: int, idle: int) -> None:
        """By the intake (with a ledger entry) or by staff; ages stand for an older import."""
        cid = self._contact(intake, test_email, age, idle)
        if self.run is not None:
            self._touch(cid)

    def _touch(self, cid: str) -> None:
        if self.in_step:
            self.step_touches.setdefault(cid, []).append(Clock.now)
        self.touched.setdefault(cid, []).append(Clock.now)

    def _staff(self, cid: str, kind: str) -> None:
        """What staff do in Cliniko's app, or the person through the form (`resubmit`)."""
        self._touch(cid)
        record = self.store.get("au1", cid)
        if kind == "edit":
            self.store.update("au1", cid, {"occupation": f"Occ{len(self.touched[cid])}"})
        elif kind == "email":
            self.store.update("au1", cid, {"email": f"qz{cid}moved@clinic.example"})
        elif kind == "archive_or_restore":
            if record["archived_at"] is None:
                type(self.store).archive(self.store, "au1", cid)
            else:
                self.store.unarchive("au1", cid)
                self.restored.add(cid)
        elif kind == "resubmit":
            # The intake met the contact and found nothing to change (ledger.seen); a staff
            # contact gets no entry.
            self.ledger.seen(cid, Clock.now.isoformat())
            if self.intake[cid]:
                self.sent[cid] = Clock.now

    staff_kinds = st.sampled_from(["edit", "email", "archive_or_restore", "resubmit"])

    @precondition(lambda self: self.intake)
    @rule(i=st.integers(0, 50), kind=staff_kinds, in_a_batch=st.booleans())
    def staff_act(self, i: int, kind: str, in_a_batch: bool) -> None:
        """On any contact, or on one in a batch a cut or killed step left to archive."""
        TALLY["staff act"] += 1
        candidates = list(self.intake)
        if kind == "resubmit":  # the person behind a form contact, if there is one
            candidates = [c for c, made in self.intake.items() if made] or candidates
        if in_a_batch and self.run is not None:
            state = self.runs.load(self.run["run_id"])
            pending = [c for p in state.rules for c in p.pending]
            if pending:
                candidates = pending
                TALLY[f"staff {kind} on a batch found, not yet archived"] += 1
        self._staff(candidates[i % len(candidates)], kind)

    @rule(seconds=st.sampled_from([30, 61, 3600, 3 * DAY, 8 * DAY, 31 * DAY, 61 * DAY]))
    def time_passes(self, seconds: int) -> None:
        TALLY["time passes"] += 1
        Clock.now += dt.timedelta(seconds=seconds)

    # -- the model of a rule -------------------------------------------------------------------

    def _selects(
        self, name: str, started: dt.datetime, record: dict[str, Any], sent: dt.datetime | None
    ) -> bool:
        """README: all conditions hold (ages from the run's start, whole seconds), an
        intake-only rule selects the ledger's contacts alone, and an updated_at age counts
        the ledger's last submission too."""
        rule_ = self.rules[name]
        cid = record["id"]
        if record["archived_at"] is not None:
            return False
        if rule_.created_by_intake and not self.intake[cid]:
            return False
        for condition in rule_.where:
            if condition.field == "email":
                if not (record["email"] or "").endswith("@example.com"):
                    return False
            else:
                cutoff = condition.cutoff(started)
                if not _aware(record[condition.field]) < cutoff:
                    return False
                if condition.field == "updated_at" and sent is not None and sent >= cutoff:
                    return False
        return True

    def _selected_now(self, names: list[str], started: dt.datetime) -> set[str]:
        found = set()
        ledger = self._ledger_items()
        for cid in self.intake:
            record = self.store.get("au1", cid)
            for name in names:
                if self.rules[name].created_by_intake and not ledger.get(cid, ("", False))[1]:
                    continue  # out of the ledger's active set: an intake rule never asks
                if self._selects(name, started, record, self.sent.get(cid)):
                    found.add(cid)
        return found

    # -- the cleanup's side --------------------------------------------------------------------

    def _invoke(self, event: dict[str, Any], context: LambdaContext | None = None) -> Any:
        return handler.lambda_handler(
            event, context or LambdaContext(function_name="CleanupFunction", timeout_ms=900_000)
        )

    @precondition(lambda self: self.run is None)
    @rule(dry_run=st.sampled_from([False, False, True]), which=st.sampled_from([None, *RULE_NAMES]))
    def begin(self, dry_run: bool, which: str | None) -> None:
        self._begin(dry_run, which)

    def _begin(self, dry_run: bool, which: str | None) -> None:
        TALLY["begins"] += 1
        self.executions += 1
        execution = f"{EXECUTION}e{self.executions}"
        rules = None if which is None else [which]
        answer = self._invoke(
            {"action": "begin", "execution": execution, "dry_run": dry_run, "rules": rules}
        )
        if self.run is not None:
            # One run at a time: the second start is refused, naming the run going on.
            assert answer == {"next": "refused", "running": self.run["run_id"]}, answer
            TALLY["a second start refused"] += 1
            return
        assert answer["next"] == "step" and answer["dry_run"] is dry_run, answer
        names = list(RULE_NAMES) if which is None else [which]
        state = self.runs.load(answer["run_id"])
        started = dt.datetime.fromisoformat(state.started_at)
        assert started == Clock.now
        self.run = {
            "run_id": answer["run_id"],
            "execution": execution,
            "dry_run": dry_run,
            "names": names,
            "started": started,
            "expected": self._selected_now(names, started),
        }
        TALLY[f"run begun ({'dry' if dry_run else 'archive'})"] += 1

    def a_second_execution_takes_the_run_over(self) -> None:
        """A start retried after its answer was lost (or continue-as-new): the run goes on in
        the new execution; the old one's next step is refused and archives nothing."""
        assert self.run is not None
        self.executions += 1
        execution = f"{EXECUTION}e{self.executions}"
        answer = self._invoke(
            {"action": "begin", "execution": execution, "run_id": self.run["run_id"]}
        )
        assert answer["next"] == "step", answer
        old, self.run["execution"] = self.run["execution"], execution
        before = len(self.archives)
        self.in_step = True
        try:
            refused = self._invoke(
                {"action": "step", "run_id": self.run["run_id"], "iterations": 1, "execution": old}
            )
        finally:
            self.in_step = False
        assert refused["next"] == "refused", refused
        assert len(self.archives) == before
        TALLY["an execution taken over stopped"] += 1

    @precondition(lambda self: self.run is not None)
    @rule(
        staff=st.one_of(
            st.tuples(
                st.integers(0, 50),
                st.sampled_from(["edit", "email", "resubmit", "archive_or_restore"]),
                st.sampled_from([61, 200, 0]),
            ),
            st.none(),
        )
    )
    def step(self, staff: tuple[int, str, int] | None) -> None:
        """A step; with `staff`, as its first archive goes out, staff change (or the person
        resubmits) a contact the run archives next, and that archive takes some seconds."""
        self.meanwhile = staff
        self._step(None, "none" if staff is None else "staff_meanwhile")

    @precondition(lambda self: self.run is not None)
    @rule(
        trouble=st.sampled_from(
            ["cut", "killed", "killed_after_archive", "faults", "second_start", "taken_over"]
        ),
        data=st.data(),
    )
    def step_in_trouble(self, trouble: str, data: st.DataObject) -> None:
        assert self.run is not None
        context: LambdaContext | None = None
        if trouble == "second_start":
            self._begin(
                data.draw(st.booleans(), label="dry_run"),
                data.draw(st.sampled_from([None, *RULE_NAMES]), label="which"),
            )
        elif trouble == "taken_over":
            self.a_second_execution_takes_the_run_over()
        elif trouble == "cut":
            context = KilledContext(cut_after=data.draw(st.integers(1, 12), label="cut_after"))
        elif trouble == "killed":
            context = KilledContext(kill_after=data.draw(st.integers(1, 12), label="kill_after"))
        elif trouble == "killed_after_archive":
            self._kill_after_archive(data.draw(st.integers(1, 3), label="archive"))
        elif trouble == "faults":
            statuses = data.draw(
                st.lists(st.sampled_from([429, 500, 502, 503]), min_size=1, max_size=3),
                label="statuses",
            )
            methods = data.draw(st.sampled_from([["GET"], ["POST"], None]), label="methods")
            self.emulator.app.faults.configure({"fail_next": statuses, "methods": methods})
        self._step(context, trouble)

    def _kill_after_archive(self, number: int) -> None:
        """The step dies right after its `number`-th archive reached Cliniko, before the
        ledger or the checkpoint knows (the harshest cut)."""
        real = ClinikoClient.archive_contact
        calls = {"n": 0}

        def archive(client: ClinikoClient, contact_id: str) -> None:
            real(client, contact_id)
            calls["n"] += 1
            if calls["n"] == number:
                raise Killed

        self.mp.setattr(ClinikoClient, "archive_contact", archive)
        self._undo = lambda: self.mp.setattr(ClinikoClient, "archive_contact", real)

    def _step(self, context: LambdaContext | None, trouble: str) -> None:
        run = self.run
        assert run is not None
        before_ledger = self._ledger_items()
        before = len(self.archives)
        self.in_step, self.step_touches = True, {}
        killed = False
        try:
            answer = self._invoke(
                {
                    "action": "step",
                    "run_id": run["run_id"],
                    "iterations": 0,
                    "execution": run["execution"],
                },
                context,
            )
        except Killed:
            killed = True
            TALLY[f"a step killed ({trouble})"] += 1
        finally:
            self.in_step = False
            self.meanwhile = None
            self.emulator.app.faults.reset()
            undo = getattr(self, "_undo", None)
            if undo is not None:
                undo()
                self._undo = None
        TALLY[f"step ({trouble})"] += 1
        new = self.archives[before:]
        if run["dry_run"]:
            assert new == [], f"a dry run archived {[a[0] for a in new]}"
            assert self._ledger_items() == before_ledger, "a dry run changed the ledger"
        self.unreported += new
        self._check_archives()
        self.by_cleanup |= {event[0] for event in new}
        if killed:
            return
        assert answer["next"] in {"step", "wait", "done"}, answer
        TALLY[f"step: {answer['next']}"] += 1
        if answer["next"] == "done":
            self._run_finished()

    def _check_archives(self) -> None:
        """Each archive against the rule whose report lists it (a step killed right after an
        archive lists it in the next step, which asks about its batch again)."""
        run = self.run
        assert run is not None
        reported = self.runs.contact_ids(run["run_id"], "archived")
        waiting = []
        for event in self.unreported:
            cid, record, at, sent, allowed = event
            names = [name for name, ids in reported.items() if cid in ids]
            if not names:
                waiting.append(event)
                continue
            if any(self._selects(n, run["started"], record, sent) for n in names):
                TALLY["archives checked against their rule"] += 1
                continue
            assert allowed, (
                f"contact {cid} archived at {at} though the rule that did no longer selected it "
                f"(record {_brief(record)}, last submission {sent}, touched "
                f"{self.touched.get(cid)}, run started {run['started']}, rules {names})"
            )
            TALLY["archived within a minute of a change (README's allowance)"] += 1
        self.unreported = waiting

    def _run_finished(self) -> None:
        run = self.run
        assert run is not None
        state = self.runs.load(run["run_id"])
        assert state is not None and state.status == "finished"
        assert self.runs.holder("cleanup_rules") is None
        # The report lists every contact the run archived.
        assert not self.unreported, [event[0] for event in self.unreported]
        self.run = None
        untouched = {
            cid
            for cid in run["expected"]
            if not any(t >= run["started"] for t in self.touched.get(cid, []))
        }
        archived_now = {c["id"] for c in self.control.contacts() if c["archived_at"]}
        if run["dry_run"]:
            matched = {i for ids in self.runs.contact_ids(run["run_id"], "matched").values()
                       for i in ids}  # fmt: skip
            missing = untouched - matched
            assert not missing, f"a dry run's plan left out {missing}"
            TALLY["dry runs completed"] += 1
        else:
            missing = untouched - archived_now
            assert not missing, (
                f"a completed run left {missing} active, selected by {run['names']} when it "
                f"began and untouched since"
            )
            TALLY["archiving runs completed"] += 1
            TALLY["contacts expected archived by a completed run"] += len(untouched)
        self._check_ledger(archived_now)

    def _check_ledger(self, archived_now: set[str]) -> None:
        items = self._ledger_items()
        for cid, intake in self.intake.items():
            if not intake:
                assert cid not in items, f"a staff contact {cid} got a ledger entry"
                continue
            state, active = items[cid]
            assert active == (state == "active"), (cid, items[cid])
            if cid in self.by_cleanup:
                assert state == "archived", f"{cid} archived by a run, active in the ledger"
            if state == "archived":
                # Only ever marked once archived in Cliniko (by a run, or found so in a batch
                # it was cut off in): archived there still, unless staff restored it since.
                assert cid in archived_now or cid in self.restored, cid

    def _ledger_items(self) -> dict[str, tuple[str, bool]]:
        items = boto3.client("dynamodb").scan(TableName=self.ledger_table)["Items"]
        return {i["contact_id"]["S"]: (i["state"]["S"], "active_account" in i) for i in items}

    # -- invariants ----------------------------------------------------------------------------

    @invariant()
    def one_run_at_a_time(self) -> None:
        holder = self.runs.holder("cleanup_rules")
        if self.run is None:
            assert holder is None, holder
        else:
            assert holder is not None and holder["run_id"] == self.run["run_id"], holder

    @invariant()
    def no_contact_value_in_the_logs(self) -> None:
        assert_none_logged(self.log, self.values)


def _aware(value: Any) -> dt.datetime:
    if isinstance(value, str):
        value = dt.datetime.fromisoformat(value.replace("Z", "+00:00"))
    return value if value.tzinfo else value.replace(tzinfo=dt.UTC)


def _brief(record: dict[str, Any]) -> dict[str, Any]:
    return {k: str(record.get(k)) for k in ("created_at", "updated_at", "archived_at")}


@pytest.fixture
def world(aws, cliniko, emulator, tmp_path, monkeypatch):
    monkeypatch.setattr(emulator.app.store, "_clock", lambda: Clock.now)
    monkeypatch.setattr(actions, "dt", VIRTUAL_DT)
    monkeypatch.setattr(core, "dt", VIRTUAL_DT)
    monkeypatch.setattr(core, "BATCH", BATCH)
    cliniko_waits_pass_at_once(monkeypatch)
    with tapped_logs() as tap:
        CleanupModel.world = model_world(
            monkeypatch, aws, tmp_path, tap, emulator=emulator, control=cliniko.control
        )
        yield CleanupModel.world
    cliniko.control.add_key(cliniko.api_key)


@pytest.mark.timeout(900)  # a failure's shrinking takes minutes
def test_the_cleanup_against_a_stateful_model(world, capsys):
    run_state_machine_as_test(
        CleanupModel,
        settings=state_machine_settings(examples=25, steps=15),
    )
    with capsys.disabled():
        print("\ncleanup model:", dict(sorted(TALLY.items())))
    assert TALLY["archiving runs completed"] > 0
    assert TALLY["archives checked against their rule"] > 0
    assert_none_printed(capsys, _ALL_VALUES)


_ALL_VALUES: set[str] = set()
TALLY: Counter[str] = Counter()
