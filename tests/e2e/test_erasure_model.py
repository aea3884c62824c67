"""Erasure on request against a randomized model of the whole system (hypothesis stateful).

The real intake API, worker (Lambda's SQS poller emulated), scripts/dead_letters.py and the
erasure API handler, moto over HTTP and the Cliniko emulator over HTTP, with two Cliniko
accounts (main-clinic on au1, north-clinic on uk1: the html source routes to the first, the
partner-json source to the second). Three people, two of whom share an email. Rules, in any
order: a person's form (a new submission, or a provider's redelivery of an earlier one), the
worker delivering what is queued (SQS duplicates included), a submission that dead-letters
(Cliniko down) or parks (staff typed the person in too), replays of the dead letters and of the
parked queue, erasures by email or by contact id (real or dry run, a fresh request id or one
used before, two at once), an erasure cut short (the function killed, Cliniko dropping the
connection) and retried with its request id.

Invariants (README "Erasure on request"):
- after an erasure by email completes, none of the people of that email has a value (name,
  email, phones, notes, company) in any Cliniko contact, active or archived, in either account,
  nor in any DynamoDB item or SQS message; after one by contact id, none in our stores (the
  matched contact's email names every stored submission) and the contact itself is scrubbed;
  a provider's redelivery, a dead-letter or parked replay of a submission made before it, or
  SQS's duplicate, never brings them back;
- a submission the person makes after the erasure is a new contact;
- a dry run changes nothing: Cliniko, the submission store, the queues, the claims;
- the same request id with the same target answers the same outcome and changes nothing;
- the audit trail verifies (every request's chain intact) and never holds a personal value;
- no log line, and no line of the dead-letter tool, ever holds a personal value.
"""

from __future__ import annotations

import io
import json
import re
import threading
import uuid
from collections import Counter
from dataclasses import dataclass, field
from typing import Any

import boto3
import pytest
from cliniko_automations.cliniko import ClinikoClient
from cliniko_automations.common.secrets import clear_secret_caches
from cliniko_automations.erasure.audit import DynamoAuditLog
from cliniko_automations.erasure.chain_check import verify_chain
from cliniko_automations.intake_worker import handler as worker_handler
from hypothesis import strategies as st
from hypothesis.stateful import (
    RuleBasedStateMachine,
    invariant,
    precondition,
    rule,
    run_state_machine_as_test,
)

from tests.e2e.test_erasure_api import erasure as erasure_body
from tests.e2e.test_erasure_api import post
from tests.fixtures.apigw import form_post_event
from tests.fixtures.aws import reset_moto
from tests.fixtures.state_machines import state_machine_settings
from tests.integration.erasure import stack as erasure
from tests.integration.erasure.stack import make_audit_table, whole_values_in
from tests.integration.intake_worker.e2e_world import build_intake_path
from tests.integration.intake_worker.resources import (
    MAX_RECEIVE_COUNT,
    captured_logs,
    load_dead_letters_script,
)
from tests.unit.intake_api import samples

erasure_stack = erasure.erasure_stack  # the fixture

ACCOUNTS = {"main-clinic": "au1", "north-clinic": "uk1"}
CHANNEL_ACCOUNT = {"html": "main-clinic", "json": "north-clinic"}
SHARED_EMAIL = "zq.household@example.org"


@dataclass(frozen=True)
class Person:
    first: str
    last: str
    email: str
    phone: str  # as typed, Australian mobile
    note: str
    company: str

    def values(self) -> list[str]:
        digits = re.sub(r"\D", "", self.phone)
        national = digits[1:]  # 491570111
        spaced = f"{national[:3]} {national[3:6]} {national[6:]}"
        return [
            self.first,
            self.last,
            f"{self.first} {self.last}",
            self.email,
            self.phone,
            digits,
            f"+61{national}",
            f"+61 {spaced}",
            national,
            spaced,
            self.note,
            self.company,
        ]


