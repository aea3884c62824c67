"""List, show and replay the webhook deliveries EventBridge gave up on (WebhookDeadLetterQueue).

    python -m cliniko_automations.changefeed.webhook_dead_letters list [--json]
    python -m cliniko_automations.changefeed.webhook_dead_letters show ID
    python -m cliniko_automations.changefeed.webhook_dead_letters replay ID | --all
    python -m cliniko_automations.changefeed.webhook_dead_letters delete ID  # not replayed

ID: the SQS message id, or a webhook-id (a change's id: its letters to every subscriber that
took it). The queue, the bus and the subscribers
come from arguments or the environment: `--dlq-url`/WEBHOOK_DEAD_LETTER_QUEUE_URL (the webhook
stack's WebhookDeadLetterQueueUrl output), `--bus`/EVENT_BUS_NAME (the main stack's
ContactEventBusName output), `--webhooks-file`/WEBHOOKS_FILE (default: the deployed
webhooks.yaml), `--audit-table`/AUDIT_TABLE (the main stack's ErasureAuditTableName output:
a letter carrying contact fields is replayed only once the erasure trail shows its contact
was not erased, since an erasure running while EventBridge still retried a delivery, or while
a listing held its letter, cannot have deleted it; the erasure's own event, marked `erased`
and holding only what the erasure wrote, is replayed all the same). A letter carrying contact
fields to a subscriber no longer opted in to them is replayed as the feed sends that subscriber
now, the change's summary (the `erased` mark with it), its contact left out: no trail needed.
Credentials and region as for the AWS CLI; AWS_ENDPOINT_URL points it at moto.

A dead letter is the event as EventBridge sent it (its `detail` holds the subscriber, the
Standard Webhooks headers and the body), with EventBridge's ERROR_CODE, RETRY_ATTEMPTS,
RULE_ARN and TARGET_ARN attributes. Its signature was made when the change was published, and
receivers refuse one older than five minutes, so a replay re-publishes the delivery to the
bus signed afresh (a new webhook-timestamp and signature, through the same EventBuilder and
the subscriber's current secret) with the SAME webhook-id: a receiver that got it after all
drops the duplicate. The subscriber's rule then delivers it as any other.

Nothing personal is printed: ids, subscriber, event type, error code, age, attempts and the
NAMES of the body's fields, never their values (nor EventBridge's ERROR_MESSAGE, which may
quote the receiver's answer). A letter that is not a webhook delivery, or whose subscriber is
no longer in webhooks.yaml, is reported and left in the queue.

Listing receives every message (hiding it briefly, so each is seen once) and then makes them
visible again; replay publishes first and deletes the dead letter only once EventBridge has
accepted the event, so a crash in between duplicates a delivery (same webhook-id) rather
than losing one.
"""

from __future__ import annotations

if __name__ == "__main__":  # first: Ctrl-C during the imports below is one line too
    from cliniko_automations.common.operator_cli import interrupted_while_starting

    interrupted_while_starting("webhook_dead_letters")

import argparse
import json
import os
import sys
import time
from collections.abc import Callable, Collection, Mapping, Sequence
from dataclasses import asdict, dataclass, field
from typing import Any, TextIO

import boto3

from cliniko_automations.common.dead_letter_tool import (
    NO_ID,
    DeadLetterQueue,
    DeadLetterTool,
    add_commands,
    print_letter,
    print_table,
    run_command,
    string_attributes,
    whole_number,
)
from cliniko_automations.common.json_input import load_json
from cliniko_automations.common.operator_cli import parsed_arguments, run_tool
from cliniko_automations.common.secrets import read_secret
from cliniko_automations.common.stack_resources import (
    AUDIT_TABLE,
    WEBHOOK_DEAD_LETTER_QUEUE,
    bus_stack,
    check_one_stack,
    check_queue,
    check_table,
    table_stack,
)
from cliniko_automations.common.submission_store import PurgeCut
from cliniko_automations.erasure.audit import DynamoAuditLog
from cliniko_automations.erasure.ports import LettersPurged
from cliniko_automations.erasure.scrub import is_scrubbed

