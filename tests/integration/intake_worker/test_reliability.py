"""500 submissions through the worker while Cliniko misbehaves: exactly one contact per person.

The mix: new people by email, second submissions for known emails, four concurrent
submissions each for some emails (handled by different workers at the same moment), people
without an email (name + phone, some twice with the phone written differently), people with
nothing to look up by (first name + company), exact duplicate messages (SQS's at-least-once),
provider redeliveries (same idempotency key, new message), and one clinic whose Cliniko key
is not registered yet (every attempt fails until the operator fixes it and replays).

Six worker threads emulate Lambda's concurrent SQS pollers against moto, the emulator
answers 20% of requests with 500/502/503/504 (half the time *after* doing the work, as a
gateway timing out in front of a busy Cliniko does) and opens short 429 windows every few
seconds. Afterwards: no person has two contacts; every submission is accounted for (its
person's contact exists, or the submission is a dead letter with a reason); the ledger lists
exactly the contacts Cliniko has; after fixing the key and replaying the dead letters,
everyone has exactly one contact.
"""

from __future__ import annotations

import io
import json
import random
import threading
import time
import uuid
from collections import Counter, defaultdict
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

import pytest
from cliniko_automations.common.person_keys import PersonKeys
from cliniko_automations.intake.submission import (
    ContactDraft,
    PhoneNumber,
    QueuedSubmission,
    Submission,
)
from cliniko_automations.intake_worker import handler as worker_handler
from cliniko_automations.intake_worker.find_or_create import phone_digits
from cliniko_automations.intake_worker.store import DynamoFailures

from tests.fixtures.apigw import LambdaContext
from tests.integration.intake_worker.resources import (
    WORKER_TIMEOUT_MS,
    WorkerStack,
    create_worker_stack,
    load_dead_letters_script,
    poll_once,
    put_secrets,
    worker_environment,
)

# A loaded machine (the full run's parallel workers) can take several times the quiet
# figure (about two minutes): the deadline is a bound on a stuck queue, not a speed check.
pytestmark = [pytest.mark.slow, pytest.mark.timeout(900)]

SHARDS = ("au1", "au2", "au3", "au4", "uk1", "ca1", "eu1", "uk2")
ACCOUNTS = 16
BROKEN = "acct-broken"
WORKERS = 6
DEADLINE_SECONDS = 600


@dataclass(frozen=True)
class Person:
    identity: str  # what the test recognises the contact by
    account: str
    draft: ContactDraft


def contact_identity(contact: dict) -> str:
    if contact.get("email"):
        return "email:" + contact["email"].lower()
    if contact.get("company_name"):
        return "company:" + contact["company_name"]
    phones = sorted(phone_digits(p["number"]) for p in contact.get("phone_numbers") or [])
    return f"name:{contact['first_name']}|{contact['last_name']}|{phones[0][-9:]}"


def build_people(rng: random.Random, accounts: list[str]) -> dict[str, list[Person]]:
    groups: dict[str, list[Person]] = defaultdict(list)

    def email_person(n: int, account: str) -> Person:
        email = f"person{n}.{rng.randrange(10**6)}@example.com"
        draft = ContactDraft(
            first_name=f"First{n}",
            last_name=f"Last{n}",
            email=email.upper() if n % 7 == 0 else email,  # case must not matter
            phone_numbers=(PhoneNumber(number=f"04{n:08d}"),),
        )
        return Person("email:" + email, account, draft)

    n = 0
    for group, count in (("email", 260), ("concurrent", 15)):
        for _ in range(count):
            n += 1
            groups[group].append(email_person(n, accounts[n % len(accounts)]))
    for _ in range(10):
        n += 1
        groups["broken"].append(email_person(n, BROKEN))
    for _ in range(30):
        n += 1
        digits = f"{n:08d}"
        draft = ContactDraft(
            first_name=f"Nomail{n}",
            last_name=f"Person{n}",
            phone_numbers=(PhoneNumber(number=f"04{digits[:2]} {digits[2:5]} {digits[5:]}"),),
        )
        identity = f"name:Nomail{n}|Person{n}|{phone_digits('04' + digits)[-9:]}"
        groups["name_phone"].append(Person(identity, accounts[n % len(accounts)], draft))
    for _ in range(15):
        n += 1
        company = f"Health Fund {n} {rng.randrange(10**6)}"
        draft = ContactDraft(first_name="Accounts", company_name=company, type_code=2)
        groups["no_identity"].append(
            Person("company:" + company, accounts[n % len(accounts)], draft)
        )
    return groups


def submission(person: Person, n: int, key: str | None = None) -> Submission:
    return Submission(
        submission_id=f"sub-{n:04d}",
        idempotency_key=key or f"test-json:rel-{n:04d}",
        source="test-json",
        provider="json",
        account=person.account,
        received_at=datetime.now(UTC),
        draft=person.draft,
    )