PEOPLE = (
    Person("Zephyrine", "Quillfeather", SHARED_EMAIL, "0491 570 111", "Thornapple", "Marrowgate"),
    Person("Ottoline", "Brackwater", SHARED_EMAIL, "0491 570 222", "Wistergloom", "Fenwickary"),
    Person(
        "Perpetua",
        "Vantongeren",
        "p.vantongeren@example.net",
        "0491 570 333",
        "Cobblestrand",
        "Ashgrovian",
    ),
)
EMAILS = sorted({p.email for p in PEOPLE})


def group(email: str) -> list[Person]:
    return [p for p in PEOPLE if p.email == email]


def group_values(email: str) -> list[str]:
    return [v for p in group(email) for v in p.values()]


ALL_VALUES = [v for p in PEOPLE for v in p.values()]


class Killed(BaseException):
    """The Lambda runtime ending the call at its timeout: no code of ours runs after it."""


# --------------------------------------------------------------------------------------------
# The world: rebuilt for each example (moto reset, emulator reset, fresh Cliniko keys).


@dataclass
class World:
    cliniko: Any
    monkeypatch: Any
    tmp_path: Any
    moto: str
    logs: Any = None
    path: Any = None
    keys: dict[str, str] = field(default_factory=dict)

    def rebuild(self) -> None:
        reset_moto(self.moto)
        clear_secret_caches()
        worker_handler._stalled.clear()
        control = self.cliniko.control
        control.reset()
        # A key per account per example: rate budgets are per key, in the process and in
        # the emulator, and each example starts with a whole minute's worth.
        self.keys = {
            "main-clinic": f"MS0xmodel{uuid.uuid4().hex[:16]}-au1",
            "north-clinic": f"MS0xmodel{uuid.uuid4().hex[:16]}-uk1",
        }
        for key in self.keys.values():
            control.add_key(key)
        self.cliniko.api_key = self.keys["main-clinic"]
        self.path = build_intake_path(self.cliniko, self.monkeypatch, self.tmp_path)
        self.monkeypatch.setenv("DEAD_LETTER_QUEUE_URL", self.path.stack.dead_letter_queue_url)
        # north-clinic gets its own key: two Cliniko accounts, not one searched twice.
        from cliniko_automations.common.accounts import load_accounts

        accounts = load_accounts()
        boto3.client("secretsmanager").put_secret_value(
            SecretId=accounts.key_secret("north-clinic"), SecretString=self.keys["north-clinic"]
        )
        make_audit_table("erasure-audit")
        self.monkeypatch.setenv("AUDIT_TABLE", "erasure-audit")

    # --- reading everything -------------------------------------------------------------

    def contacts(self, shard: str | None = None) -> list[dict[str, Any]]:
        return self.cliniko.control.contacts(include_archived=True, shard=shard)

    def tables(self) -> list[str]:
        return sorted(_dynamodb().tables)

    def items(self, table: str) -> list[dict[str, Any]]:
        """Every item of a table, in DynamoDB's JSON, from moto's own backend (a scan over
        HTTP per table per step would double the run's time)."""
        return [item.to_json()["Attributes"] for item in _dynamodb().tables[table].all_items()]

    def queues(self) -> list[str]:
        stack = self.path.stack
        return [stack.queue_url, stack.dead_letter_queue_url, stack.parked_queue_url]

    def messages(self, queue_url: str) -> list[dict[str, Any]]:
        """Every message of a queue, in flight or not, read from moto's own backend: a
        receive would count towards the redrive's five receives."""
        from moto.sqs.models import sqs_backends

        account, name = queue_url.rstrip("/").split("/")[-2:]
        queue = sqs_backends[account]["eu-west-1"].queues[name]
        with queue._messages_lock:
            held = list(queue._messages)
        return [
            {
                "MessageId": m.id,
                "Body": m.body,
                "MessageAttributes": {k: str(v) for k, v in (m.message_attributes or {}).items()},
            }
            for m in held
        ]

    def snapshot(self) -> dict[str, Any]:
        """What a dry run must leave as it was."""
        idempotency = [
            i
            for i in self.items(self.path.stack.idempotency_table)
            if not i["id"]["S"].startswith("erasure-request#")
        ]
        return {
            "cliniko": sorted(
                (json.dumps(c, sort_keys=True) for c in self.contacts()),
            ),
            "store": sorted(
                json.dumps(i, sort_keys=True) for i in self.items(self.path.stack.submission_table)
            ),
            "idempotency": sorted(json.dumps(i, sort_keys=True) for i in idempotency),
            "queues": {q: sorted(m["Body"] for m in self.messages(q)) for q in self.queues()},
        }