from .bus import EventBridgeSink
from .core import PublishFailed
from .events import WEBHOOKS_SOURCE, EventBuilder, OutgoingEvent
from .signing import keys_in_secret
from .subscribers import EVENT_TYPES, Subscribers, load_subscribers


@dataclass
class WebhookDeadLetter:
    message_id: str
    webhook_id: str
    subscriber: str
    detail_type: str
    error_code: str
    attempts: int
    age_seconds: int
    fields: list[str]
    # Why it cannot be replayed ("" when it can).
    problem: str
    receipt_handle: str = field(repr=False)
    # The body the replay sends: the letter's, less what its subscriber no longer takes.
    payload: Any = field(repr=False)
    # The bus of the rule that gave up on it (EventBridge's RULE_ARN; None when not told).
    rule_bus: str | None = field(default=None, repr=False)
    # The body's fields the replay leaves out, as the feed sends that subscriber now: the
    # contact's, when it no longer opts in to them.
    replay_drops: list[str] = field(default_factory=list)

    def public(self) -> dict[str, Any]:
        data = asdict(self)
        del data["receipt_handle"], data["payload"], data["rule_bus"]
        return data


class BusRoutes:
    """The event patterns of a bus's enabled rules, read once: whether a replayed delivery
    would reach any target there. A delivery no rule matches is accepted by EventBridge and
    dropped (a wrong `--bus`, another stack's), and its letter would be deleted."""

    def __init__(self, events: Any, bus: str) -> None:
        pages = list(events.get_paginator("list_rules").paginate(EventBusName=bus))
        if any("Rules" not in page for page in pages):  # an answer, but not EventBridge's
            raise SystemExit(
                f"webhook_dead_letters: ListRules of bus {bus} answered without rules: is "
                "AWS_ENDPOINT_URL an AWS endpoint?"
            )
        self.bus = bus
        self._patterns = [
            json.loads(rule["EventPattern"])
            for page in pages
            for rule in page["Rules"]
            if rule.get("State") == "ENABLED" and rule.get("EventPattern")
        ]

    def routes(self, event: OutgoingEvent) -> bool:
        fields = {"source": event.source, "detail-type": event.detail_type, "detail": event.detail}
        return any(_matches(pattern, fields) for pattern in self._patterns)


def _matches(pattern: Any, value: Any) -> bool:
    # The webhook stack's patterns are of exact values (event_pattern): a field's list holds
    # the values it takes, a mapping goes into the event's. Any other filter (prefix,
    # anything-but) is not read, and such a rule is taken as routing nothing.
    if isinstance(pattern, dict):
        return isinstance(value, Mapping) and all(
            key in value and _matches(inner, value[key]) for key, inner in pattern.items()
        )
    return isinstance(pattern, list) and value in pattern