def build_messages(rng: random.Random, groups: dict[str, list[Person]]):
    """(message bodies in queue order, the person each submission belongs to)."""
    counter = iter(range(1, 10_000))
    owner: dict[str, Person] = {}
    first: list[Submission] = []  # sent first: the concurrent same-email submissions

    def make(person: Person, key: str | None = None) -> Submission:
        sub = submission(person, next(counter), key)
        owner[sub.submission_id] = person
        return sub

    # Four submissions per concurrent person, spread so that each lands in a different
    # batch of ten and the first batches are taken by different workers at once.
    concurrent = groups["concurrent"]
    for _round in range(4):
        first += [make(person) for person in concurrent]
    rest: list[Submission] = []
    rest += [make(p) for p in groups["email"]]
    rest += [make(p) for p in rng.sample(groups["email"], 40)]  # second submissions
    rest += [make(p) for p in groups["name_phone"]]
    for person in rng.sample(groups["name_phone"], 10):  # again, phone written differently
        digits = phone_digits(person.draft.phone_numbers[0].number)
        again = ContactDraft(
            first_name=person.draft.first_name,
            last_name=person.draft.last_name,
            city="Hobart",
            phone_numbers=(PhoneNumber(number="+61 " + digits),),
        )
        rest.append(make(Person(person.identity, person.account, again)))
    rest += [make(p) for p in groups["no_identity"]]
    rest += [make(p) for p in groups["broken"]]
    # Provider redeliveries: the same provider submission again, as a new queued message.
    rest += [make(owner[s.submission_id], key=s.idempotency_key) for s in rng.sample(rest, 30)]
    rng.shuffle(rest)
    bodies = [s.to_json() for s in first + rest]
    # SQS delivers at least once: some messages exist twice.
    for body in rng.sample(bodies[60:], 45):
        bodies.insert(rng.randrange(60, len(bodies)), body)
    return bodies, owner


class Chaos(threading.Thread):
    """20% server errors throughout, alternating every two seconds between errors answered
    instead of doing the work and errors answered after doing it; each "before" phase opens
    with a short window of 429s. (A 429 never takes effect at Cliniko, so 429 windows and
    after-effect errors are never combined: the emulator would apply the create and answer
    429, which the client rightly re-sends.)"""

    def __init__(self, control) -> None:
        super().__init__(daemon=True)
        self.control = control
        self.stopped = threading.Event()

    def run(self) -> None:
        n = 0
        while not self.stopped.is_set():
            n += 1
            after_effect = bool(n % 2)
            self.control.set_faults(
                error_rate=0.2,
                statuses=[500, 502, 503, 504],
                after_effect=after_effect,
                throttle_window_s=0.0 if after_effect else 0.3,
                seed=n,
            )
            self.stopped.wait(2.0)
        self.control.clear_faults()


