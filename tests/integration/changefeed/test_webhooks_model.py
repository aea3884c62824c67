"""A randomized stateful model of the signed webhooks: hypothesis interleaves contact changes
polled through the real handler, receivers on 127.0.0.1 answering 2xx / 400 / 503 / 429 /
too late / by closing the connection, EventBridge's delivery of each subscriber's rule (moto
routes it; a stand-in sends it as the rule's target would, retries what AWS retries and
dead-letters the rest as EventBridge puts a letter), the subscribers file changing (a
subscriber removed, its events or `include_fields` narrowed, its secret rotated: the webhook
stack deployed again with it; its rule disabled and enabled in AWS), the real
`webhook_dead_letters` tool (list, show, replay one or all, delete) and the real erasure API
erasing a contact whose deliveries sit in the dead letters.

Invariants (README "Signed webhooks", "Replaying webhook dead letters", "Erasure on request"):
- every delivery a receiver accepts verifies with the Standard Webhooks reference library
  under the subscriber's CURRENT secret, is of a type it takes now and carries contact fields
  only if it opts in now; the one allowance is a delivery signed before the change, which AWS
  may still be retrying (at most 5 minutes);
- what the feed or a replay publishes after a change obeys the change (no allowance);
- a (subscriber, webhook-id) a receiver accepted is never accepted again (no crash is modelled,
  so the README's one duplicate does not arise);
- once a contact is erased, no letter carrying its values is left, and no replay publishes or
  delivers them;
- no contact value in a log line or in the tool's output (stdout and stderr).
"""

from __future__ import annotations

import contextlib
import io
import json
import logging
import threading
import time
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
from cliniko_automations.cliniko import pacing
from cliniko_automations.common import logs
from cliniko_automations.common.secrets import clear_secret_caches
from cliniko_automations.erasure.models import ErasureRequest
from cliniko_automations.erasure.service import build_eraser
from cliniko_automations.erasure.settings import ErasureSettings
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

from tests.fixtures.state_machines import state_machine_settings
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
MODES = ["error", "ok", "bad", "busy", "slow", "close"]
STATUS = {"bad": 400, "error": 503, "busy": 429}
# A retryable failure is dead-lettered after this many attempts (AWS: after 5 minutes).
ATTEMPTS = 3
CLIENT_TIMEOUT = 0.1


class LogTap(logging.Handler):
    def __init__(self) -> None:
        super().__init__(logging.DEBUG)
        self.lines: list[str] = []

    def emit(self, record: logging.LogRecord) -> None:
        try:
            text = self.format(record)
        except Exception:
            text = str(record.msg)
        self.lines.append(text + " " + json.dumps(record.__dict__, default=str))


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
                if mode == "slow":
                    time.sleep(CLIENT_TIMEOUT * 2)
                    with contextlib.suppress(OSError):
                        self.send_response(204)
                        self.end_headers()
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
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def url(self, name: str) -> str:
        return f"http://127.0.0.1:{self.server.server_address[1]}/hooks/{name}"

    def stop(self) -> None:
        self.server.shutdown()
        self.server.server_close()


