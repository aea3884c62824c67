"""A randomized stateful model of the signed webhooks: hypothesis interleaves contact changes
polled through the real handler, receivers on 127.0.0.1 answering 2xx / 400 / 503 / 429 / by
closing the connection, EventBridge's delivery of each subscriber's rule (moto routes it; a
stand-in sends it as the rule's target would, retries what AWS retries and dead-letters the
rest as EventBridge puts a letter), the subscribers file changing (a subscriber removed, its
events or `include_fields` narrowed, its secret rotated: the webhook stack deployed again with
it; its rule disabled and enabled in AWS), the real `webhook_dead_letters` tool (show, replay
one, a change's or all, delete) and the real erasure API erasing a contact whose deliveries
sit in the dead letters.

Every example starts with dead letters for every subscriber (the contacts made, one archived,
every receiver down until AWS gave up), each subscriber's entry in the file changed or not
while they wait, and maybe a replay of them all: what the tool, the erasure and a change to the
subscribers file act on from the first step. Four rules, so each comes often in 12 steps. The
default run is derandomized, and its draws are seeded from this class's source: an edit of the
class draws other examples, and the run's closing asserts say whether the replays the model
is for (of letters a change or an erasure now forbids, or a disabled rule would drop, or
signed after a rotation) still happen.

Invariants (README "Signed webhooks", "Replaying webhook dead letters", "Erasure on request"):
- every delivery a receiver accepts verifies with the Standard Webhooks reference library
  under the subscriber's CURRENT secret, is of a type it takes now and carries contact fields
  only if it opts in now; the one allowance is a delivery signed before the change, which AWS
  may still be retrying (at most 5 minutes);
- what the feed or a replay publishes after a change obeys the change (no allowance), and a
  replay is signed afresh: a receiver that is up accepts it at once;
- a (subscriber, webhook-id) a receiver accepted is never accepted again (no crash is modelled,
  so the README's one duplicate does not arise);
- the listing marks as not replayable exactly the letters webhooks.yaml and the erasures now
  forbid (a letter carrying contact fields to a subscriber no longer opted in to them is
  replayable: it goes without them, an erased contact's and an erasure's notice alike), a
  letter the tool cannot deliver (refused, or no enabled rule routes it) stays in the queue,
  and one it may deliver is gone once replayed; a replay keeps the letter's webhook-id;
- once a contact is erased, no letter carrying its values is left, and no replay publishes or
  delivers them;
- no contact value in a log line or in the tool's output (stdout and stderr).
"""

from __future__ import annotations

import contextlib
import datetime as dt
import io
import json
import secrets
import threading
import uuid
from collections import Counter
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any, ClassVar

import boto3
import httpx
import pytest
import yaml
from cliniko_automations.changefeed import handler
from cliniko_automations.changefeed.events import WEBHOOKS_SOURCE
from cliniko_automations.changefeed.subscribers import load_subscribers
from cliniko_automations.changefeed.webhook_dead_letters import main as letters_main
from cliniko_automations.changefeed.webhook_stack import BODY_PATH, HEADER_PATHS, render
from cliniko_automations.common.secrets import clear_secret_caches
from cliniko_automations.erasure.models import ErasureRequest
from cliniko_automations.erasure.service import build_eraser
from cliniko_automations.erasure.settings import ErasureSettings
from cliniko_emulator.control import plain_http_tls_context
from hypothesis import strategies as st
from hypothesis.stateful import (
    RuleBasedStateMachine,
    initialize,
    invariant,
    precondition,
    rule,
    run_state_machine_as_test,
)
from local_run.webhooks import json_path
from standardwebhooks import Webhook
from standardwebhooks.webhooks import WebhookVerificationError

from tests.fixtures.aws import every_message
from tests.fixtures.state_machines import (
    a_fresh_start,
    assert_none_printed,
    cliniko_waits_pass_at_once,
    model_world,
    state_machine_settings,
    tapped_logs,
)
from tests.integration.changefeed.stack import (
    KEY_SECRET,
    SCHEDULED_EVENT,
    context,
    create_feed_stack,
    feed_environment,
    new_webhook_secret,
)
from tests.integration.cleanup.tables import create_table
from tests.integration.erasure.stack import PEPPER, make_audit_table
from tests.integration.intake_worker.resources import create_submission_store

