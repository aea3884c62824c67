"""The worker core against the Cliniko emulator (real HTTP on 127.0.0.1), without AWS."""

from __future__ import annotations

import dataclasses
import json
import re
import threading
from datetime import UTC, datetime, timedelta

import httpx
import pytest
from cliniko_automations.common.identity_claims import LOST_CREATE_SETTLES_SECONDS
from cliniko_automations.intake.submission import ContactDraft, PhoneNumber, Submission
from cliniko_automations.intake_worker.worker import (
    ClinikoBusy,
    IntakeWorker,
    Outcome,
    Rejected,
    RetryLater,
    SubmissionFailure,
)

from tests.integration.intake_worker.resources import json_submission
from tests.unit.cliniko.fake_clock import FakeClock
from tests.unit.cliniko.memory_budget_store import MemoryBudgetStore
from tests.unit.intake_worker.fakes import (
    MemoryClaims,
    MemoryIntents,
    MemoryLedger,
    MemoryParking,
)


class Harness:
    def __init__(self, cliniko) -> None:
        self.cliniko = cliniko
        self.client = cliniko.client()
        self.claims = MemoryClaims()
        self.intents = MemoryIntents()
        self.ledger = MemoryLedger()
        self.parking = MemoryParking()
        # The worker's clock, moved forward with the emulator's by `later()`.
        self.offset = timedelta(0)
        self.worker = IntakeWorker(
            claims=self.claims,
            intents=self.intents,
            ledger=self.ledger,
            parking=self.parking,
            now=lambda: datetime.now(UTC) + self.offset,
        )

    def later(self, delta: timedelta) -> datetime:
        """Time passes (for the worker and Cliniko alike); returns the new now."""
        self.offset += delta
        self.cliniko.control.set_clock(self.offset.total_seconds())
        return datetime.now(UTC) + self.offset

    def staff_create(self, body: dict, at: datetime) -> str:
        """A contact a member of staff typed in by hand at `at`."""
        [contact_id] = self.cliniko.control.seed(
            contacts=[{**body, "created_at": at.isoformat().replace("+00:00", "Z")}]
        )
        return contact_id

    def last_write_body(self, method: str) -> dict:
        return [r for r in self.cliniko.control.requests() if r["method"] == method][-1]["body"]

    def process(self, submission: Submission):
        return self.worker.process(submission, self.client)

    def contacts(self, include_archived: bool = True) -> list[dict]:
        return [
            c if isinstance(c, dict) else c.to_dict()
            for c in self.cliniko.control.contacts(include_archived=include_archived)
        ]

    def writes(self) -> list[str]:
        return [
            r["method"]
            for r in self.cliniko.control.requests()
            if r["method"] in ("POST", "PATCH", "PUT")
        ]


@pytest.fixture
def h(cliniko) -> Harness:
    return Harness(cliniko)


ANA = ContactDraft(
    first_name="Ana",
    last_name="Lima",
    email="Ana.Lima@Example.com",
    company_name="Lima Physio",
    phone_numbers=(PhoneNumber(number="0412 345 678", phone_type="Work"),),
    type_code=1,
    doctor_type="general_practitioner",
)


def test_new_email_creates_one_contact_with_the_mapped_fields(h: Harness) -> None:
    before = h.client.request_count
    outcome = h.process(json_submission(ANA))
    assert outcome.action == "created" and not outcome.recovered
    [contact] = h.contacts()
    assert contact["id"] == outcome.contact_id
    assert (contact["first_name"], contact["last_name"]) == ("Ana", "Lima")
    assert contact["email"].lower() == "ana.lima@example.com"
    assert contact["company_name"] == "Lima Physio"
    assert contact["doctor_type"] == "general_practitioner"
    assert contact["phone_numbers"][0]["number"] == "0412 345 678"
    # The floor: one lookup, one create.
    assert h.client.request_count - before == 2
    assert list(h.ledger.entries) == [outcome.contact_id]
    assert h.ledger.entries[outcome.contact_id].submission_id == outcome.submission_id