class WebhookDeadLetters(DeadLetterTool[WebhookDeadLetter]):
    def __init__(
        self,
        *,
        sqs: Any,
        dead_letter_queue_url: str,
        subscribers: Subscribers,
        sink: EventBridgeSink | None = None,
        routes: BusRoutes | None = None,
        read_secret: Callable[[str], str] | None = None,
        erased_contacts: Callable[[], Collection[tuple[str | None, str]]] | None = None,
        clock: Callable[[], float] = time.time,
    ) -> None:
        super().__init__(sqs, dead_letter_queue_url)
        self._erased_contacts = erased_contacts
        # (account, contact id), account None for any: read once a letter needs it, and again
        # just before each letter carrying contact fields is replayed.
        self._erased: frozenset[tuple[str | None, str]] | None = None
        self._subscribers = {s.name: s for s in subscribers.subscribers}
        self._sink = sink
        self._routes = routes
        self._read_secret = read_secret
        self._clock = clock

    def _order(self, letter: WebhookDeadLetter) -> Any:
        return (-letter.age_seconds, letter.message_id)

    def _ids(self, letter: WebhookDeadLetter) -> tuple[str, ...]:
        return (letter.message_id, letter.webhook_id)

    def replay(
        self, letters: Sequence[WebhookDeadLetter], report: Callable[[str], None] = lambda _: None
    ) -> tuple[list[str], list[str]]:
        """Re-publish each replayable letter signed afresh, then delete it: (the replayed
        message ids, a line per letter refused)."""
        if self._sink is None or self._read_secret is None:
            raise SystemExit("replay needs the contacts bus: --bus or EVENT_BUS_NAME")
        replayable = [d for d in letters if not d.problem]
        refused = [f"{d.message_id}: {d.problem}" for d in letters if d.problem]
        names = sorted({d.subscriber for d in replayable})
        # The subscribers' current secrets: a receiver checks against the one it holds now.
        subscribers = [self._subscribers[name] for name in names]
        builder = EventBuilder(
            subscribers,
            {s.name: keys_in_secret(self._read_secret, s.secret) for s in subscribers},
            clock=self._clock,
        )
        replayed = []
        for letter in replayable:
            data = letter.payload.get("data", {})
            if (
                self._erased_contacts is not None
                and "contact" in data
                and not is_erasure_notice(data)
            ):
                # Judged as it was read, up to a minute ago, and the replay holds it hidden: an
                # erasure answering since matched its contact, and its purge did not see it.
                # So the trail is read again (a scan) for each letter that carries fields.
                account = str(data.get("account", "-"))
                problem = self._erased_refusal(account, str(data.get("contact_id")), fresh=True)
                if problem:
                    refused.append(f"{letter.message_id}: {problem}")
                    continue
            event = builder.signed_delivery(
                letter.subscriber, letter.detail_type, letter.webhook_id, letter.payload
            )
            if self._routes is not None and not self._routes.routes(event):
                refused.append(
                    f"{letter.message_id}: no rule on bus {self._routes.bus} takes "
                    f"{letter.subscriber}'s {letter.detail_type} deliveries (is it the bus the "
                    "webhook stack was deployed on, and that stack up to date?); kept"
                )
                continue
            # Two stacks in one account whose webhooks.yaml name the same subscriber: the
            # other stack's bus routes the letter too, to the other stack's receiver.
            bus = _bus_name(self._routes.bus) if self._routes is not None else None
            if bus is not None and letter.rule_bus is not None and letter.rule_bus != bus:
                refused.append(
                    f"{letter.message_id}: dead-lettered by a rule of bus {letter.rule_bus}, "
                    f"not {bus}: another stack's letter (give --dlq-url and --bus from one "
                    "stack's outputs); kept"
                )
                continue
            try:
                self._sink.publish([event])
            except PublishFailed as exc:
                refused.append(f"{letter.message_id}: not accepted by EventBridge ({exc})")
                continue
            self._replayed(letter, report)
            replayed.append(letter.message_id)
        return replayed, refused

    def _describe(self, message: Mapping[str, Any]) -> WebhookDeadLetter:
        attributes = string_attributes(message)
        system = message.get("Attributes", {})
        sent_ms = whole_number(system.get("SentTimestamp"))
        attempts = whole_number(attributes.get("RETRY_ATTEMPTS"))
        event, problem = _delivery_event(message.get("Body", ""))
        detail = event.get("detail", {}) if event else {}
        subscriber = str(detail.get("subscriber", "-")) if event else "-"
        payload = detail.get("body") if event else None
        sent = payload
        if event and payload is not None and not problem:
            problem = self._refusal(subscriber, str(event["detail-type"]), payload)
            if not problem and not self._subscribers[subscriber].include_fields:
                sent = _without_fields(payload)
        return WebhookDeadLetter(
            message_id=str(message.get("MessageId", NO_ID)),
            webhook_id=str(detail["webhook"]["id"]) if event else NO_ID,
            subscriber=subscriber,
            detail_type=str(event.get("detail-type", "-")) if event else "-",
            error_code=attributes.get("ERROR_CODE") or "-",
            attempts=attempts if attempts is not None else 0,
            age_seconds=max(0, int(self._clock() - sent_ms / 1000)) if sent_ms else 0,
            fields=_field_names(payload),
            problem=problem,
            receipt_handle=str(message.get("ReceiptHandle", "")),
            payload=sent,
            rule_bus=_rule_bus(attributes.get("RULE_ARN")),
            replay_drops=sorted(set(_field_names(payload)) - set(_field_names(sent))),
        )

    def _refusal(self, name: str, event_type: str, payload: Mapping[str, Any]) -> str:
        """Why webhooks.yaml as it is now forbids this replay ("" when it allows it)."""
        subscriber = self._subscribers.get(name)
        if subscriber is None:
            return (
                f"subscriber {name!r} is no longer in webhooks.yaml: "
                "add it back to replay, or delete the letter"
            )
        if event_type not in subscriber.events:
            # Its rule would no longer route it: a replay would be deleted and go nowhere.
            return f"subscriber {name!r} no longer takes {event_type}"
        account = str(payload.get("data", {}).get("account", "-"))
        if not subscriber.wants(event_type, account):
            # Its rule routes by subscriber, not account: only this check keeps a clinic's
            # contacts from a receiver that no longer serves it.
            return f"subscriber {name!r} no longer takes account {account!r}"
        data = payload.get("data", {})
        if "contact" not in data or not subscriber.include_fields:
            # Without fields (the replay leaves them out for a subscriber no longer opted in,
            # as the feed does): ids alone, whatever an erasure matched.
            return ""
        if is_erasure_notice(data):
            # Refused as erased, the receiver holding the contact's fields never deletes them.
            return ""
        if self._erased_contacts is None:
            return (
                "carries contact fields: give --audit-table (the main stack's "
                "ErasureAuditTableName) to check its contact was not erased"
            )
        return self._erased_refusal(account, str(data.get("contact_id")))

    def _erased_refusal(self, account: str, contact_id: str, *, fresh: bool = False) -> str:
        """Refused when an erasure matched the contact, by the trail as read for an earlier
        letter, or, `fresh`, as read now (a scan of the trail)."""
        assert self._erased_contacts is not None  # checked by the caller
        if self._erased is None or fresh:
            self._erased = frozenset(self._erased_contacts())
        if {(account, contact_id), (None, contact_id)} & self._erased:
            return "its contact was erased: its fields are not sent again (the letter expires)"
        return ""