ALL_TYPES = ["contact.created", "contact.updated", "contact.archived", "contact.unarchived"]
INITIAL = {
    "crm-sync": {"events": ALL_TYPES[:3], "include_fields": False},
    "full-copy": {"events": ALL_TYPES, "include_fields": True},
    "archive-log": {"events": ALL_TYPES[2:], "include_fields": True},
}
NAMES = sorted(INITIAL)
# "ok" first: what a draw shrinks to. A receiver too slow to answer is a closed connection to
# the rule's target (a timeout): not drawn apart, as its wait would cost every example time.
MODES = ["ok", "error", "bad", "busy", "close"]
STATUS = {"bad": 400, "error": 503, "busy": 429}
# A retryable failure is dead-lettered after this many attempts (AWS: after 5 minutes).
ATTEMPTS = 3
# No receiver mode waits ("close" shuts at once): the bound only has to outlast a loaded CI
# machine, where an accepted delivery timed out would be retried and accepted twice.
CLIENT_TIMEOUT = 10.0
EDITS = ["fields_off", "narrow", "rotate", "toggle_rule", "remove"]
# A replay of all first, and twice: it meets every letter, whatever state each is in.
TOOL = ["replay-all", "replay-all", "replay", "replay-webhook-id", "show", "delete"]


class Receivers:
    """One HTTP server on 127.0.0.1, a path per subscriber; each answers as its mode says and,
    in mode "ok", verifies with the reference library under the secret the model holds now."""

    def __init__(self) -> None:
        self.modes: dict[str, str] = {}
        self.secrets: dict[str, str] = {}
        self.got: list[dict[str, Any]] = []  # each request: subscriber, headers, body, outcome
        receivers = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                name = self.path.rsplit("/", 1)[-1]
                body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
                headers = {k.lower(): v for k, v in self.headers.items()}
                mode = receivers.modes.get(name, "ok")
                entry = {"subscriber": name, "headers": headers, "body": body, "mode": mode}
                receivers.got.append(entry)
                if mode == "close":
                    self.close_connection = True
                    with contextlib.suppress(OSError):
                        self.connection.shutdown(2)
                    return
                if mode in STATUS:
                    self.send_response(STATUS[mode])
                    self.end_headers()
                    return
                try:
                    entry["payload"] = Webhook(receivers.secrets[name]).verify(body, headers)
                    entry["accepted"] = True
                    status = 204
                except WebhookVerificationError as error:
                    entry["problem"] = str(error)
                    status = 401
                self.send_response(status)
                self.end_headers()

            def log_message(self, *args: Any) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.client = httpx.Client(verify=plain_http_tls_context())  # one for every attempt
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def url(self, name: str) -> str:
        return f"http://127.0.0.1:{self.server.server_address[1]}/hooks/{name}"

    def stop(self) -> None:
        self.client.close()
        self.server.shutdown()
        self.server.server_close()