def test_a_submission_that_changes_nothing_is_still_seen_in_the_ledger(h: Harness) -> None:
    # Nothing written, so Cliniko's updated_at stays: the ledger is what tells the cleanup's
    # age rules that the person sent the form again today.
    made = h.process(json_submission(ANA))
    again = h.process(json_submission(ANA))
    assert (again.action, again.contact_id) == ("unchanged", made.contact_id)
    assert list(h.ledger.seen_at) == [made.contact_id]


def test_same_email_again_fills_blanks_only(h: Harness) -> None:
    existing = h.client.create_contact(
        {"first_name": "Anabel", "email": "ana.lima@example.com", "company_name": ""}
    )
    outcome = h.process(json_submission(ANA))
    assert outcome.action == "updated"
    assert outcome.contact_id == str(existing.id)
    [contact] = h.contacts()
    assert contact["first_name"] == "Anabel"  # staff's value stays
    assert contact["last_name"] == "Lima"
    assert contact["company_name"] == "Lima Physio"
    assert "first_name" not in outcome.fields and "last_name" in outcome.fields
    assert h.ledger.entries == {}  # only contacts the intake created


def test_overwrite_policy_replaces_values(h: Harness) -> None:
    h.client.create_contact(
        {"first_name": "Ana", "email": "ana.lima@example.com", "company_name": "Old Physio"}
    )
    assert h.process(json_submission(ANA, policy="overwrite")).action == "updated"
    [contact] = h.contacts()
    assert (contact["company_name"], contact["last_name"]) == ("Lima Physio", "Lima")


def test_overwrite_leaves_a_contact_under_a_one_word_name_that_is_not_the_submissions(
    h: Harness,
) -> None:
    # "Anabel" is none of "Ana Lima"'s words: renamed, a contact found by its address would
    # become whoever wrote from it (a full name that differs is parked the same way).
    staff = h.client.create_contact({"first_name": "Anabel", "email": "ana.lima@example.com"})
    outcome = h.process(json_submission(ANA, policy="overwrite"))
    assert (outcome.action, outcome.reason) == ("parked", "name_differs")
    assert h.parking.parked[-1][1:] == ("name_differs", (str(staff.id),))
    assert h.contacts()[0]["first_name"] == "Anabel"


def test_overwrite_leaves_the_contact_of_someone_else_sharing_the_email(h: Harness) -> None:
    staff = h.client.create_contact(
        {"first_name": "Ruth", "last_name": "Ng", "email": "reception@harbour.example"}
    )
    omar = ContactDraft(first_name="Omar", last_name="Haddad", email="reception@harbour.example")
    outcome = h.process(json_submission(omar, policy="overwrite"))
    assert (outcome.action, outcome.reason) == ("parked", "name_differs")
    assert h.parking.parked[-1][1:] == ("name_differs", (str(staff.id),))
    [contact] = h.contacts()
    assert (contact["first_name"], contact["last_name"]) == ("Ruth", "Ng")


def test_the_lookup_and_its_create_are_booked_on_the_shared_budget_together(h: Harness) -> None:
    # A fake clock: the second slot cannot lapse however slow this machine is.
    store = MemoryBudgetStore()
    client = h.cliniko.client(clock=FakeClock(), budget_store=store)
    outcome = h.worker.process(json_submission(ANA), client)
    assert outcome.action == "created"
    assert client.request_count == 2
    assert client.rate_budget.store_calls == 1


def test_create_only_and_nothing_to_fill_write_nothing(h: Harness) -> None:
    h.client.create_contact({"first_name": "Anabel", "email": "ana.lima@example.com"})
    writes = len(h.writes())
    assert h.process(json_submission(ANA, policy="create_only")).action == "unchanged"
    assert h.process(json_submission(ANA)).action == "updated"
    assert h.process(json_submission(ANA)).action == "unchanged"  # nothing blank left
    assert len(h.writes()) == writes + 1


