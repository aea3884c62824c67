"""The whole intake path under faults: nobody lost, doubled, adopted by a stranger or robbed of
a field (issue 11).

Deliveries go through the intake API handler with the shipped form sources (the
`partner-json` source, signed as a partner's server signs), the worker handler takes them
from SQS as Lambda's poller does, and the Cliniko emulator misbehaves:

- storm: errors (500/502/503) and dropped connections on every kind of request, half of them
  answered *after* Cliniko committed the write (a create that happened but whose answer was
  lost); each submission of a person carries different fields (phone and title on one, company
  and occupation on another, city and post code on a third); some deliveries are a provider's
  redelivery; and whenever a create was refused for a person who has no contact yet, a member
  of staff may type that person in by hand before the retry comes;
- outage: every create refused until the submissions are dead letters;
- days later (time injected: the worker's and Cliniko's clocks move, Powertools' records
  expire): staff have typed some of those people in meanwhile, the dead letters are replayed
  with scripts/dead_letters.py under faults again, a day apart until none is left.

Then: one contact per person; every submitted field is on it (the value of one of the
person's submissions, or what staff typed where the source fills blanks only); the ledger
lists exactly the contacts the intake made, each under the submission that made it, and no
staff-made contact; every contact adopted as the result of a lost create really was one
(Cliniko committed the create and the answer was lost); each contact was reported created
once. The counts are printed (`-s`).

Profiles: quick by default; `INTAKE_RELIABILITY_PROFILE=long` for ten times the people.
"""

from __future__ import annotations

import io
import json
import os
import random
import time
import uuid
from collections import Counter, defaultdict
from dataclasses import dataclass, field
from datetime import timedelta
from typing import Any

import boto3
import pytest
from cliniko_automations.intake_worker import handler as worker_handler
from cliniko_automations.intake_worker.find_or_create import phone_digits, phones_match

from tests.fixtures.apigw import LambdaContext, form_post_event
from tests.integration.intake_worker.e2e_world import IntakePath, build_intake_path
from tests.integration.intake_worker.resources import (
    WORKER_TIMEOUT_MS,
    WorldClock,
    captured_logs,
    emf_metrics,
    load_dead_letters_script,
    poll_once,
)
from tests.unit.intake_api import samples

PROFILES = {"quick": 30, "long": 300}
PROFILE = os.environ.get("INTAKE_RELIABILITY_PROFILE", "quick")
PEOPLE = PROFILES[PROFILE]
# The long profile sends ten times the requests through one key's 200 a minute.
pytestmark = [pytest.mark.timeout(300 if PROFILE == "quick" else 3600)]
SOURCE = "partner-json"
ACCOUNT = "north-clinic"
# Each submission of a person carries its own part of the form (json keys -> values).
PARTS = (
    lambda n: {"mobile": f"04{n:02d} 555 {n:03d}", "title": "Dr"},
    lambda n: {"company_name": f"Practice {n}", "occupation": "Physiotherapist"},
    lambda n: {"city": "Hobart", "post_code": f"7{n:03d}"},
)
STAFF_FIELDS = {"occupation": "Typed at reception", "notes": "Walk-in, entered by staff"}
STORM = {
    "error_rate": 0.12,
    "drop_rate": 0.12,
    "statuses": [500, 502, 503],
    "after_effect_rate": 0.5,
}


@dataclass
class Person:
    n: int
    email: str
    answers: list[dict[str, str]] = field(default_factory=list)  # one per submission
    submission_ids: set[str] = field(default_factory=set)  # as the intake API answered
    staff_id: str | None = None
    staff_prone: bool = False