class WebhooksModel(RuleBasedStateMachine):
    world: ClassVar[dict[str, Any]] = {}

    def __init__(self) -> None:
        super().__init__()
        w = self.world
        self.mp, self.cliniko, self.log = w["mp"], w["cliniko"], w["log"]
        httpx.post(f"{w['moto']}/moto-api/reset").raise_for_status()
        clear_secret_caches()
        self.mp.setattr(logs, "_secrets", set())
        self.mp.setattr(logs, "_secret_pattern", None)
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
        self.config = {name: dict(value) for name, value in INITIAL.items()}
        self.secrets = {name: new_webhook_secret() for name in NAMES}
        self.receivers.secrets = dict(self.secrets)
        manager = boto3.client("secretsmanager")
        for name, value in self.secrets.items():
            manager.create_secret(Name=f"tests/webhooks/{name}", SecretString=value)
        self._write_subscribers()
        feed_environment(self.mp, self.stack, self.cliniko, self.dir)
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
        self.changed_at: dict[str, int] = dict.fromkeys(NAMES, -1)  # types/fields narrowed
        self.rotated_at: dict[str, int] = dict.fromkeys(NAMES, -1)
        self.removed: set[str] = set()
        self.published: dict[str, tuple[int, str]] = {}  # signature -> (step, "feed"|"replay")
        self.accepted: Counter[tuple[str, str]] = Counter()
        self.seen_got = 0
        self.attempts: Counter[str] = Counter()
        self.log.lines.clear()
        self.output: list[str] = []
        self.counter = 0
        self._poll()  # the cursor starts now

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
        stands in for the API destination), rules of removed subscribers deleted."""
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

    def _drain_tap(self, kind: str) -> None:
        for event in self.stack.drain(self.stack.webhook_queue_url):
            detail = event["detail"]
            signature = detail["webhook"]["signature"]
            if signature in self.published:
                continue
            self.published[signature] = (self.step, kind)
            name = detail["subscriber"]
            data = detail["body"]["data"]
            # Whatever is published now obeys webhooks.yaml as it is now.
            assert name not in self.removed, (kind, name)
            assert event["detail-type"] in self.config[name]["events"], (kind, name, event)
            if "contact" in data:
                assert self.config[name]["include_fields"], (kind, name, sorted(data))
            if str(data.get("contact_id")) in self.erased:
                # Published after the erasure: by a replay, or by the feed from Cliniko's
                # contact as the erasure left it.
                leaked = [v for v in self.personal[str(data["contact_id"])] if v in str(data)]
                assert not leaked, f"the {kind} published an erased contact's values: {leaked}"
            TALLY[f"published by the {kind}"] += 1

    # -- Cliniko's side -------------------------------------------------------------------

    @initialize(n=st.integers(1, 3))
    def first_contacts(self, n: int) -> None:
        for _ in range(n):
            self.create()

    @rule()
    def create(self) -> None:
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

    @precondition(lambda self: self.contacts)
    @rule(i=st.integers(0, 20), archive=st.booleans())
    def change(self, i: int, archive: bool) -> None:
        cid = self.contacts[i % len(self.contacts)]
        if cid in self.erased:
            return
        client = self.cliniko.client()
        if archive:
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

    def _poll(self) -> None:
        handler.lambda_handler(SCHEDULED_EVENT, context())
        self._drain_tap("feed")

    # -- the receivers and AWS's delivery ----------------------------------------------------

    @rule(
        answers=st.lists(st.sampled_from(MODES), min_size=len(NAMES), max_size=len(NAMES)),
        five_minutes_pass=st.booleans(),
    )
    def poll_and_deliver(self, answers: list[str], five_minutes_pass: bool) -> None:
        """A poll of the feed, then each receiver answers as `answers` says and each rule's
        target makes one attempt per queued delivery: a 2xx is done, a 4xx other than 429 is
        dead-lettered at once, the rest retried, and dead-lettered once `five_minutes_pass`
        (AWS's MaximumEventAgeInSeconds) or after ATTEMPTS attempts."""
        self._poll()
        self.receivers.modes = dict(zip(NAMES, answers, strict=True))
        for mode in answers:
            TALLY[f"receiver answers {mode}"] += 1
        for name, url in self.routes.items():
            messages = self.sqs.receive_message(
                QueueUrl=url, MaxNumberOfMessages=10, VisibilityTimeout=60
            ).get("Messages", [])
            for message in messages:
                event = json.loads(message["Body"])
                body = json.dumps(
                    json_path(event, BODY_PATH), separators=(",", ":"), ensure_ascii=False
                )
                headers = {h: str(json_path(event, p)) for h, p in HEADER_PATHS.items()}
                headers["content-type"] = "application/json; charset=utf-8"
                try:
                    status = httpx.post(
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
                    continue
                self.attempts[message["MessageId"]] += 1
                retryable = status in (0, 401, 429) or status >= 500
                if (
                    retryable
                    and not five_minutes_pass
                    and self.attempts[message["MessageId"]] < ATTEMPTS
                ):
                    self.sqs.change_message_visibility(
                        QueueUrl=url, ReceiptHandle=handle, VisibilityTimeout=0
                    )
                    continue
                self._dead_letter(message["Body"], code, self.attempts[message["MessageId"]])
                self.sqs.delete_message(QueueUrl=url, ReceiptHandle=handle)
        self._check_received()

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
                "RULE_ARN": text(
                    f"arn:aws:events:eu-west-1:123456789012:rule/{event['detail']['subscriber']}"
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

    @rule(
        name=st.sampled_from(NAMES),
        edit=st.sampled_from(["remove", "narrow", "fields_off", "rotate", "disable", "enable"]),
        which=st.integers(0, 3),
    )
    def subscribers_change(self, name: str, edit: str, which: int) -> None:
        if name in self.removed:
            return
        config = self.config[name]
        if edit == "remove":
            if len(self.config) == 1:
                return
            del self.config[name]
            self.removed.add(name)
        elif edit == "narrow":
            if len(config["events"]) == 1:
                return
            config["events"].remove(config["events"][which % len(config["events"])])
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
        elif edit in ("disable", "enable"):
            (self.disabled.add if edit == "disable" else self.disabled.discard)(name)
            state = "DISABLED" if edit == "disable" else "ENABLED"
            TALLY[f"rule {state.lower()}"] += 1
            self.events.put_rule(
                Name=f"rule-{name}",
                EventBusName=self.stack.bus,
                EventPattern=json.dumps(
                    {
                        "source": [WEBHOOKS_SOURCE],
                        "detail-type": config["events"],
                        "detail": {"subscriber": [name]},
                    }
                ),
                State=state,
            )
            return
        if edit != "rotate":
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
        return [json.loads(line) for line in text.splitlines() if line.startswith("{")]

    @rule(
        command=st.sampled_from(["replay", "replay-webhook-id", "replay-all"]), i=st.integers(0, 20)
    )
    def letters_replayed(self, command: str, i: int) -> None:
        self._dead_letter_tool(command, i)

    @rule(command=st.sampled_from(["show", "delete"]), i=st.integers(0, 20))
    def letter_shown_or_deleted(self, command: str, i: int) -> None:
        self._dead_letter_tool(command, i)

    def _dead_letter_tool(self, command: str, i: int) -> None:
        """An operator lists the letters, then shows, replays (one by message id, a change's by
        webhook-id, or all) or deletes one."""
        listed = self._listed()
        for letter in listed:
            assert set(letter) >= {"message_id", "webhook_id", "subscriber", "fields", "problem"}
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
            assert letter["message_id"] not in {d["message_id"] for d in self._listed()}
            return
        if command == "replay-all":
            self._tool("replay", "--all")
        elif command == "replay-webhook-id":
            self._tool("replay", letter["webhook_id"])
        else:
            self._tool("replay", letter["message_id"])
        self._drain_tap("replay")
        after = {d["message_id"] for d in self._listed()}
        for message_id, d in before.items():
            # Refused letters are kept, and so is one no enabled rule routes.
            if d["problem"] or d["subscriber"] in self.disabled:
                assert message_id in after, d

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
        for message in _every_message(self.sqs, self.dlq):
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


def _every_message(sqs: Any, queue_url: str) -> list[dict[str, Any]]:
    messages, empty = [], 0
    while empty < 2:
        batch = sqs.receive_message(
            QueueUrl=queue_url, MaxNumberOfMessages=10, VisibilityTimeout=30
        ).get("Messages", [])
        empty = 0 if batch else empty + 1
        messages += batch
    for message in messages:
        sqs.change_message_visibility(
            QueueUrl=queue_url, ReceiptHandle=message["ReceiptHandle"], VisibilityTimeout=0
        )
    return messages


@pytest.fixture
def world(aws, cliniko, tmp_path, monkeypatch):
    # The Cliniko client's waits pass at once: its clock jumps instead (as the feed model's).
    cliniko.control.set_rate_limit(None)
    slept = [0.0]
    real_monotonic, real_time = pacing.SystemClock.monotonic, pacing.SystemClock.time
    monkeypatch.setattr(pacing.SystemClock, "monotonic", lambda s: real_monotonic(s) + slept[0])
    monkeypatch.setattr(pacing.SystemClock, "time", lambda s: real_time(s) + slept[0])
    monkeypatch.setattr(
        pacing.SystemClock, "sleep", lambda s, seconds: slept.__setitem__(0, slept[0] + seconds)
    )
    tap = LogTap()
    loggers = [
        logging.getLogger(),
        *(logging.getLogger(name) for name in list(logging.root.manager.loggerDict)),
    ]
    for logger in loggers:
        logger.addHandler(tap)
    receivers = Receivers()
    WebhooksModel.world = {
        "cliniko": cliniko,
        "mp": monkeypatch,
        "moto": aws,
        "tmp": tmp_path,
        "n": 0,
        "log": tap,
        "receivers": receivers,
    }
    yield WebhooksModel.world
    receivers.stop()
    for logger in loggers:
        logger.removeHandler(tap)


@pytest.mark.timeout(900)  # a failure's shrinking takes minutes
def test_the_webhooks_against_a_stateful_model(world, capsys):
    run_state_machine_as_test(
        WebhooksModel,
        settings=state_machine_settings(examples=25, steps=12),
    )
    with capsys.disabled():
        print("\nwebhooks model:", dict(sorted(TALLY.items())))
    assert TALLY["accepted (feed)"] > 0 and TALLY["dead-lettered"] > 0
    printed = capsys.readouterr()
    leaked = [v for v in _ALL_VALUES if v in printed.out + printed.err]
    assert not leaked, leaked


_ALL_VALUES: set[str] = set()
TALLY: Counter[str] = Counter()