def test_several_matches_are_parked_and_nothing_is_written(h: Harness) -> None:
    one = h.client.create_contact({"first_name": "Ana", "email": "ana.lima@example.com"})
    two = h.client.create_contact({"first_name": "A.", "email": "ANA.LIMA@example.com"})
    writes = len(h.writes())
    sub = json_submission(ANA)
    outcome = h.process(sub)
    assert (outcome.action, outcome.reason) == ("parked", "several_matches")
    assert h.parking.parked == [(sub.submission_id, "several_matches", (str(one.id), str(two.id)))]
    assert len(h.writes()) == writes
    assert len(h.contacts()) == 2


def test_an_archived_match_is_parked_not_revived_nor_duplicated(h: Harness) -> None:
    old = h.client.create_contact({"first_name": "Ana", "email": "ana.lima@example.com"})
    h.client.archive_contact(str(old.id))
    outcome = h.process(json_submission(ANA))
    assert (outcome.action, outcome.reason) == ("parked", "archived_match")
    assert len(h.contacts(include_archived=True)) == 1


class ArchivedBeforeTheUpdate:
    """Cliniko as the worker meets it when staff archive the match between its lookup and its
    update: the update finds the contact gone (Cliniko's own route hides archived ones)."""

    def __init__(self, client) -> None:
        self._client = client

    def __getattr__(self, name: str):
        return getattr(self._client, name)

    def update_contact(self, contact_id: str, body):
        self._client.archive_contact(contact_id)
        return self._client.update_contact(contact_id, body)


def test_a_match_gone_before_its_update_is_parked_not_retried_until_dead(h: Harness) -> None:
    h.cliniko.control.set_behaviour(archived_get="hidden")
    old = h.client.create_contact({"first_name": "Ana", "email": "ana.lima@example.com"})
    sub = json_submission(ANA)
    outcome = h.worker.process(sub, ArchivedBeforeTheUpdate(h.client))
    assert (outcome.action, outcome.reason) == ("parked", "match_not_found")
    assert h.parking.parked == [(sub.submission_id, "match_not_found", (str(old.id),))]
    assert len(h.contacts(include_archived=True)) == 1


# As staff typed the name: the same case, or another ("ana lima": Cliniko's `=` minds case),
# whether Cliniko's `~~` ignores case (as the emulator's does by default) or minds it.
@pytest.mark.parametrize("like_minds_case", [False, True], ids=["like-ignores-case", "minds"])
@pytest.mark.parametrize(
    "stored",
    [("Ana", "Lima"), ("ana", "lima"), ("ANA", "LIMA")],
    ids=["same", "lower", "upper"],
)
def test_without_email_name_and_phone_find_the_contact(h: Harness, stored, like_minds_case) -> None:
    h.cliniko.control.set_behaviour(like_minds_case=like_minds_case)
    existing = h.client.create_contact(
        {
            "first_name": stored[0],
            "last_name": stored[1],
            "phone_numbers": [{"number": "+61 412 345 678", "phone_type": "Mobile"}],
        }
    )
    draft = ContactDraft(
        first_name="Ana",
        last_name="Lima",
        city="Hobart",
        phone_numbers=(PhoneNumber(number="0412 345 678"),),
    )
    outcome = h.process(json_submission(draft))
    assert (outcome.action, outcome.contact_id) == ("updated", str(existing.id))
    other_phone = dataclasses.replace(draft, phone_numbers=(PhoneNumber(number="0499 000 111"),))
    assert h.process(json_submission(other_phone)).action == "created"
    assert len(h.contacts()) == 2