@dataclass
class Run:
    path: IntakePath
    cliniko: Any
    clock: WorldClock
    people: dict[str, Person]  # by lower-cased email
    rng: random.Random
    deliveries: int = 0
    dead_letters_replayed: int = 0
    log_seen: int = 0

    # --- the sender side -----------------------------------------------------------------

    def deliver(self, person: Person, answers: dict[str, str], key: str) -> None:
        # Only this submission's part of the form: the sample's other answers are left out.
        unset = dict.fromkeys(("mobile", "company_name", "country", "type_code", "doctor_type"))
        body = samples.json_body(
            **{
                **unset,
                "first_name": f"Rel{person.n}",
                "last_name": "Person",
                "email": person.email,
                **answers,
            }
        )
        headers = {
            "Content-Type": "application/json",
            "X-Signature": samples.t_v1_signature(body),
            "Idempotency-Key": key,
        }
        answer = self.path.post(form_post_event(SOURCE, body, headers))
        assert answer["statusCode"] == 202, answer
        person.submission_ids.add(json.loads(answer["body"])["submission_id"])
        self.deliveries += 1

    # --- the worker side -----------------------------------------------------------------

    def drain(self) -> None:
        stack = self.path.stack
        for _ in range(2_000):
            context = LambdaContext(
                function_name="IntakeWorkerFunction", timeout_ms=WORKER_TIMEOUT_MS
            )
            messages, _failed = poll_once(
                stack, worker_handler.lambda_handler, context, visibility=30
            )
            self.staff_react()
            if not messages:
                if stack.counts(stack.queue_url) == (0, 0):
                    return
                time.sleep(0.2)
        pytest.fail("the submission queue did not drain")

    # --- staff ---------------------------------------------------------------------------

    def staff_react(self) -> None:
        """After a refused create (nothing saved), staff may type the person in by hand
        before the submission's retry comes, if the person has no contact yet."""
        entries = self.cliniko.control.requests(since=self.log_seen)
        if entries:
            self.log_seen = entries[-1]["seq"]
        refused = {
            (e.get("body") or {}).get("email", "").lower()
            for e in entries
            if e["method"] == "POST"
            and e["path"].endswith("/contacts")
            and e["fault"]
            and "after effect" not in e["fault"]
        }
        for email in refused:
            person = self.people.get(email)
            if person and person.staff_prone and person.staff_id is None:
                self.staff_create(person)

    def staff_create(self, person: Person) -> None:
        if any(c["email"].lower() == person.email for c in self.cliniko.control.contacts()):
            return
        [person.staff_id] = self.cliniko.control.seed(
            contacts=[
                {
                    "first_name": f"Rel{person.n}",
                    "last_name": "Person",
                    "email": person.email,
                    **STAFF_FIELDS,
                }
            ]
        )

    def dead_letters(self) -> int:
        return sum(self.path.stack.counts(self.path.stack.dead_letter_queue_url))


def submitted_values(person: Person, key: str) -> set[str]:
    return {answers[key] for answers in person.answers if key in answers}


def field_dropped(person: Person, contact: dict[str, Any], key: str) -> bool:
    """Whether a submitted field is missing from the contact (or holds a value nobody gave)."""
    allowed = submitted_values(person, key)
    if key == "mobile":
        stored = [phone_digits(p["number"]) for p in contact["phone_numbers"]]
        return not any(phones_match(phone_digits(v), s) for v in allowed for s in stored)
    if person.staff_id == contact["id"] and key in STAFF_FIELDS:
        allowed.add(STAFF_FIELDS[key])  # fill_blanks: what staff typed stays
    return contact[key] not in allowed


@pytest.fixture
def run(aws, cliniko, monkeypatch, tmp_path) -> Run:
    path = build_intake_path(cliniko, monkeypatch, tmp_path)
    # A key of its own for this run: the client's rate budget is per key and process-wide.
    key = f"MS0xrelpath{uuid.uuid4().hex[:12]}-au1"
    cliniko.control.add_key(key)
    boto3.client("secretsmanager").put_secret_value(
        SecretId=f"cliniko-automations/accounts/{ACCOUNT}/api-key", SecretString=key
    )
    monkeypatch.setenv("DEAD_LETTER_QUEUE_URL", path.stack.dead_letter_queue_url)
    monkeypatch.setenv("CLINIKO_MAX_WAIT_SECONDS", "10")
    rng = random.Random(20261201)
    tag = uuid.uuid4().hex[:6]
    people = {}
    for n in range(PEOPLE):
        email = f"rel{n}.{tag}@example.org"
        people[email] = Person(n, email, staff_prone=n % 3 == 0)
    return Run(path, cliniko, WorldClock(monkeypatch, path.stack, cliniko.control), people, rng)