def is_erasure_notice(data: Mapping[str, Any]) -> bool:
    """Whether a delivery's `data` is an erasure's own notice: marked `erased`, its fields
    holding only what the erasure wrote. It carries nothing personal, and it is what tells its
    receiver to delete the contact's copy: the replay sends it, and an erasure's purge keeps
    it (a second erasure of the person, Cliniko unchanged, publishes no new one)."""
    contact = data.get("contact")
    return data.get("erased") is True and isinstance(contact, Mapping) and is_scrubbed(contact)


class WebhookLetterPurge:
    """What an erasure deletes here: the letters that carry the fields of a contact it erases.

    A letter for a subscriber opted in to contact fields holds the contact's name, email and
    phone until the queue's retention (14 days) ends, and a replay would send them again. An
    erasure deletes those of its contacts (by `data.account` and `data.contact_id`), but for
    the erasure notices among them (`is_erasure_notice`), which an earlier erasure of the
    person published; letters without fields (ids and field names only) stay for the replay
    tool. A letter held by an operator's listing at that moment (hidden for HIDE_SECONDS) is
    not seen, nor one past the first `max_read` (a receiver down for days leaves thousands,
    and an erasure has 29 s): the replay tool never sends those (it checks the erasure
    trail), and they expire with the queue.
    """

    def __init__(self, sqs: Any, dead_letter_queue_url: str, *, max_read: int = 1000) -> None:
        self._sqs = sqs
        self._url = dead_letter_queue_url
        self._max_read = max_read

    def purge(
        self,
        contacts: Collection[tuple[str, str]],
        *,
        time_left: Callable[[], float | None] | None = None,
    ) -> LettersPurged:
        """Delete the letters carrying fields of `contacts`, (account, contact id) each: an id
        names another contact in another account. How many were deleted, and how many of
        their letters were erasure notices, kept. Each letter is
        read, judged and let go before the next batch (held all at once, a thousand letters
        of 250 KB took 290 MB); none is received once `time_left` (seconds) is spent: the
        letters not read are those past `max_read`. Stopped by `time_left` (or by the
        listing's own bound) with letters left unread, PurgeCut with the ids deleted so far:
        the letters past the cut may carry the contacts' fields too, and the erasure's trail
        must not read as a whole purge. SQS failing part-way: PurgeCut with its `error`."""
        wanted = {(str(account), str(contact_id)) for account, contact_id in contacts}
        queue = DeadLetterQueue(self._sqs, self._url)
        deleted: set[str] = set()
        # By id, as `deleted`: SQS delivers at least once, and a receive may bring a notice
        # again (counted once a receive, the trail's `notices_kept` said 2 for one).
        kept: set[str] = set()
        try:
            for message in queue.receive_each(limit=self._max_read, time_left=time_left):
                event, problem = _delivery_event(str(message.get("Body", "")))
                data = event["detail"]["body"].get("data", {}) if event and not problem else {}
                contact = (str(data.get("account")), str(data.get("contact_id")))
                if "contact" not in data or contact not in wanted:
                    continue
                if is_erasure_notice(data):
                    kept.add(str(message["MessageId"]))
                    continue
                queue.delete(str(message["ReceiptHandle"]))
                deleted.add(str(message["MessageId"]))
        except Exception as error:
            # SQS failing part-way: those deleted are gone, and the trail counts them.
            raise PurgeCut(sorted(deleted), error, kept=len(kept)) from error
        finally:
            queue.release()
        if not queue.complete:
            raise PurgeCut(sorted(deleted), kept=len(kept))
        return LettersPurged(deleted=len(deleted), notices_kept=len(kept))