class WebhooksModel(RuleBasedStateMachine):
    world: ClassVar[dict[str, Any]] = {}

    def __init__(self) -> None:
        super().__init__()
        w = self.world
        self.mp, self.cliniko, self.log = w["mp"], w["cliniko"], w["log"]
        a_fresh_start(self.mp, w["moto"])
        # Cliniko emptied too: each example's polls list its own contacts only.
        self.cliniko.control.reset()
        self.cliniko.control.set_rate_limit(None)
        self.cliniko.control.add_key(self.cliniko.api_key)
        w["n"] += 1
        self.example = w["n"]
        self.dir = w["tmp"] / f"example{self.example}"
        self.dir.mkdir()
        self.stack = create_feed_stack()
        self.sqs, self.events = boto3.client("sqs"), boto3.client("events")
        # The tap of every delivery published (a prefix pattern: the replay tool's route check
        # reads exact values only, so the tap does not count as a route for it).
        self.events.put_rule(
            Name="to-webhooks",
            EventBusName=self.stack.bus,
            EventPattern=json.dumps({"source": [{"prefix": WEBHOOKS_SOURCE}]}),
        )
        self.receivers: Receivers = w["receivers"]
        self.receivers.got.clear()
        self.receivers.modes = dict.fromkeys(NAMES, "ok")
        # A copy down to the lists: a narrowing must not narrow the next example's start.
        self.config = {n: {**c, "events": list(c["events"])} for n, c in INITIAL.items()}
        self.secrets = {name: new_webhook_secret() for name in NAMES}
        self.receivers.secrets = dict(self.secrets)
        manager = boto3.client("secretsmanager")
        for name, value in self.secrets.items():
            manager.create_secret(Name=f"tests/webhooks/{name}", SecretString=value)
        self._write_subscribers()
        # Cliniko was emptied: the first poll publishes every contact made since.
        start = dt.datetime.now(dt.UTC) - dt.timedelta(minutes=1)
        feed_environment(
            self.mp, self.stack, self.cliniko, self.dir, BACKFILL_FROM=f"{start:%Y-%m-%dT%H:%M:%SZ}"
        )
        self._erasure_environment()
        self.dlq = self.sqs.create_queue(QueueName="webhook-dead-letters")["QueueUrl"]
        self.dlq_arn = self.sqs.get_queue_attributes(
            QueueUrl=self.dlq, AttributeNames=["QueueArn"]
        )["Attributes"]["QueueArn"]
        self.mp.setenv("WEBHOOK_DEAD_LETTER_QUEUE_ARN", self.dlq_arn)
        self.routes: dict[str, str] = {}  # subscriber -> its rule's queue
        self._route_arns: dict[str, str] = {}
        self.disabled: set[str] = set()
        self._deploy()
        # The model's state.
        self.step = 0
        self.contacts: list[str] = []
        self.personal: dict[str, list[str]] = {}  # contact id -> its values
        self.values: set[str] = set()
        self.erased: dict[str, int] = {}  # contact id -> step of its erasure
        # The webhook ids of the erasures' own notices: the feed's changes of a contact the
        # erasure left (`erased: true`, its fields only what the erasure wrote), which the
        # replay sends (README: the receiver holding the contact is told to delete it).
        self.erasure_notices: set[str] = set()
        self.changed_at: dict[str, int] = dict.fromkeys(NAMES, -1)  # types/fields narrowed
        self.rotated_at: dict[str, int] = dict.fromkeys(NAMES, -1)
        self.removed: set[str] = set()
        self.published: dict[str, tuple[int, str]] = {}  # signature -> (step, "feed"|"replay")
        # webhook-id -> (step first published, the contact's index): the letters' order.
        self.changes: dict[str, tuple[int, int]] = {}
        self.contact_of: dict[str, str] = {}  # webhook-id -> contact id
        self.accepted: Counter[tuple[str, str]] = Counter()
        self.seen_got = 0
        self.attempts: Counter[str] = Counter()
        self.log.lines.clear()
        self.output: list[str] = []
        self.counter = 0

    def teardown(self) -> None:
        self.receivers.modes = {}

    # -- the world ------------------------------------------------------------------------

    def _erasure_environment(self) -> None:
        suffix = uuid.uuid4().hex[:8]
        env = {
            "AUDIT_TABLE": f"erasure-audit-{suffix}",
            "IDEMPOTENCY_TABLE": f"erasure-idempotency-{suffix}",
            "SUBMISSION_TABLE": f"erasure-submissions-{suffix}",
            "PEPPER_SECRET_NAME": "erasure/pepper",
            "CLINIKO_API_KEY_SECRET_NAME": KEY_SECRET,
        }
        make_audit_table(env["AUDIT_TABLE"])  # the replay tool reads it
        for name, value in env.items():
            self.mp.setenv(name, value)
        self.erasure_env = env
        self.erasure_ready = False

    def _erasure_tables(self) -> None:
        """The erasure API's other tables and pepper, made at its first request."""
        if not self.erasure_ready:
            create_table("IdempotencyTable", self.erasure_env["IDEMPOTENCY_TABLE"])
            create_submission_store(boto3.client("dynamodb"), self.erasure_env["SUBMISSION_TABLE"])
            boto3.client("secretsmanager").create_secret(Name="erasure/pepper", SecretString=PEPPER)
            self.erasure_ready = True

    def _write_subscribers(self) -> None:
        subscribers = [
            {
                "name": name,
                "url": f"https://{name}.example.com/in",
                "events": list(config["events"]),
                "secret": f"tests/webhooks/{name}",
                "include_fields": config["include_fields"],
            }
            for name, config in sorted(self.config.items())
        ]
        text = yaml.safe_dump({"subscribers": subscribers}, sort_keys=False)
        (self.dir / "webhooks.yaml").write_text(text, encoding="utf-8")

    def _deploy(self) -> None:
        """The webhook stack deployed from webhooks.yaml: each subscriber's rule (its queue
        stands in for the API destination, enabled or disabled as the model holds it), rules
        of removed subscribers deleted."""
        rendered = render(load_subscribers(self.dir / "webhooks.yaml"))
        resources = rendered["Resources"]
        current = set()
        for resource in resources.values():
            if resource["Type"] != "AWS::Events::Rule":
                continue
            props = resource["Properties"]
            name = props["EventPattern"]["detail"]["subscriber"][0]
            current.add(name)
            (target,) = props["Targets"]
            assert target["InputPath"] == BODY_PATH
            assert target["RetryPolicy"]["MaximumEventAgeInSeconds"] == 300
            destination = resources[target["Arn"]["Fn::GetAtt"][0]]["Properties"]
            assert destination["InvocationRateLimitPerSecond"] == 5
            if name not in self.routes:
                url = self.sqs.create_queue(QueueName=f"route-{name}")["QueueUrl"]
                arn = self.sqs.get_queue_attributes(QueueUrl=url, AttributeNames=["QueueArn"])[
                    "Attributes"
                ]["QueueArn"]
                self.routes[name] = url
                self._route_arns[name] = arn
            self.events.put_rule(
                Name=f"rule-{name}",
                EventBusName=self.stack.bus,
                EventPattern=json.dumps(props["EventPattern"]),
                State="DISABLED" if name in self.disabled else "ENABLED",
            )
            self.events.put_targets(
                Rule=f"rule-{name}",
                EventBusName=self.stack.bus,
                Targets=[{"Id": "api-destination", "Arn": self._route_arns[name]}],
            )
        for name in set(self.routes) - current:
            with contextlib.suppress(Exception):
                self.events.remove_targets(
                    Rule=f"rule-{name}", EventBusName=self.stack.bus, Ids=["api-destination"]
                )
                self.events.delete_rule(Name=f"rule-{name}", EventBusName=self.stack.bus)

    def _drain_tap(self, kind: str) -> list[dict[str, Any]]:
        """The deliveries published since the last drain, each checked against the model."""
        events = self.stack.drain(self.stack.webhook_queue_url)
        for event in events:
            detail = event["detail"]
            signature = detail["webhook"]["signature"]
            if kind == "feed" and signature in self.published:
                continue
            # A replay in the second of the first publication signs the same headers again.
            self.published[signature] = (self.step, kind)
            name = detail["subscriber"]
            data = detail["body"]["data"]
            cid = str(data.get("contact_id"))
            self.contact_of[detail["webhook"]["id"]] = cid
            self.changes.setdefault(
                detail["webhook"]["id"],
                (self.step, self.contacts.index(cid) if cid in self.contacts else -1),
            )
            # Whatever is published now obeys webhooks.yaml as it is now.
            assert name not in self.removed, (kind, name)
            assert event["detail-type"] in self.config[name]["events"], (kind, name, event)
            if "contact" in data:
                assert self.config[name]["include_fields"], (kind, name, sorted(data))
            if cid in self.erased:
                # Published after the erasure: by a replay, or by the feed from Cliniko's
                # contact as the erasure left it.
                if kind == "feed":  # a replay sends a letter of before as it was
                    assert data.get("erased") is True, (kind, sorted(data))
                    self.erasure_notices.add(detail["webhook"]["id"])
                leaked = [v for v in self.personal[cid] if v in json.dumps(data)]
                assert not leaked, f"the {kind} published an erased contact's values: {leaked}"
            TALLY[f"published by the {kind}"] += 1
        return events

    # -- Cliniko's side, and AWS's delivery ----------------------------------------------------

    @initialize(
        n=st.integers(1, 3),
        then=st.tuples(*[st.sampled_from([None, *EDITS])] * len(NAMES)),
        replayed=st.booleans(),
    )
    def dead_letters_for_every_subscriber(
        self, n: int, then: tuple[str | None, ...], replayed: bool
    ) -> None:
        """Contacts made, the first archived; every receiver down until AWS gives up; `then`
        each subscriber's entry in webhooks.yaml changes (or not) while the letters wait (what
        a listing and a replay must obey), and, if `replayed`, an operator replays them all
        once the receivers are back."""
        for _ in range(n):
            self._create()
        self.cliniko.client().archive_contact(self.contacts[0])
        self._poll()
        self._deliver(dict.fromkeys(NAMES, "error"), five_minutes_pass=True)
        for name, edit in zip(NAMES, then, strict=True):
            if edit is not None:
                self._change_subscriber(edit, 0, [name])
        if replayed:
            self.operator_uses_the_tool("replay-all", 0)

    def _create(self) -> None:
        self.counter += 1
        tag = f"{self.example}n{self.counter}"
        body = {
            "first_name": f"Qzf{tag}x",
            "last_name": f"Qzl{tag}x",
            "email": f"qze{tag}x@example.com",
        }
        contact = self.cliniko.client().create_contact(body)
        cid = str(contact.id)
        self.contacts.append(cid)
        self.personal[cid] = list(body.values())
        self.values.update(body.values())
        _ALL_VALUES.update(body.values())

    @rule(
        change=st.sampled_from(["update", "archive", "create", "none"]),
        i=st.integers(0, 20),
        answers=st.lists(st.sampled_from(MODES), min_size=len(NAMES), max_size=len(NAMES)),
        five_minutes_pass=st.booleans(),
    )
    def contact_changed_polled_and_delivered(
        self, change: str, i: int, answers: list[str], five_minutes_pass: bool
    ) -> None:
        """A contact created, edited, archived or unarchived (or none), a poll of the feed,
        then each receiver answers as `answers` says and each rule's target makes one attempt
        per queued delivery: a 2xx is done, a 4xx other than 429 is dead-lettered at once, the
        rest retried, and dead-lettered once `five_minutes_pass` (AWS's
        MaximumEventAgeInSeconds) or after ATTEMPTS attempts."""
        left = [c for c in self.contacts if c not in self.erased]
        if change == "create" or not left:
            self._create()
        elif change != "none":
            cid = left[i % len(left)]
            client = self.cliniko.client()
            if change == "archive":
                record = client.get_contact(cid, include_archived=True)
                if record.archived_at is None:
                    client.archive_contact(cid)
                else:
                    self.cliniko.control.unarchive(cid)
            else:
                self.counter += 1
                city = f"Qzc{self.example}n{self.counter}x"
                self.personal[cid].append(city)
                self.values.add(city)
                _ALL_VALUES.add(city)
                client.update_contact(cid, {"city": city}, include_archived=True)
        self._poll()
        self._deliver(dict(zip(NAMES, answers, strict=True)), five_minutes_pass)

    def _poll(self) -> None:
        handler.lambda_handler(SCHEDULED_EVENT, context())
        self._drain_tap("feed")

    def _deliver(self, modes: dict[str, str], five_minutes_pass: bool) -> None:
        self.receivers.modes = modes
        for mode in modes.values():
            TALLY[f"receiver answers {mode}"] += 1
        for name, url in self.routes.items():
            # One attempt per delivery in this round: a retried one stays hidden till its end.
            retried = []
            while messages := self.sqs.receive_message(
                QueueUrl=url, MaxNumberOfMessages=10, VisibilityTimeout=60
            ).get("Messages", []):
                for message in messages:
                    if not self._attempt(name, url, message, five_minutes_pass):
                        retried.append(message["ReceiptHandle"])
            for handle in retried:
                self.sqs.change_message_visibility(
                    QueueUrl=url, ReceiptHandle=handle, VisibilityTimeout=0
                )
        self._check_received()

    def _attempt(self, name: str, url: str, message: Any, five_minutes_pass: bool) -> bool:
        """One attempt: whether the delivery is done with (delivered or dead-lettered)."""
        event = json.loads(message["Body"])
        body = json.dumps(json_path(event, BODY_PATH), separators=(",", ":"), ensure_ascii=False)
        headers = {h: str(json_path(event, p)) for h, p in HEADER_PATHS.items()}
        headers["content-type"] = "application/json; charset=utf-8"
        try:
            status = self.receivers.client.post(
                self.receivers.url(name),
                content=body.encode(),
                headers=headers,
                timeout=CLIENT_TIMEOUT,
            ).status_code
            code = f"HTTP_{status}"
        except httpx.HTTPError as error:
            status, code = 0, type(error).__name__
        TALLY[f"delivery answered {status}"] += 1
        handle = message["ReceiptHandle"]
        if 200 <= status < 300:
            self.sqs.delete_message(QueueUrl=url, ReceiptHandle=handle)
            return True
        self.attempts[message["MessageId"]] += 1
        retryable = status in (0, 401, 429) or status >= 500
        if retryable and not five_minutes_pass and self.attempts[message["MessageId"]] < ATTEMPTS:
            return False  # AWS tries again later
        self._dead_letter(message["Body"], code, self.attempts[message["MessageId"]])
        self.sqs.delete_message(QueueUrl=url, ReceiptHandle=handle)
        return True

    def _dead_letter(self, body: str, code: str, attempts: int) -> None:
        text = lambda value: {"DataType": "String", "StringValue": value}  # noqa: E731
        event = json.loads(body)
        data = event["detail"]["body"]["data"]
        quoted = " ".join(self.personal.get(str(data.get("contact_id")), []))
        self.sqs.send_message(
            QueueUrl=self.dlq,
            MessageBody=body,
            MessageAttributes={
                "ERROR_CODE": text(code),
                # The receiver's answer may quote the contact: never printed.
                "ERROR_MESSAGE": text(f"receiver said: {quoted}"),
                "EXHAUSTED_RETRY_CONDITION": text("MaximumEventAgeInSeconds"),
                "RETRY_ATTEMPTS": text(str(attempts)),
                # The subscriber's rule on the stack's bus (rule/<bus>/<rule>), as
                # EventBridge names it: the replay sends the letter to that bus only.
                "RULE_ARN": text(
                    f"arn:aws:events:eu-west-1:123456789012:rule/{self.stack.bus}/"
                    f"rule-{event['detail']['subscriber']}"
                ),
                "TARGET_ARN": text("arn:aws:events:eu-west-1:123456789012:api-destination/x"),
            },
        )
        TALLY["dead-lettered"] += 1

    def _check_received(self) -> None:
        got = self.receivers.got[self.seen_got :]
        self.seen_got = len(self.receivers.got)
        for entry in got:
            name = entry["subscriber"]
            signature = entry["headers"]["webhook-signature"]
            step, kind = self.published.get(signature, (None, None))
            assert step is not None, f"{name} got a delivery nobody published"
            if entry["mode"] != "ok":
                continue
            if not entry.get("accepted"):
                # Signed before the subscriber's secret was rotated, and retried since.
                assert step < self.rotated_at[name], (name, kind, entry.get("problem"))
                TALLY["a delivery signed with a rotated secret refused"] += 1
                continue
            payload = entry["payload"]
            key = (name, entry["headers"]["webhook-id"])
            self.accepted[key] += 1
            assert self.accepted[key] == 1, f"{key} accepted twice ({kind})"
            old = step < max(self.changed_at[name], self.rotated_at[name])
            config = self.config.get(name, {"events": [], "include_fields": False})
            if payload["type"] not in config["events"]:
                assert old, (name, kind, payload["type"])
            if "contact" in payload["data"] and not config["include_fields"]:
                assert old, (name, kind, "fields")
            cid = str(payload["data"]["contact_id"])
            if cid in self.erased and kind == "replay":
                leaked = [v for v in self.personal[cid] if v in entry["body"].decode()]
                assert not leaked, f"a replay delivered an erased contact's values: {leaked}"
            TALLY[f"accepted ({kind})"] += 1

    # -- the subscribers file and the webhook stack ------------------------------------------

    @rule(edit=st.sampled_from(EDITS), i=st.integers(0, 20))
    def subscribers_changed(self, edit: str, i: int) -> None:
        """A subscriber (the `i`th of those the edit can change) stops taking contact fields,
        loses an event type, has its secret rotated, its rule disabled or enabled again, or is
        removed; webhooks.yaml is written and the webhook stack deployed again."""
        self._change_subscriber(edit, i, sorted(self.config))

    def _change_subscriber(self, edit: str, i: int, among: list[str]) -> None:
        live = [n for n in among if n in self.config]
        if edit == "fields_off":
            live = [n for n in live if self.config[n]["include_fields"]]
        elif edit == "narrow":
            live = [n for n in live if len(self.config[n]["events"]) > 1]
        elif edit == "remove" and len(self.config) == 1:
            live = []
        if not live:
            return
        name = live[i % len(live)]
        config = self.config[name]
        if edit == "remove":
            del self.config[name]
            self.removed.add(name)
        elif edit == "narrow":
            # A type the letters hold, when it takes one (each example starts with created
            # and archived letters): what the listing and a replay must then refuse.
            held = [t for t in config["events"] if t in ("contact.created", "contact.archived")]
            dropped = (held or config["events"])[i % len(held or config["events"])]
            config["events"].remove(dropped)
        elif edit == "fields_off":
            config["include_fields"] = False
        elif edit == "rotate":
            self.secrets[name] = new_webhook_secret()
            boto3.client("secretsmanager").put_secret_value(
                SecretId=f"tests/webhooks/{name}", SecretString=self.secrets[name]
            )
            self.receivers.secrets[name] = self.secrets[name]
            clear_secret_caches()  # the feed's cache expires; the tool is a new process
            self.rotated_at[name] = self.step
        else:
            (self.disabled.discard if name in self.disabled else self.disabled.add)(name)
            edit = "rule disabled" if name in self.disabled else "rule enabled"
        if edit in ("remove", "narrow", "fields_off"):
            self.changed_at[name] = self.step
        TALLY[f"subscriber: {edit}"] += 1
        self._write_subscribers()
        self._deploy()

    # -- the dead-letter tool ---------------------------------------------------------------

    def _tool(self, *args: str) -> tuple[int, str]:
        out, err = io.StringIO(), io.StringIO()
        with contextlib.redirect_stderr(err):
            try:
                code = letters_main(
                    [
                        "--dlq-url",
                        self.dlq,
                        "--bus",
                        self.stack.bus,
                        "--webhooks-file",
                        str(self.dir / "webhooks.yaml"),
                        *args,
                    ],
                    out,
                )
            except SystemExit as exit_:
                code = 1
                print(exit_.code, file=err)
        self.output.append(out.getvalue() + err.getvalue())
        TALLY[f"tool {args[0]}: exit {code}"] += 1
        return code, out.getvalue() + err.getvalue()

    def _listed(self) -> list[dict[str, Any]]:
        code, text = self._tool("list", "--json")
        assert code == 0, text
        letters = [json.loads(line) for line in text.splitlines() if line.startswith("{")]
        for letter in letters:
            assert set(letter) >= {"message_id", "webhook_id", "subscriber", "fields", "problem"}
            # The listing says which letters webhooks.yaml and the erasures now forbid.
            assert bool(letter["problem"]) == bool(self._forbidden(letter)), (
                letter,
                self._forbidden(letter),
            )
        # In the model's order (the change's first publication, its contact, the subscriber):
        # the same letter for the same draw, whatever ids SQS gave.
        return sorted(
            letters,
            key=lambda d: (*self.changes.get(d["webhook_id"], (-1, -1)), d["subscriber"]),
        )

    @rule(command=st.sampled_from(TOOL), i=st.integers(0, 20))
    def operator_uses_the_tool(self, command: str, i: int) -> None:
        """An operator lists the letters, then replays all, one (by message id) or a change's
        (by webhook-id), or shows or deletes one; the receivers are up again for what a replay
        sends."""
        listed = self._listed()
        if not listed:
            return
        letter = listed[i % len(listed)]
        before = {d["message_id"]: d for d in listed}
        if command == "show":
            code, _ = self._tool("show", letter["message_id"])
            assert code == 0
            return
        if command == "delete":
            code, _ = self._tool("delete", letter["message_id"])
            assert code == 0
            after = {m["MessageId"] for m in every_message(self.sqs, self.dlq)}
            assert letter["message_id"] not in after
            return
        if command == "replay-all":
            chosen = listed
        elif command == "replay-webhook-id":
            chosen = [d for d in listed if d["webhook_id"] == letter["webhook_id"]]
        else:
            chosen = [letter]
        self._tally_replayed(chosen)
        if command == "replay-all":
            self._tool("replay", "--all")
        elif command == "replay-webhook-id":
            self._tool("replay", letter["webhook_id"])
        else:
            self._tool("replay", letter["message_id"])
        for event in self._drain_tap("replay"):
            # The letter's own webhook-id, for its subscriber: a receiver that got it after
            # all drops the duplicate.
            ids = {(d["webhook_id"], d["subscriber"]) for d in before.values()}
            assert (event["detail"]["webhook"]["id"], event["detail"]["subscriber"]) in ids
        after = {m["MessageId"] for m in every_message(self.sqs, self.dlq)}
        chosen_ids = {d["message_id"] for d in chosen}
        for message_id, d in before.items():
            # Refused letters are kept, and so is one no enabled rule routes.
            if d["problem"] or d["subscriber"] in self.disabled:
                assert message_id in after, d
                TALLY["a letter kept"] += 1
            elif message_id in chosen_ids:
                # The rest it sends (one with fields to a subscriber opted out since, without).
                assert message_id not in after, d
        seen = self.seen_got
        self._deliver(dict.fromkeys(NAMES, "ok"), five_minutes_pass=False)
        for entry in self.receivers.got[seen:]:
            # Signed afresh with the current secret: accepted at once (the allowance in
            # _check_received is for the feed's retries, never a replay's first attempt).
            if self.published[entry["headers"]["webhook-signature"]][1] == "replay":
                assert entry.get("accepted"), (entry["subscriber"], entry.get("problem"))

    def _forbidden(self, letter: dict[str, Any]) -> str:
        """Why the model says the letter must not be replayed ("" when it may be)."""
        config = self.config.get(letter["subscriber"])
        fields = any(f.startswith("contact.") for f in letter["fields"])
        if config is None:
            return "removed"
        if letter["detail_type"] not in config["events"]:
            return "type no longer taken"
        if fields and not config["include_fields"]:
            return ""  # replayed as the feed sends it now: without them
        if fields and self._erased_fields(letter):
            return "contact erased"
        return ""

    def _erased_fields(self, letter: dict[str, Any]) -> bool:
        """Whether the letter carries an erased contact's fields from before its erasure."""
        erased = self.contact_of.get(letter["webhook_id"]) in self.erased
        return erased and letter["webhook_id"] not in self.erasure_notices

    def _tally_replayed(self, chosen: list[dict[str, Any]]) -> None:
        """What the replay tries, as the run's figures show it: the cases it must refuse."""
        for d in chosen:
            name, fields = d["subscriber"], any(f.startswith("contact.") for f in d["fields"])
            config = self.config.get(name)
            cases = {
                "a removed subscriber's letter": config is None,
                "a type its subscriber no longer takes": config is not None
                and d["detail_type"] not in config["events"],
                "fields to a subscriber opted out since": fields
                and config is not None
                and not config["include_fields"],
                "an erased contact's fields": fields and self._erased_fields(d),
                "an erasure's own notice": fields and d["webhook_id"] in self.erasure_notices,
                "an erasure's notice to a subscriber opted out of fields since": fields
                and d["webhook_id"] in self.erasure_notices
                and config is not None
                and not config["include_fields"],
                "a letter its disabled rule would drop": name in self.disabled,
                "a subscriber whose secret was rotated": self.rotated_at[name] >= 0,
            }
            for case, holds in cases.items():
                TALLY[f"replay tried: {case}"] += holds

    # -- erasure ------------------------------------------------------------------------

    @precondition(lambda self: set(self.contacts) - set(self.erased))
    @rule(i=st.integers(0, 20), reaches_the_letters=st.booleans())
    def contact_erased(self, i: int, reaches_the_letters: bool) -> None:
        """The erasure API erases a contact; without `reaches_the_letters` it runs without
        the webhook queue (the parameter not given yet: README, its letters stay and the
        replay tool never sends them)."""
        left = [c for c in self.contacts if c not in self.erased]
        cid = left[i % len(left)]
        request = {"request_id": f"r-{uuid.uuid4().hex[:8]}", "contact_id": cid, "reason": "GDPR"}
        self._erasure_tables()
        if not reaches_the_letters:
            self.mp.delenv("WEBHOOK_DEAD_LETTER_QUEUE_ARN")
        try:
            outcome = build_eraser(ErasureSettings.from_env()).submit(
                ErasureRequest.parse(request), "arn:aws:iam::123456789012:user/dpo"
            )
        finally:
            self.mp.setenv("WEBHOOK_DEAD_LETTER_QUEUE_ARN", self.dlq_arn)
        assert outcome.result == "erased", outcome
        self.erased[cid] = self.step
        TALLY["erased"] += 1
        purged = {p.store: p.count for p in outcome.purged}.get("webhook_dead_letters", 0)
        if purged:
            TALLY["erasure purged letters"] += 1
        if not reaches_the_letters:
            TALLY["erased without the webhook queue"] += 1
            return
        # README "Erasure on request": every letter carrying its fields is deleted.
        for message in every_message(self.sqs, self.dlq):
            data = json.loads(message["Body"])["detail"]["body"]["data"]
            if str(data.get("contact_id")) == cid:
                leaked = [v for v in self.personal[cid] if v in message["Body"]]
                assert not leaked, f"a letter with an erased contact's values is left: {leaked}"

    # -- invariants ---------------------------------------------------------------------

    @invariant()
    def nothing_personal_in_logs_or_output(self) -> None:
        self.step += 1
        text = "\n".join(self.log.lines + self.output)
        leaked = sorted(v for v in self.values if v in text)
        assert not leaked, leaked