def test_no_person_is_lost_doubled_adopted_by_a_stranger_or_robbed_of_a_field(
    run: Run, capsys
) -> None:
    control = run.cliniko.control
    everyone = list(run.people.values())
    outage = everyone[-max(4, PEOPLE // 4) :]
    storm = everyone[: len(everyone) - len(outage)]

    with captured_logs("intake") as logs:
        # --- storm -------------------------------------------------------------------
        for person in storm:
            for part in PARTS[: 1 + person.n % len(PARTS)]:
                answers = part(person.n)
                person.answers.append(answers)
                run.deliver(person, answers, key=f"rel-{person.email}-{len(person.answers)}")
            if person.n % 5 == 1:  # a provider redelivers the first submission
                run.deliver(person, person.answers[0], key=f"rel-{person.email}-1")
        control.set_faults(**STORM, seed=1)
        run.drain()

        # --- outage: every create refused until the submissions are dead letters ------
        control.set_faults(error_rate=1.0, statuses=[500], methods=["POST"])
        for person in outage:
            answers = {**PARTS[0](person.n), **PARTS[1](person.n)}
            person.answers.append(answers)
            run.deliver(person, answers, key=f"rel-{person.email}-1")
        for person in outage:
            person.staff_prone = False  # staff are busy during the outage
        run.drain()
        assert run.dead_letters() >= len(outage)

        # --- days later: staff typed some in, the dead letters are replayed ------------
        script = load_dead_letters_script()
        for person in outage[::2]:
            run.clock.advance(timedelta(hours=6))
            run.staff_create(person)
        day = 0
        while run.dead_letters() and day < 6:
            day += 1
            run.clock.advance(timedelta(days=2 if day == 1 else 1))
            control.set_faults(**STORM, seed=100 + day)
            out = io.StringIO()
            assert script.main(["replay", "--all"], out=out) == 0
            run.dead_letters_replayed += len(out.getvalue().splitlines())
            run.drain()
        control.clear_faults()
        assert run.dead_letters() == 0, "dead letters left after a week of replays"
        processed = logs.json("submission processed")

    # --- the verdict ---------------------------------------------------------------------
    stack = run.path.stack
    contacts = control.contacts(include_archived=True)
    by_email: dict[str, list[dict]] = defaultdict(list)
    for contact in contacts:
        by_email[contact["email"].lower()].append(contact)
    assert {email: len(found) for email, found in by_email.items()} == dict.fromkeys(
        run.people, 1
    ), "a person was lost or doubled"
    assert stack.drain(stack.parked_queue_url) == []

    dropped = []
    for person in everyone:
        [contact] = by_email[person.email]
        keys = {key for answers in person.answers for key in answers}
        dropped += [(person.n, k) for k in sorted(keys) if field_dropped(person, contact, k)]

    staff_ids = {p.staff_id for p in everyone if p.staff_id}
    ledger = {item["contact_id"]: item for item in stack.ledger_items()}
    created = [o for o in processed if o["action"] == "created" and not o["replayed"]]
    adopted = {o["contact_id"] for o in created if o["recovered"]}
    answered_creates = {o["contact_id"] for o in created if not o["recovered"]}
    intake_made = {c["id"] for c in contacts} - staff_ids
    # Creates Cliniko committed whose answer the worker never had.
    requests = control.requests()
    lost = [
        r
        for r in requests
        if r["method"] == "POST"
        and r["path"].endswith("/contacts")
        and "after effect" in (r["fault"] or "")
    ]
    faults = Counter(f"{r['method']} {r['fault']}" for r in requests if r["fault"])
    metrics = emf_metrics(capsys.readouterr().out)
    summary = (
        f"\nintake path reliability ({PEOPLE} people): {run.deliveries} deliveries, "
        f"{len(processed)} outcomes {dict(Counter(o['action'] for o in processed))}, "
        f"dead letters replayed {run.dead_letters_replayed} over {day} days, "
        f"faults {dict(sorted(faults.items()))}, creates committed but answer lost "
        f"{len(lost)}, contacts adopted {len(adopted)}, staff contacts {len(staff_ids)}, "
        f"staff contacts in the ledger {len(staff_ids & set(ledger))}, "
        f"fields dropped {len(dropped)}, ContactCreated {metrics.get('ContactCreated', 0):g}"
    )
    with capsys.disabled():
        print(summary)
    assert dropped == []
    assert staff_ids & set(ledger) == set()
    assert set(ledger) == intake_made
    # Adopted: exactly the contacts that came from a create whose answer was lost.
    assert adopted == intake_made - answered_creates
    assert len(adopted) == len(lost)
    # Reported created once per contact, by the submission the ledger names.
    assert sorted(o["contact_id"] for o in created) == sorted(ledger)
    assert metrics["ContactCreated"] == len(ledger)
    for outcome in created:
        entry = ledger[outcome["contact_id"]]
        assert entry["submission_id"] == outcome["correlation_id"]
        [contact] = [c for c in contacts if c["id"] == entry["contact_id"]]
        assert entry["submission_id"] in run.people[contact["email"].lower()].submission_ids