# With the spellings a new person is asked for in (as typed, Title Case, lower, UPPER).
@pytest.mark.parametrize(
    ("typed", "spellings"),
    [(("%", "%"), 1), (("A%", "%"), 2), (("Ana", "_"), 3), (("Ana", "Lima\\"), 3)],
)
def test_a_name_typed_with_a_wildcard_asks_cliniko_for_that_name_alone(
    h: Harness, typed, spellings
) -> None:
    # "%" in `~~` is Cliniko's wildcard: asked for "first_name ~~ %", the lookup listed every
    # contact of the clinic, a page of the shared budget per hundred of them, for one post of
    # a public form (the insurer's Formspree form takes a name and a phone without an email).
    h.cliniko.control.seed(450, seed=7)
    draft = ContactDraft(
        first_name=typed[0], last_name=typed[1], phone_numbers=(PhoneNumber(number="0412 345 678"),)
    )
    before = len(h.cliniko.control.requests())
    assert h.process(json_submission(draft)).action == "created"
    lookups = [r for r in h.cliniko.control.requests()[before:] if r["method"] == "GET"]
    assert len(lookups) == spellings
    asked = [q for r in lookups for q in r["query"].get("q[]", [])]
    for field, name in zip(("first_name", "last_name"), typed, strict=True):
        if set(name) & set("%_\\"):  # asked for as typed, never as a pattern
            assert f"{field}:={name}" in asked
            assert not [q for q in asked if q.startswith(f"{field}:~~")]

    # The same person again finds the contact their first post made.
    again = dataclasses.replace(draft, city="Hobart")
    assert h.process(json_submission(again)).action == "updated"
    assert len(h.contacts()) == 451


def test_cliniko_validation_failure_is_rejected_with_field_names_only(h: Harness) -> None:
    draft = ContactDraft(first_name="Ana", email="ana.lima@example")  # Cliniko says invalid
    with pytest.raises(Rejected) as caught:
        h.process(json_submission(draft))
    assert caught.value.reason == "cliniko_validation_failed:email"
    assert "ana" not in str(caught.value)
    assert h.contacts() == []


def test_crash_after_create_is_recovered_by_email(h: Harness) -> None:
    sub = json_submission(ANA)
    # What an attempt that died right after Cliniko's create leaves behind: the intent
    # (without the contact id) and the contact. No ledger entry, no idempotency record.
    h.intents.begin(sub.idempotency_key, datetime.now(UTC) - timedelta(seconds=5))
    made = h.client.create_contact(ANA.cliniko_fields())
    outcome = h.process(sub)
    assert (outcome.action, outcome.contact_id, outcome.recovered) == (
        "created",
        str(made.id),
        True,
    )
    assert len(h.contacts()) == 1
    assert list(h.ledger.entries) == [str(made.id)]


@pytest.mark.parametrize("unfilterable", [[], ["company_name"]], ids=["docs", "seed_filters"])
def test_crash_after_create_is_recovered_without_identity(
    h: Harness, unfilterable: list[str]
) -> None:
    # A Cliniko that filters only the fields its contacts page lists answers a filter on
    # company_name 400: the recovery's list must not need one.
    h.cliniko.control.set_behaviour(unfilterable=unfilterable)
    # Cliniko needs a first name; no last name and no phone leave nothing to look up by.
    draft = ContactDraft(first_name="Accounts", company_name="Acme Health Fund", type_code=2)
    sub = json_submission(draft)
    h.intents.begin(sub.idempotency_key, datetime.now(UTC) - timedelta(seconds=5))
    made = h.client.create_contact(draft.cliniko_fields())
    outcome = h.process(sub)
    assert (outcome.action, outcome.contact_id, outcome.recovered) == (
        "created",
        str(made.id),
        True,
    )
    assert len(h.contacts()) == 1
    # The recovery's list asks in whole seconds, the form Cliniko documents.
    asked = [q for r in h.cliniko.control.requests() for q in r["query"].get("q[]", [])]
    (since,) = [q for q in asked if q.startswith("created_at:")]
    assert re.fullmatch(r"created_at:>\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ", since), since
    # Without an intent, the same fields from another submission are another contact.
    assert h.process(json_submission(draft)).action == "created"
    assert len(h.contacts()) == 2