def _delivery_event(body: str) -> tuple[dict[str, Any] | None, str]:
    """The dead letter's event when it is a webhook delivery this feed published; else a
    fixed reason (never the body's content)."""
    try:
        # The loader's limits: a letter nested too deep must not stop a listing or a purge.
        event = load_json(body)
    except ValueError:
        return None, "not JSON: not an EventBridge event"
    if not isinstance(event, dict) or event.get("source") != WEBHOOKS_SOURCE:
        return None, f"not a webhook delivery (source is not {WEBHOOKS_SOURCE})"
    detail = event.get("detail")
    if not isinstance(detail, dict):
        return None, "malformed webhook delivery (no detail)"
    webhook = detail.get("webhook")
    payload = detail.get("body")
    if (
        not isinstance(webhook, dict)
        or not isinstance(webhook.get("id"), str)
        or not webhook["id"]
        or not isinstance(detail.get("subscriber"), str)
        or not isinstance(payload, dict)
        or not isinstance(payload.get("data", {}), dict)
        or event.get("detail-type") not in EVENT_TYPES
        or payload.get("type") != event.get("detail-type")
    ):
        return None, "malformed webhook delivery (subscriber, webhook id, type or body missing)"
    return event, ""


def _without_fields(payload: Mapping[str, Any]) -> dict[str, Any]:
    """A delivery's body as the feed sends it to a subscriber not opted in to contact fields:
    the change's summary (`Change.summary`), without the contact nor why it was omitted."""
    data = {
        name: value
        for name, value in payload.get("data", {}).items()
        if name not in ("contact", "fields_omitted")
    }
    return {**payload, "data": data}


def _rule_bus(rule_arn: str | None) -> str | None:
    """The bus of a rule's ARN: `...:rule/<bus>/<name>`, `...:rule/<name>` on the default
    bus (a rule's name holds no "/"); None for no ARN."""
    if not rule_arn or ":rule/" not in rule_arn:
        return None
    resource = rule_arn.split(":rule/", 1)[1]
    return resource.rpartition("/")[0] or "default"


def _bus_name(bus: str) -> str:
    """A bus given by name or by ARN (`...:event-bus/<name>`), as --bus takes either."""
    return bus.split(":event-bus/", 1)[1] if ":event-bus/" in bus else bus