WORLD: World | None = None
STATS: Counter[str] = Counter()  # what the run exercised, printed with -s


def _dynamodb() -> Any:
    from moto.dynamodb.models import dynamodb_backends

    return dynamodb_backends["123456789012"]["eu-west-1"]


def found(text: str, values: list[str]) -> list[str]:
    return whole_values_in(text, values)


# --------------------------------------------------------------------------------------------


class ErasureModel(RuleBasedStateMachine):
    def __init__(self) -> None:
        super().__init__()
        assert WORLD is not None
        self.world = WORLD
        self.world.rebuild()
        self.dead_letters = load_dead_letters_script()
        self.n = 0
        # A person's submissions as sent: (channel, key or body, made while which erasure
        # epoch of its email). A redelivery re-sends one of them exactly.
        self.sent: dict[int, list[tuple[str, str, bytes | None]]] = {i: [] for i in range(3)}
        # Emails an erasure by email completed for, and nobody of them has submitted since:
        # nothing of them anywhere (Cliniko and our stores).
        self.erased_everywhere: set[str] = set()
        # Emails whose stored submissions an erasure (by email or contact id) purged, and
        # nobody of them has submitted since: nothing of them in our stores.
        self.erased_stores: set[str] = set()
        # Submission ids accepted for an erased person's redelivery, not yet delivered: the
        # API stores the body, the worker drops it (README: tombstones are read by the worker).
        self.pending_redeliveries: set[str] = set()
        # People who submitted anew after their email's erasure: (person, account).
        self.returning: list[tuple[int, str]] = []
        # Request ids used: id -> (target, dry_run, all_matches, last answer).
        self.requests: dict[str, dict[str, Any]] = {}
        self.open_requests: list[str] = []
        self.tool_output: list[str] = []
        self.log_lines_seen = len(self.world.logs.lines)

    # --- helpers -----------------------------------------------------------------------

    def _next(self) -> int:
        self.n += 1
        return self.n

    def _event(self, channel: str, body: bytes, key: str | None) -> dict[str, Any]:
        if channel == "json":
            headers = {
                "Content-Type": "application/json",
                "X-Signature": samples.t_v1_signature(body),
                "Idempotency-Key": key or "",
            }
            return form_post_event("partner-json", body, headers)
        headers = {"Content-Type": "application/x-www-form-urlencoded", "Origin": samples.ORIGIN}
        return form_post_event("website-contact-html", body, headers, base64=True)

    def _body(self, person: Person, channel: str, n: int) -> bytes:
        if channel == "json":
            return samples.json_body(
                first_name=person.first,
                last_name=person.last,
                email=person.email,
                mobile=person.phone,
                company_name=person.company,
                notes=f"{person.note} visit {n}",
            )
        from urllib.parse import urlencode

        return urlencode(
            {
                "name": f"{person.first} {person.last}",
                "email": person.email,
                "phone": person.phone,
                "organisation": person.company,
                "message": f"{person.note} visit {n}",
                "website": "",
            }
        ).encode()

    def _post(self, channel: str, body: bytes, key: str | None) -> str:
        answer = self.world.path.post(self._event(channel, body, key))
        assert answer["statusCode"] in (202, 303), answer
        if channel == "json":
            return json.loads(answer["body"])["submission_id"]
        return ""

    def _work(self, rounds: int = 10) -> None:
        self.world.path.work(rounds=rounds)

    def _erase(self, request_id: str, target: dict[str, Any], **flags: Any) -> tuple[int, dict]:
        body = erasure_body(request_id=request_id, **target, **flags)
        return post(body)

    def _record_erasure(self, target: dict[str, Any], status: int, answer: dict) -> None:
        """What a completed real erasure promises, in the model."""
        by = "email" if "email" in target else "contact_id"
        STATS[f"erasure by {by}: {status} {answer.get('status')} {answer.get('result')}"] += 1
        if status != 200 or answer.get("status") != "completed" or answer.get("dry_run"):
            return
        assert answer["result"] in ("erased", "no_record_found"), answer
        if "email" in target:
            email = target["email"]
            self.erased_everywhere.add(email)
            self.erased_stores.add(email)
        else:
            email = target.get("_email")
            if email:
                self.erased_stores.add(email)
        self.returning = [(i, a) for i, a in self.returning if PEOPLE[i].email != email]

    # --- rules: the intake ----------------------------------------------------------------

    @rule(who=st.integers(0, 2), channel=st.sampled_from(["json", "html"]), now=st.booleans())
    def submit(self, who: int, channel: str, now: bool = False) -> None:
        """A new submission: its own Idempotency-Key (json) or its own content (html); with
        `now`, the worker takes it at once (else it waits in the queue)."""
        person = PEOPLE[who]
        n = self._next()
        body = self._body(person, channel, n)
        key = f"order-{n}" if channel == "json" else None
        self._post(channel, body, key)
        self.sent[who].append((channel, key or "", body))
        # Made now, after any erasure: the person is back, by their own new submission.
        if person.email in self.erased_everywhere or person.email in self.erased_stores:
            self.returning.append((who, CHANNEL_ACCOUNT[channel]))
        self.erased_everywhere.discard(person.email)
        self.erased_stores.discard(person.email)
        if now:
            self.deliver(10)

    @precondition(lambda self: any(self.sent.values()))
    @rule(data=st.data())
    def provider_redelivers(self, data: Any) -> None:
        """A provider sends an earlier submission again: same key (json), same content (html)."""
        who = data.draw(st.sampled_from([i for i, s in self.sent.items() if s]))
        channel, key, body = data.draw(st.sampled_from(self.sent[who]))
        submission_id = self._post(channel, body, key or None)
        email = PEOPLE[who].email
        if email in self.erased_stores:
            # Made before the erasure: the worker must drop it; meanwhile its body waits.
            self.pending_redeliveries.add(submission_id or "*html*")

    @rule(rounds=st.sampled_from([1, 10]))
    def deliver(self, rounds: int) -> None:
        self._work(rounds)
        if self.world.path.stack.counts(self.world.path.stack.queue_url) == (0, 0):
            self.pending_redeliveries.clear()
            self._check_returning()

    @precondition(lambda self: any(self.sent.values()))
    @rule()
    def sqs_duplicates_a_message(self) -> None:
        """SQS delivers a message twice: a copy of a queued one."""
        stack = self.world.path.stack
        messages = self.world.messages(stack.queue_url)
        if messages:
            stack.sqs.send_message(QueueUrl=stack.queue_url, MessageBody=messages[0]["Body"])

    @rule(who=st.integers(0, 2), channel=st.sampled_from(["json", "html"]))
    def submission_dead_letters(self, who: int, channel: str) -> None:
        """Cliniko fails every request while the worker tries: five receives, a dead letter."""
        self.submit(who, channel)
        control = self.world.cliniko.control
        control.set_faults(error_rate=1.0, statuses=[503])
        try:
            self._work(rounds=MAX_RECEIVE_COUNT + 1)
        finally:
            control.clear_faults()
            worker_handler._stalled.clear()

    @rule(who=st.integers(0, 2), account=st.sampled_from(sorted(ACCOUNTS)))
    def staff_type_the_person_in(self, who: int, account: str) -> None:
        """Reception types the person into Cliniko: with a submission's contact, two share the
        email, and the next submission parks."""
        person = PEOPLE[who]
        client = self.world.cliniko.client(api_key=self.world.keys[account])
        client.create_contact(
            {
                "first_name": person.first,
                "last_name": person.last,
                "email": person.email,
                "company_name": person.company,
                "notes": person.note,
                "phone_numbers": [{"number": person.phone, "phone_type": "Mobile"}],
            }
        )
        self.erased_everywhere.discard(person.email)

    @rule()
    def replay_dead_letters(self) -> None:
        out = io.StringIO()
        code = self.dead_letters.main(["replay", "--all"], out=out)
        assert code in (0, 1), out.getvalue()
        self.tool_output.append(out.getvalue())
        listing = io.StringIO()
        self.dead_letters.main(["list"], out=listing)
        self.tool_output.append(listing.getvalue())
        self._work()

    @rule()
    def replay_parked(self) -> None:
        out = io.StringIO()
        code = self.dead_letters.main(["--parked", "replay", "--all"], out=out)
        assert code in (0, 1), out.getvalue()
        self.tool_output.append(out.getvalue())
        self._work()

    # --- rules: erasure -------------------------------------------------------------------

    def _target(self, data: Any) -> dict[str, Any]:
        by = data.draw(st.sampled_from(["email", "email", "contact_id"]))
        email = data.draw(st.sampled_from(self._emails_sent()))
        contacts = self.world.contacts()
        if by == "email" or not contacts:
            return {"email": email}
        # An index, not a contact: what is drawn must not depend on Cliniko's ids, or a
        # replayed example draws differently (hypothesis' FlakyStrategyDefinition).
        contact = contacts[data.draw(st.integers(0, 7), label="contact") % len(contacts)]
        account = next(a for a, s in ACCOUNTS.items() if s == contact["shard"])
        # `_email`: the model's note of whose contact it is (not sent).
        email = (contact.get("email") or "").lower()
        return {"contact_id": str(contact["id"]), "account": account, "_email": email}

    def _emails_sent(self) -> list[str]:
        """The emails of people who sent something (an erasure of nobody teaches little)."""
        return sorted({PEOPLE[i].email for i, sent in self.sent.items() if sent}) or EMAILS

    @staticmethod
    def _sent(target: dict[str, Any]) -> dict[str, Any]:
        return {k: v for k, v in target.items() if not k.startswith("_")}

    @precondition(lambda self: any(self.sent.values()))
    @rule(data=st.data(), dry_run=st.booleans(), all_matches=st.booleans())
    def request_erasure(self, data: Any, dry_run: bool, all_matches: bool) -> None:
        target = self._target(data)
        request_id = f"r-{self._next()}"
        flags = {"dry_run": True} if dry_run else {}
        if all_matches:
            flags["erase_all_matches"] = True
        before = self.world.snapshot() if dry_run else None
        status, answer = self._erase(request_id, self._sent(target), **flags)
        assert status in (200, 409), (status, answer)
        if dry_run:
            assert self.world.snapshot() == before, "a dry run changed something"
        self.requests[request_id] = {"target": target, "flags": flags, "answer": (status, answer)}
        if status == 409:
            self.open_requests.append(request_id)
        self._record_erasure(target, status, answer)

    @precondition(lambda self: bool(self.requests))
    @rule(data=st.data(), same_target=st.booleans())
    def reuse_a_request_id(self, data: Any, same_target: bool) -> None:
        request_id = data.draw(st.sampled_from(sorted(self.requests)))
        known = self.requests[request_id]
        first_status, first_answer = known["answer"]
        if same_target:
            before = self.world.snapshot()
            status, answer = self._erase(request_id, self._sent(known["target"]), **known["flags"])
            if first_status == 200 and first_answer.get("status") == "completed":
                # The stored outcome, answered again; nothing changes.
                assert (status, answer["status"], answer["result"]) == (
                    200,
                    first_answer["status"],
                    first_answer["result"],
                ), (first_answer, answer)
                assert answer["receipt"] == first_answer["receipt"]
                after = self.world.snapshot()
                assert after["cliniko"] == before["cliniko"]
            else:
                known["answer"] = (status, answer)
                self._record_erasure(known["target"], status, answer)
                if status == 200 and answer.get("status") == "completed":
                    self.open_requests = [r for r in self.open_requests if r != request_id]
        else:
            other = next(e for e in EMAILS if e != known["target"].get("email"))
            status, answer = self._erase(request_id, {"email": other}, **known["flags"])
            assert status == 409, (status, answer)

    @precondition(lambda self: bool(self.open_requests))
    @rule(data=st.data())
    def confirm_or_retry_open_request(self, data: Any) -> None:
        """Send an open request again, confirming all matches (a 409's several contacts, or an
        attempt cut short, which a retry finishes)."""
        request_id = data.draw(st.sampled_from(self.open_requests))
        known = self.requests[request_id]
        flags = {**known["flags"], "erase_all_matches": True}
        status, answer = self._erase(request_id, self._sent(known["target"]), **flags)
        assert status in (200, 409, 502), (status, answer)
        known["answer"] = (status, answer)
        known["flags"] = flags
        self._record_erasure(known["target"], status, answer)
        if status == 200:
            self.open_requests.remove(request_id)

    @precondition(lambda self: any(self.sent.values()))
    @rule(
        data=st.data(),
        where=st.sampled_from(["update", "archive"]),
        how=st.sampled_from(["killed", "dropped"]),
    )
    def erasure_cut_short_then_retried(self, data: Any, where: str, how: str) -> None:
        """The erasure's function is killed (or Cliniko drops the connection) after the scrub or
        the archive reached Cliniko; the operator sends the same request id again."""
        target = self._target(data)
        retry_now = data.draw(st.booleans(), label="retry at once")
        request_id = f"r-{self._next()}"
        flags = {"erase_all_matches": True}
        method = "update_contact" if where == "update" else "archive_contact"
        real = getattr(ClinikoClient, method)
        killed: list[str] = []

        def cut(client: Any, *args: Any, **kwargs: Any) -> Any:
            result = real(client, *args, **kwargs)
            if not killed:
                killed.append(method)
                raise Killed
            return result

        if how == "killed":
            with pytest.MonkeyPatch.context() as mp:
                mp.setattr(ClinikoClient, method, cut)
                try:
                    status, answer = self._erase(request_id, self._sent(target), **flags)
                except Killed:
                    status, answer = 0, {}
            if killed:
                # The attempt's time runs out: its id is free again (README: "an attempt cut
                # short by the function's timeout frees its id when that timeout passes").
                table = self.world.path.stack.idempotency_table
                for item in self.world.items(table):
                    # Powertools keys a record by a hash of the request id: the attempt
                    # killed is the one record still in progress.
                    if (
                        item["id"]["S"].startswith("erasure-request#")
                        and item.get("status", {}).get("S") == "INPROGRESS"
                    ):
                        boto3.client("dynamodb").update_item(
                            TableName=table,
                            Key={"id": item["id"]},
                            UpdateExpression="SET in_progress_expiration = :past",
                            ExpressionAttributeValues={":past": {"N": "1"}},
                        )
        else:
            http_method = ["PATCH", "PUT"] if where == "update" else ["POST", "DELETE"]
            self.world.cliniko.control.set_faults(fail_next=["drop_after"] * 8, methods=http_method)
            try:
                status, answer = self._erase(request_id, self._sent(target), **flags)
            finally:
                self.world.cliniko.control.clear_faults()
        self.requests[request_id] = {"target": target, "flags": flags, "answer": (status, answer)}
        self._record_erasure(target, status, answer)
        if not (status == 200 and answer.get("status") == "completed"):
            self.open_requests.append(request_id)
            if retry_now:
                status, answer = self._erase(request_id, self._sent(target), **flags)
                assert (status, answer.get("status")) == (200, "completed"), (status, answer)
                self.requests[request_id]["answer"] = (status, answer)
                self._record_erasure(target, status, answer)
                self.open_requests.remove(request_id)

    @precondition(lambda self: any(self.sent.values()))
    @rule(data=st.data())
    def two_erasures_at_once(self, data: Any) -> None:
        email = data.draw(st.sampled_from(self._emails_sent()))
        answers: dict[str, tuple[int, dict]] = {}
        ids = [f"r-{self._next()}", f"r-{self._next()}"]

        def run(request_id: str) -> None:
            answers[request_id] = self._erase(request_id, {"email": email}, erase_all_matches=True)

        threads = [threading.Thread(target=run, args=(r,)) for r in ids]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join(60)
        for request_id in ids:
            status, answer = answers[request_id]
            assert status in (200, 502), (status, answer)
            self.requests[request_id] = {
                "target": {"email": email},
                "flags": {"erase_all_matches": True},
                "answer": (status, answer),
            }
            if status != 200:
                self.open_requests.append(request_id)
            self._record_erasure({"email": email}, status, answer)

    # --- invariants ------------------------------------------------------------------------

    def _check_returning(self) -> None:
        """A person who submitted after their erasure is a contact again (when nothing else
        keeps them out: a parked or dead-lettered submission)."""
        stack = self.world.path.stack
        if sum(stack.counts(stack.parked_queue_url)) or sum(
            stack.counts(stack.dead_letter_queue_url)
        ):
            return
        for who, account in self.returning:
            person = PEOPLE[who]
            active = [
                c
                for c in self.world.contacts(ACCOUNTS[account])
                if not c["archived_at"] and (c.get("email") or "").lower() == person.email
            ]
            assert active, f"{person.first}'s submission after the erasure made no contact"
        self.returning = []

    @invariant()
    def erased_people_are_nowhere(self) -> None:
        STATS["checks with people erased everywhere"] += bool(self.erased_everywhere)
        STATS["checks with people erased from our stores"] += bool(self.erased_stores)
        problems = []
        for email in sorted(self.erased_everywhere):
            values = group_values(email)
            for contact in self.world.contacts():
                if hits := found(json.dumps(contact), values):
                    problems.append(f"Cliniko contact {contact['id']} ({contact['shard']}): {hits}")
        for email in sorted(self.erased_stores | self.erased_everywhere):
            values = group_values(email)
            for table in self.world.tables():
                for item in self.world.items(table):
                    text = json.dumps(item, default=str)
                    if hits := found(text, values):
                        sid = item.get("id", {}).get("S", "")
                        if table.endswith("submission-store") and (
                            sid.removeprefix("submission#") in self.pending_redeliveries
                            or "*html*" in self.pending_redeliveries
                        ):
                            continue
                        problems.append(f"table {table} item {sid or item}: {hits}")
            for queue in self.world.queues():
                for message in self.world.messages(queue):
                    if hits := found(json.dumps(message), values):
                        problems.append(f"queue {queue.rsplit('/', 1)[-1]}: {hits}")
        assert not problems, "\n".join(problems)

    @invariant()
    def audit_trail_verifies_and_holds_nothing_personal(self) -> None:
        audit = DynamoAuditLog("erasure-audit")
        for request_id in audit.request_ids():
            records, places = audit.records_and_places(request_id)
            check = verify_chain(request_id, records, places)
            assert check.intact, (request_id, check.problems)
        text = json.dumps(self.world.items("erasure-audit"), default=str)
        assert found(text, ALL_VALUES) == []

    @invariant()
    def no_personal_value_in_logs(self) -> None:
        lines = self.world.logs.lines[self.log_lines_seen :]
        self.log_lines_seen += len(lines)
        leaked = [line for line in lines if found(line, ALL_VALUES)]
        assert not leaked, leaked[:3]

    def teardown(self) -> None:
        for text in self.tool_output:
            assert found(text, ALL_VALUES) == [], text


@pytest.fixture
def world(erasure_stack, cliniko, monkeypatch, tmp_path, aws):
    global WORLD
    # Cliniko's 5xx are retried by the client with jittered backoff (up to seconds per
    # request): no backoff here, or each dead letter costs the run ten seconds.
    from cliniko_automations.cliniko import transport

    monkeypatch.setattr(transport.RetryPolicy, "backoff", lambda self, retry, rng: 0.0)
    with captured_logs("intake", "erasure") as logs:
        WORLD = World(cliniko, monkeypatch, tmp_path, aws, logs)
        yield WORLD
    WORLD = None


@pytest.mark.timeout(900)  # a failure's shrinking takes minutes; a pass about one
def test_erasure_model(world):
    run_state_machine_as_test(
        ErasureModel,
        settings=state_machine_settings(examples=20, steps=12),
    )
    for line in sorted(STATS.items()):
        print("STATS", *line)