def test_crash_after_recording_the_contact_id_creates_nothing(h: Harness) -> None:
    sub = json_submission(ANA)
    first = h.process(sub)
    posts = h.writes().count("POST")
    # The idempotency record was never saved; the same submission comes again.
    again = h.process(sub)
    assert (again.contact_id, again.recovered) == (first.contact_id, True)
    assert h.writes().count("POST") == posts
    assert len(h.contacts()) == 1


def test_concurrent_same_email_creates_one_contact(h: Harness) -> None:
    results = []
    errors = []

    def run() -> None:
        try:
            results.append(h.process(json_submission(ANA)))
        except Exception as exc:  # collected for the assertion below
            errors.append(exc)

    threads = [threading.Thread(target=run) for _ in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert errors == []
    assert sorted(r.action for r in results).count("created") == 1
    assert len(h.contacts()) == 1


def test_cliniko_server_errors_are_retryable(h: Harness) -> None:
    h.cliniko.control.set_faults(error_rate=1.0, statuses=[500])
    with pytest.raises(ClinikoBusy) as caught:
        h.process(json_submission(ANA))
    assert caught.value.throttled
    h.cliniko.control.set_faults(error_rate=0.0)
    assert h.contacts() == []


# --- a retry adopts only the contact its own lost create made (issue 11) -----------------

STAFF_ANA = {"first_name": "Ana", "last_name": "Lima", "email": "ana.lima@example.com"}


def test_a_contact_staff_made_after_a_lost_create_is_updated_not_adopted(h: Harness) -> None:
    sub = json_submission(ANA)
    # Attempt 1: Cliniko answers the create with a 500 without saving anything.
    h.cliniko.control.set_faults(fail_next=[500], methods=["POST"])
    with pytest.raises(RetryLater):
        h.process(sub)
    assert h.contacts() == []
    # An hour later a receptionist types the person in by hand; the retry comes after that.
    staff_id = h.staff_create({**STAFF_ANA, "notes": "Walk-in"}, h.later(timedelta(hours=1)))
    h.later(timedelta(minutes=30))
    outcome = h.process(sub)
    assert (outcome.action, outcome.contact_id, outcome.recovered) == ("updated", staff_id, False)
    # Not the intake's contact: the cleanup must never see it as one.
    assert h.ledger.entries == {}
    [contact] = h.contacts()
    assert contact["company_name"] == "Lima Physio"
    assert contact["phone_numbers"][0]["number"] == "0412 345 678"
    assert contact["notes"] == "Walk-in"
    # The reported fields are the ones written.
    assert set(outcome.fields) == set(h.last_write_body("PATCH"))


def test_a_contact_staff_made_after_a_refused_create_is_not_adopted(h: Harness) -> None:
    # Cliniko refused the create (its rate limit, after the client's waits): it made nothing.
    # The attempt's window stayed open, and the retry adopted the identical contact a
    # receptionist typed in meanwhile as its own, into the ledger the cleanup trusts.
    draft = ContactDraft(first_name="Ana", last_name="Lima", email="ana.lima@example.com")
    sub = json_submission(draft)
    h.cliniko.control.set_faults(fail_next=[429] * 4, methods=["POST"])
    with pytest.raises(SubmissionFailure):
        h.process(sub)
    h.cliniko.control.clear_faults()
    assert h.contacts() == []
    staff_id = h.staff_create(STAFF_ANA, datetime.now(UTC) + h.offset)
    outcome = h.process(sub)
    assert (outcome.action, outcome.contact_id, outcome.recovered) == ("unchanged", staff_id, False)
    assert h.ledger.entries == {}


class OffSpecCreateAnswer(httpx.BaseTransport):
    """Cliniko's transport, but a create's 201 comes back off the spec (an id that is not an
    integer: a proxy, a spec drift): the contact is made, its answer unreadable."""

    def __init__(self, inner: httpx.BaseTransport) -> None:
        self.inner = inner

    def handle_request(self, request: httpx.Request) -> httpx.Response:
        response = self.inner.handle_request(request)
        if request.method == "POST" and request.url.path.endswith("/contacts"):
            response.read()
            body = {**json.loads(response.content), "id": "not-a-number"}
            return httpx.Response(201, json=body, request=request)
        return response


@pytest.mark.parametrize("draft", [ANA, ContactDraft(first_name="Ana", last_name="Lima")])
def test_a_create_answered_off_the_spec_is_looked_for_not_made_again(h: Harness, draft) -> None:
    # Made, but its answer unreadable: treated as refused, its window was closed, and the
    # retry of a submission with no identity made a second contact.
    transport = h.client._transport
    inner = transport._inner
    transport._inner = OffSpecCreateAnswer(inner)
    try:
        outcome = h.process(json_submission(draft))
    finally:
        transport._inner = inner
    assert (outcome.action, outcome.recovered) == ("created", True)
    [contact] = h.contacts()
    assert list(h.ledger.entries) == [str(contact["id"])]


def test_a_name_spaced_otherwise_finds_the_same_contact(h: Harness) -> None:
    # The worker compares names with their spacing folded ("Mary  Ann" is "Mary Ann"); its
    # lookup sent the name as typed, Cliniko never listed the contact, and a second was made.
    phone = (PhoneNumber(number="0412 345 678"),)
    first = h.process(
        json_submission(ContactDraft(first_name="Mary  Ann", last_name="Lee", phone_numbers=phone))
    )
    again = h.process(
        json_submission(ContactDraft(first_name="Mary Ann", last_name=" Lee", phone_numbers=phone))
    )
    assert first.action == "created"
    assert (again.action, again.contact_id) == ("unchanged", first.contact_id)
    assert len(h.contacts()) == 1


@pytest.mark.parametrize("like_minds_case", [False, True], ids=["like-ignores-case", "minds"])
@pytest.mark.parametrize(
    ("typed", "staff_typed"),
    [("O\u2019Brien", "O'Brien"), ("O'Brien", "O\u2019Brien")],
    ids=["a phone's apostrophe", "staff's phone"],
)
def test_a_name_with_either_apostrophe_finds_the_same_contact(
    h: Harness, typed, staff_typed, like_minds_case
) -> None:
    # iOS types "O’Brien" (U+2019), a desktop "O'Brien": one name to a person, two strings to
    # Cliniko's `~~`, and without an email a second contact was made.
    h.cliniko.control.set_behaviour(like_minds_case=like_minds_case)
    phone = (PhoneNumber(number="0412 345 678"),)
    existing = h.client.create_contact(
        {
            "first_name": "Sean",
            "last_name": staff_typed,
            "phone_numbers": [{"number": "0412 345 678", "phone_type": "Mobile"}],
        }
    )
    outcome = h.process(
        json_submission(ContactDraft(first_name="Sean", last_name=typed, phone_numbers=phone))
    )
    assert (outcome.action, outcome.contact_id) == ("unchanged", str(existing.id))
    assert len(h.contacts()) == 1


def test_a_contact_another_submission_made_between_attempts_is_not_adopted(h: Harness) -> None:
    first = json_submission(ANA)
    h.cliniko.control.set_faults(fail_next=[500], methods=["POST"])
    with pytest.raises(RetryLater):
        h.process(first)
    # Another submission of the same person, with other fields, creates the contact.
    second = json_submission(ContactDraft(**STAFF_ANA, occupation="Physiotherapist"))
    made = h.process(second)
    assert made.action == "created"
    h.later(timedelta(seconds=LOST_CREATE_SETTLES_SECONDS))
    outcome = h.process(first)  # the first one's retry, once its lost create has settled
    assert (outcome.action, outcome.contact_id, outcome.recovered) == (
        "updated",
        made.contact_id,
        False,
    )
    [contact] = h.contacts()
    assert (contact["occupation"], contact["company_name"]) == ("Physiotherapist", "Lima Physio")
    assert set(outcome.fields) == set(h.last_write_body("PATCH"))
    # The ledger still names the submission that created the contact.
    assert list(h.ledger.entries) == [made.contact_id]
    assert h.ledger.entries[made.contact_id].submission_id == second.submission_id


def test_the_same_fields_typed_long_after_a_crashed_attempt_are_not_adopted(h: Harness) -> None:
    sub = json_submission(ANA)
    # An attempt a day ago was about to create, and died before Cliniko saw the request.
    h.intents.begin(sub.idempotency_key, datetime.now(UTC) - timedelta(days=1))
    # Today staff type in exactly what the form said.
    made = h.client.create_contact(ANA.cliniko_fields())
    outcome = h.process(sub)
    assert (outcome.action, outcome.contact_id, outcome.recovered) == (
        "unchanged",
        str(made.id),
        False,
    )
    assert h.ledger.entries == {}


def test_the_same_fields_typed_minutes_after_a_lost_create_are_not_adopted(h: Harness) -> None:
    sub = json_submission(ANA)
    h.cliniko.control.set_faults(fail_next=[500], methods=["POST"])
    with pytest.raises(RetryLater):
        h.process(sub)
    # Ten minutes later, before the retry, staff type in exactly what the form said: after
    # the attempt's window, which ended when the create's answer was lost.
    staff_id = h.staff_create(ANA.cliniko_fields(), h.later(timedelta(minutes=10)))
    outcome = h.process(sub)
    assert (outcome.action, outcome.contact_id, outcome.recovered) == (
        "unchanged",
        staff_id,
        False,
    )
    assert h.ledger.entries == {}


def adopted(h: Harness, sub: Submission, outcome: Outcome) -> None:
    """The submission's lost create was adopted: the one contact, reported as created by it
    (recovered), and in the ledger under the submission."""
    [contact] = h.contacts()
    assert (outcome.action, outcome.contact_id, outcome.recovered) == (
        "created",
        contact["id"],
        True,
    )
    assert h.ledger.entries[contact["id"]].submission_id == sub.submission_id


def test_a_retry_days_later_adopts_its_own_lost_create_not_the_first_attempts(h: Harness) -> None:
    sub = json_submission(ANA)
    h.cliniko.control.set_faults(fail_next=[500], methods=["POST"])
    with pytest.raises(RetryLater):
        h.process(sub)
    # Replayed from the dead-letter queue three days later: Cliniko commits the create, then
    # the connection drops before the answer arrives.
    h.later(timedelta(days=3))
    h.cliniko.control.set_faults(fail_next=["drop_after"], methods=["POST"])
    outcome = h.process(sub)
    adopted(h, sub, outcome)
    assert outcome.fields == tuple(sorted(ANA.cliniko_fields()))


def test_a_retry_before_a_lost_create_settled_waits_for_it_not_makes_another(h: Harness) -> None:
    # No email, no name and phone: no claim keeps the person while Cliniko settles a create
    # whose answer was lost (a proxy's 502 while Cliniko still works on it, up to its 30 s).
    # The retry came on the queue's first backoff (15-30 s), found nothing made yet, and made
    # the contact again; the first create then landed beside it.
    draft = ContactDraft(first_name="Accounts", company_name="Acme Health Fund", type_code=2)
    sub = json_submission(draft)
    h.cliniko.control.set_faults(fail_next=[502], methods=["POST"])
    with pytest.raises(RetryLater) as lost:
        h.process(sub)
    settled = datetime.now(UTC) + h.offset + timedelta(seconds=LOST_CREATE_SETTLES_SECONDS)
    # The message is hidden until then: sooner, it could only be answered as below.
    assert lost.value.not_before is not None
    assert abs(lost.value.not_before - settled.timestamp()) < 5
    h.later(timedelta(seconds=20))
    with pytest.raises(RetryLater) as early:
        h.process(sub)
    assert (early.value.reason, early.value.not_before) == (
        "lost_create_settling",
        lost.value.not_before,
    )
    assert h.contacts() == []
    # Cliniko commits the first create 25 s after it was sent; the retry after the settling
    # time finds it.
    h.staff_create(draft.cliniko_fields(), h.later(timedelta(seconds=5)))
    h.later(timedelta(seconds=40))
    adopted(h, sub, h.process(sub))


def test_a_lost_create_of_another_person_with_the_same_name_is_not_adopted(h: Harness) -> None:
    # No email, name + phone: staff made "Ana Lima" with this phone but another company.
    draft = ContactDraft(
        first_name="Ana",
        last_name="Lima",
        company_name="Lima Physio",
        phone_numbers=(PhoneNumber(number="0412 345 678"),),
    )
    sub = json_submission(draft)
    h.cliniko.control.set_faults(fail_next=[500], methods=["POST"])
    with pytest.raises(RetryLater):
        h.process(sub)
    staff_id = h.staff_create(
        {
            "first_name": "Ana",
            "last_name": "Lima",
            "company_name": "Other Practice",
            "phone_numbers": [{"number": "+61 412 345 678", "phone_type": "Mobile"}],
        },
        h.later(timedelta(seconds=20)),  # inside the attempt's clock-skew margin
    )
    h.later(timedelta(seconds=LOST_CREATE_SETTLES_SECONDS))  # the retry, once it has settled
    outcome = h.process(sub)
    assert (outcome.action, outcome.contact_id) == ("unchanged", staff_id)
    assert h.contacts()[0]["company_name"] == "Other Practice"  # fill_blanks: staff's stays
    assert h.ledger.entries == {}


# A draft of each lookup the worker makes: none (recent contacts), name and phone, email.
ONE_OF_EACH_LOOKUP = pytest.mark.parametrize(
    "draft",
    [
        ContactDraft(first_name="Accounts", company_name="Acme Health Fund"),
        ContactDraft(
            first_name="Ana", last_name="Lima", phone_numbers=(PhoneNumber(number="0412 345 678"),)
        ),
        ANA,
    ],
    ids=["no-identity", "name-and-phone", "email"],
)


@ONE_OF_EACH_LOOKUP
def test_a_lost_create_archived_by_staff_before_the_retry_is_not_made_again(
    h: Harness, draft: ContactDraft
) -> None:
    sub = json_submission(draft)
    # An attempt died right after Cliniko's create: the intent (no contact id) and the contact.
    h.intents.begin(sub.idempotency_key, datetime.now(UTC) - timedelta(seconds=5))
    made = h.client.create_contact(draft.cliniko_fields())
    # Reception archives the new contact while the message waits out its visibility timeout.
    # Without an identity, the retry's list of the window's contacts left archived ones out,
    # and the person was made a second time, undoing the archive, in no ledger.
    h.client.archive_contact(str(made.id))
    outcome = h.process(sub)
    assert (outcome.action, outcome.reason) == ("parked", "archived_match")
    assert h.parking.parked[-1][2] == (str(made.id),)
    assert [c["id"] for c in h.contacts(include_archived=True)] == [str(made.id)]


@pytest.mark.parametrize("skew_minutes", [3, 0, -3], ids=["ahead", "together", "behind"])
@ONE_OF_EACH_LOOKUP
def test_a_lost_create_is_adopted_with_clinikos_clock_minutes_from_ours(
    h: Harness, draft: ContactDraft, skew_minutes: int
) -> None:
    # Cliniko stamps `created_at` by its clock, the create's window is taken by ours: with the
    # clocks further apart than the window's margin (2 minutes), the lost create's contact
    # was "updated" (one contact still), in no ledger, and no `created_by_intake` rule saw it.
    h.cliniko.control.set_skew(skew_minutes * 60)
    sub = json_submission(draft)
    h.cliniko.control.set_faults(fail_next=["drop_after"], methods=["POST"])
    adopted(h, sub, h.process(sub))