class StaffOnTheirOwnKeys:
    """The emulator, whose `client()` (the model's staff, editing in Cliniko's app) is on a
    key of its own each time: staff spend nothing of the feed's key. On the feed's key, the
    examples' edits, polls and erasures passed its 200 a minute in this process on a fast
    machine, where the waits pass at once and the minute does not, and an edit was refused."""

    def __init__(self, cliniko: Any) -> None:
        self._cliniko = cliniko

    def __getattr__(self, name: str) -> Any:
        return getattr(self._cliniko, name)

    def client(self) -> Any:
        key = f"MS0xstaff{secrets.token_hex(8)}-au1"
        self._cliniko.control.add_key(key)
        return self._cliniko.client(api_key=key)


@pytest.fixture
def world(aws, cliniko, tmp_path, monkeypatch):
    cliniko_waits_pass_at_once(monkeypatch)
    receivers = Receivers()
    with tapped_logs() as tap:
        WebhooksModel.world = model_world(
            monkeypatch,
            aws,
            tmp_path,
            tap,
            cliniko=StaffOnTheirOwnKeys(cliniko),
            receivers=receivers,
        )
        yield WebhooksModel.world
    receivers.stop()


@pytest.mark.timeout(900)  # a failure's shrinking takes minutes
def test_the_webhooks_against_a_stateful_model(world, capsys):
    run_state_machine_as_test(
        WebhooksModel,
        settings=state_machine_settings(examples=16, steps=12),
    )
    with capsys.disabled():
        print("\nwebhooks model:", dict(sorted(TALLY.items())))
    assert TALLY["accepted (feed)"] > 0 and TALLY["accepted (replay)"] > 0
    assert TALLY["a letter kept"] > 0 and TALLY["erasure purged letters"] > 0
    # The replays this model is for (were one lost to a change of the draws, reshape the rules).
    for case in (
        "a type its subscriber no longer takes",
        "fields to a subscriber opted out since",
        "an erased contact's fields",
        "a letter its disabled rule would drop",
        "a subscriber whose secret was rotated",
    ):
        assert TALLY[f"replay tried: {case}"] > 0, case
    assert_none_printed(capsys, _ALL_VALUES)


_ALL_VALUES: set[str] = set()
TALLY: Counter[str] = Counter()