def drain_with_workers(stack: WorkerStack, deadline: float) -> Counter:
    """Worker threads poll until the submission queue is empty; returns receive outcomes."""
    outcomes: Counter = Counter()
    problems: list[BaseException] = []
    lock = threading.Lock()

    def work(n: int) -> None:
        idle = 0
        try:
            while time.monotonic() < deadline:
                # One invocation per batch, each with its own clock (claims and INPROGRESS
                # records end when the invocation would time out).
                context = LambdaContext(
                    function_name="IntakeWorkerFunction", timeout_ms=WORKER_TIMEOUT_MS
                )
                messages, failed = poll_once(
                    stack,
                    worker_handler.lambda_handler,
                    context,
                    # Longer than an invocation may run, as the template's queue is: a slow
                    # batch on a loaded machine is not handed to a second worker meanwhile.
                    visibility=WORKER_TIMEOUT_MS // 1000 + 30,
                )
                with lock:
                    outcomes["received"] += len(messages)
                    outcomes["failed"] += len(failed)
                if messages:
                    idle = 0
                    continue
                visible, in_flight = stack.counts(stack.queue_url)
                idle = idle + 1 if visible == in_flight == 0 else 0
                if idle >= 3:
                    return
                time.sleep(0.2)
        except BaseException as exc:  # reported below: a worker must never crash
            problems.append(exc)

    threads = [threading.Thread(target=work, args=(n,)) for n in range(WORKERS)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert problems == []
    assert stack.counts(stack.queue_url) == (0, 0), "the queue did not drain in time"
    return outcomes


def all_contacts(control) -> list[dict]:
    return control.contacts(include_archived=True)


@pytest.fixture
def setup(aws, cliniko, monkeypatch, tmp_path: Path):
    stack = create_worker_stack("rel")
    run = uuid.uuid4().hex[:10]
    accounts = [f"acct-{i:02d}" for i in range(ACCOUNTS)]
    keys = {
        # Fresh keys per run: the client's rate budget is per key and process-wide.
        name: f"MS0xrel{run}{i:02d}-{SHARDS[i % len(SHARDS)]}"
        for i, name in enumerate([*accounts, BROKEN])
    }
    for name in accounts:  # the broken clinic's key is missing from Cliniko for now
        cliniko.control.add_key(keys[name])
    put_secrets({f"tests/cliniko/{name}": key for name, key in keys.items()})
    config = tmp_path / "cliniko_accounts.yaml"
    lines = ["accounts:"]
    lines += [f"  {name}: {{api_key_secret: tests/cliniko/{name}}}" for name in keys]
    config.write_text("\n".join(lines) + "\n", encoding="utf-8")
    worker_environment(
        monkeypatch,
        stack,
        cliniko.base_url_template,
        config,
        DEAD_LETTER_QUEUE_URL=stack.dead_letter_queue_url,
        CLINIKO_MAX_WAIT_SECONDS="10",
    )
    return stack, keys


def test_five_hundred_submissions_under_faults(setup, cliniko) -> None:
    stack, keys = setup
    rng = random.Random(20261123)
    groups = build_people(rng, [f"acct-{i:02d}" for i in range(ACCOUNTS)])
    bodies, owner = build_messages(rng, groups)
    assert len(bodies) == 500
    everyone = {p.identity: p for people in groups.values() for p in people}
    # The claim check, as the intake API does it: bodies in the store, ids in the queue.
    store = stack.store()
    for body in set(bodies):
        store.put(Submission.from_json(body).submission_id, body, PersonKeys())
    queued = [stack.queued_message(Submission.from_json(b)) for b in bodies]
    for start in range(0, len(queued), 10):
        stack.sqs.send_message_batch(
            QueueUrl=stack.queue_url,
            Entries=[
                {"Id": str(i), "MessageBody": b} for i, b in enumerate(queued[start : start + 10])
            ],
        )

    chaos = Chaos(cliniko.control)
    chaos.start()
    try:
        outcomes = drain_with_workers(stack, time.monotonic() + DEADLINE_SECONDS)
    finally:
        chaos.stopped.set()
        chaos.join()
    assert outcomes["received"] >= 500

    # --- after the storm: nobody doubled, nobody lost ---------------------------------
    contacts = all_contacts(cliniko.control)
    per_identity = Counter(contact_identity(c) for c in contacts)
    doubled = [i for i, n in per_identity.items() if n > 1]
    assert doubled == []
    assert set(per_identity) <= set(everyone)
    dead = stack.drain(stack.dead_letter_queue_url)
    dead_reasons = {}
    script = load_dead_letters_script()
    failures = DynamoFailures(stack.dynamodb, stack.idempotency_table)
    for message in dead:
        sub = QueuedSubmission.from_json(message["Body"])
        attribute = message.get("MessageAttributes", {}).get("failure_reason", {})
        stored = failures.get(message["MessageId"])
        reason = attribute.get("StringValue") or (stored.reason if stored else None)
        assert reason, f"dead letter {message['MessageId']} has no reason"
        dead_reasons[sub.submission_id] = reason
    for body in set(bodies):
        sub = Submission.from_json(body)
        person = owner[sub.submission_id]
        assert person.identity in per_identity or sub.submission_id in dead_reasons, (
            f"{sub.submission_id} is neither a contact nor a dead letter"
        )
    broken = {p.identity for p in groups["broken"]}
    assert broken.isdisjoint(per_identity)
    broken_subs = {s for s, p in owner.items() if p.account == BROKEN}
    assert broken_subs <= set(dead_reasons)  # every one of them waits in the DLQ
    # The reason is the last attempt's: mostly the 401, a 5xx when that came first.
    assert "cliniko_unauthorized" in {dead_reasons[s] for s in broken_subs}
    assert stack.drain(stack.parked_queue_url) == []
    ledger = {e["contact_id"] for e in stack.ledger_items()}
    assert ledger == {c["id"] for c in contacts}

    faults = cliniko.control.counters()
    print(
        f"\nreliability: {len(bodies)} messages, {outcomes['received']} receives, "
        f"{outcomes['failed']} failed attempts, {len(contacts)} contacts, "
        f"dead letters {dict(Counter(dead_reasons.values()))}, "
        f"Cliniko answers {faults.get('by_status')}"
    )

    # Make the dead letters visible again for the script (drain hid them).
    for message in dead:
        stack.sqs.change_message_visibility(
            QueueUrl=stack.dead_letter_queue_url,
            ReceiptHandle=message["ReceiptHandle"],
            VisibilityTimeout=0,
        )

    # --- the operator registers the missing key and replays -----------------------------
    cliniko.control.add_key(keys[BROKEN])
    out = io.StringIO()
    assert script.main(["list", "--json"], out=out) == 0
    listed = [json.loads(line) for line in out.getvalue().splitlines()]
    assert len(listed) == len(dead)
    assert all(row["reason"] != script.NO_REASON for row in listed)
    assert script.main(["replay", "--all"], out=io.StringIO()) == 0
    drain_with_workers(stack, time.monotonic() + DEADLINE_SECONDS)

    contacts = all_contacts(cliniko.control)
    per_identity = Counter(contact_identity(c) for c in contacts)
    assert per_identity == Counter(set(everyone))  # everyone, exactly once
    assert stack.counts(stack.dead_letter_queue_url) == (0, 0)
    assert {e["contact_id"] for e in stack.ledger_items()} == {c["id"] for c in contacts}
    for contact in contacts:
        person = everyone[contact_identity(contact)]
        assert contact["first_name"] == person.draft.first_name