def _field_names(payload: Any) -> list[str]:
    """The body's field names (`data.contact.*` for subscribers that get the contact)."""
    if not isinstance(payload, dict) or not isinstance(payload.get("data"), dict):
        return []
    names = []
    for name, value in payload["data"].items():
        if isinstance(value, dict):
            names += [f"{name}.{inner}" for inner in value]
        else:
            names.append(name)
    return sorted(names)


def _table(letters: Sequence[WebhookDeadLetter], out: TextIO) -> None:
    columns = (
        "message_id",
        "webhook_id",
        "subscriber",
        "detail_type",
        "error_code",
        "attempts",
        "age_seconds",
    )
    print_table(letters, columns, out)
    refused = sum(1 for d in letters if d.problem)
    dropping = sum(1 for d in letters if d.replay_drops)
    without = f", {dropping} replayed without contact fields" if dropping else ""
    print(f"{len(letters)} dead letter(s), {refused} not replayable{without}", file=out)


def _show(letter: WebhookDeadLetter, out: TextIO) -> None:
    print_letter(letter, out, omitted_when_empty="problem")


def build(args: argparse.Namespace) -> WebhookDeadLetters:
    dlq = args.dlq_url or os.environ.get("WEBHOOK_DEAD_LETTER_QUEUE_URL")
    if not dlq:
        raise SystemExit(
            "no dead-letter queue: pass --dlq-url or set WEBHOOK_DEAD_LETTER_QUEUE_URL"
        )
    audit_table = args.audit_table or os.environ.get("AUDIT_TABLE")
    bus = args.bus or os.environ.get("EVENT_BUS_NAME")
    sqs = boto3.client("sqs")
    # Of the kind each is taken for, before a letter is read: the intake's dead-letter or
    # submission queue listed as webhook letters, hidden from its own readers meanwhile.
    dlq_setting = "--dlq-url" if args.dlq_url else "WEBHOOK_DEAD_LETTER_QUEUE_URL"
    check_queue(sqs, dlq, WEBHOOK_DEAD_LETTER_QUEUE, dlq_setting)
    erased_contacts = None
    if audit_table:
        table_setting = "--audit-table" if args.audit_table else "AUDIT_TABLE"
        dynamodb = boto3.client("dynamodb")
        trail_arn = check_table(dynamodb, audit_table, AUDIT_TABLE, table_setting)
        if bus:
            # The trail that says whose fields are never sent again is the one of the stack
            # whose bus carries them: another stack's let an erased person's letter go out.
            bus_setting = "--bus" if args.bus else "EVENT_BUS_NAME"
            check_one_stack(
                {
                    table_setting: table_stack(dynamodb, trail_arn),
                    bus_setting: bus_stack(boto3.client("events"), bus),
                }
            )
        erased_contacts = DynamoAuditLog(audit_table).erased_contacts
    return WebhookDeadLetters(
        sqs=sqs,
        dead_letter_queue_url=dlq,
        subscribers=load_subscribers(args.webhooks_file),
        sink=EventBridgeSink(boto3.client("events"), bus) if bus else None,
        routes=BusRoutes(boto3.client("events"), bus) if bus and args.command == "replay" else None,
        read_secret=read_secret,
        erased_contacts=erased_contacts,
    )


def main(argv: Sequence[str] | None = None, out: TextIO = sys.stdout) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m cliniko_automations.changefeed.webhook_dead_letters",
        description=(__doc__ or "").split("\n\n")[0],
    )
    parser.add_argument("--dlq-url", help="dead-letter queue (env WEBHOOK_DEAD_LETTER_QUEUE_URL)")
    parser.add_argument("--bus", help="the contacts event bus, for replay (env EVENT_BUS_NAME)")
    parser.add_argument("--webhooks-file", help="subscribers (env WEBHOOKS_FILE)")
    parser.add_argument("--audit-table", help="the erasure audit trail (env AUDIT_TABLE)")
    add_commands(
        parser,
        id_help="SQS message id or webhook-id",
        replay_help="re-publish dead letters, signed afresh",
    )
    args = parsed_arguments("webhook_dead_letters", parser, argv)
    return run_tool(
        "webhook_dead_letters",
        lambda: run_command(args, build(args), out, table=_table, show=_show),
    )


if __name__ == "__main__":
    sys.exit(main())
