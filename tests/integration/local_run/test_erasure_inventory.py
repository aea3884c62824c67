"""A data-protection officer's inventory: one person driven through every path that can leave
their data in something this system owns, erased, then every store searched.

The whole local run (template.yaml on moto, the emulator as Cliniko over HTTP, the SQS
event-source consumers, LogLevel=DEBUG) with the webhook stack's dead-letter queue configured
(`WebhookDeadLetterQueueArn`) and the local subscriber opted in to contact fields. The person:

- submits through four providers in two accounts (partner-json in north-clinic; Typeform and
  Webflow in main-clinic), and the json delivery a second time (a duplicate);
- submits through Tally after staff made a second contact with their email (parked);
- submits while Cliniko answers 500 to everything, until SQS redrives it (dead-lettered:
  moto's redrive, each wait for the message's visibility skipped);
- is published by the change feed to the bus, and its webhook, with their fields, ends in the
  webhook dead-letter queue (EventBridge's part played: the delivery it gave up on, as it puts
  it there);
- posts the sample HTML form (no nonce: its key is the content's hash), and is refused twice
  (a forged signature, a body that is no JSON);
- is listed by a cleanup dry run whose rule names their email.

Then the erasure API erases them by email (erase_all_matches), and every DynamoDB item, every
message of every queue (dead letters and parked included), every secret, and every log line
(every logger at DEBUG, botocore, httpx and urllib3 included; the AWS and Cliniko stand-ins'
own loggers left out) is searched for each personal value: as typed, lower-cased, URL-encoded,
JSON-escaped (once and twice: a JSON body stored in a JSON string). The local stand-ins for
EventBridge (the bus tap and the API destination's queue) are AWS's, not this system's: what
they hold is the honest limit "events already published". Nor do the intake's identity
claims (unkeyed hashes of the email and name) outlive the erasure; the HTML post's first-seen
record does, by design, and the test pins where (README "Erasure on request").
"""

from __future__ import annotations

import base64
import hashlib
import io
import json
import logging
import time
from collections.abc import Iterator
from typing import Any
from urllib.parse import parse_qsl, quote, quote_plus, urlencode

import boto3
import httpx
import pytest
import yaml
from cliniko_automations.common.identity_claims import email_claim, name_claim
from cliniko_automations.common.submission_store import FIRST_SEEN_PREFIX
from cliniko_automations.intake.config import load_form_sources
from cliniko_automations.intake_api.accept import idempotency_key
from cliniko_automations.intake_api.mapping import given_differently, map_answers
from cliniko_automations.intake_api.providers import ADAPTERS
from cliniko_automations.intake_api.providers.base import Delivery
from cliniko_automations.intake_api.validation import validate_draft
from cliniko_emulator import EmulatorControl
from local_run import contact_events, defaults, demo
from local_run.consumers import sqs_event
from local_run.system import LocalSystem

from tests.integration.intake_worker.resources import TEST_INFRASTRUCTURE_LOGGERS
from tests.integration.local_run.test_local_run import signed

FIRST, LAST = "Zéphyrine", "Quillfeather"
EMAIL = "zq.7781+inventory@example.org"
PHONE = "+61 400 778 199"
ADDRESS = "42 Brindlewood Lane"
CITY = "Wollumbinvale"
COMPANY = "Quillcorp Cartography"
NOTES = "Qx7marker allergic to latex"
REASON = "Qx8marker knee after a fall"  # Typeform's referral reason, into the notes
MESSAGE = "Qx9marker call me after five"  # Webflow's message, into the notes
HTML_MESSAGE = "Qx6marker from the website"  # the HTML form's message, into the notes
PERSON = {
    "first_name": FIRST,
    "last_name": LAST,
    "email": EMAIL,
    "mobile": PHONE,
    "address_1": ADDRESS,
    "city": CITY,
    "company_name": COMPANY,
    "notes": NOTES,
}
VALUES = [
    *(FIRST, LAST, f"{FIRST} {LAST}", EMAIL, ADDRESS, CITY, COMPANY),
    *(NOTES, REASON, MESSAGE, HTML_MESSAGE),
]
PHONES = [PHONE, "+61400778199", "0400 778 199", "0400778199", "400778199", "400 778 199"]
# The EventBridge stand-ins of the local run: AWS's side, not a store of this system.
EVENTBRIDGE_SIDE = ("local-tap-", "local-")


def searched_forms() -> dict[str, str]:
    """Each form searched (lower-cased) -> the value it is a form of."""
    forms: dict[str, str] = {}
    for value in [*VALUES, *PHONES]:
        escaped = json.dumps(value)[1:-1]  # "Z\\u00e9phyrine"
        for form in (
            value,
            quote(value, safe=""),
            quote_plus(value),
            escaped,
            json.dumps(escaped)[1:-1],  # a JSON body kept in a JSON string
            value.encode().decode("latin-1"),  # UTF-8 read as Latin-1 (mojibake)
        ):
            forms[form.lower()] = value
    return forms


FORMS = searched_forms()


def found_in(text: str) -> list[str]:
    lowered = text.lower()
    return sorted({value for form, value in FORMS.items() if form in lowered})


class Everything(logging.Handler):
    """Every record of every logger but the AWS and Cliniko stand-ins' own."""

    def __init__(self) -> None:
        super().__init__(level=logging.DEBUG)
        self.setFormatter(logging.Formatter("%(name)s %(levelname)s %(message)s %(args)s"))
        self.lines: list[str] = []

    def emit(self, record: logging.LogRecord) -> None:
        if record.name.split(".")[0] in TEST_INFRASTRUCTURE_LOGGERS:
            return
        try:
            self.lines.append(self.format(record))
        except Exception:  # a record whose args do not format: its message as given
            self.lines.append(f"{record.name} {record.msg!r} {record.args!r}")


@pytest.fixture
def every_log_line() -> Iterator[Everything]:
    root = logging.getLogger()
    handler, level = Everything(), root.level
    root.setLevel(logging.DEBUG)
    root.addHandler(handler)
    try:
        yield handler
    finally:
        root.removeHandler(handler)
        root.setLevel(level)


@pytest.fixture
def system(aws, cliniko, tmp_path, monkeypatch, every_log_line) -> Iterator[LocalSystem]:
    sqs = boto3.client("sqs")
    letters = sqs.create_queue(QueueName="webhook-stack-dead-letters")["QueueUrl"]
    arn = sqs.get_queue_attributes(QueueUrl=letters, AttributeNames=["QueueArn"])["Attributes"]
    # The local subscriber opted in to contact fields: its deliveries carry the person.
    monkeypatch.setattr(
        contact_events,
        "LOCAL_WEBHOOKS",
        contact_events.LOCAL_WEBHOOKS + "    include_fields: true\n",
    )
    rules = tmp_path / "cleanup_rules.yaml"
    rule = {"name": "one-person", "account": "main-clinic"}
    rule["where"] = [{"field": "email", "op": "equals", "value": EMAIL}]
    rules.write_text(yaml.safe_dump({"rules": [rule]}))
    monkeypatch.setenv("CLEANUP_RULES_FILE", str(rules))
    log = io.StringIO()
    local = LocalSystem(
        moto_endpoint=aws,
        emulator_url=cliniko.url,
        state_dir=tmp_path / "state",
        log=log,
        parameter_overrides={
            "LogLevel": "DEBUG",
            "WebhookDeadLetterQueueArn": arn["QueueArn"],
        },
    ).start()
    local.log_text = log.getvalue  # type: ignore[attr-defined]
    local.webhook_letters = letters  # type: ignore[attr-defined]
    try:
        yield local
    finally:
        local.stop()


def send(system: LocalSystem, delivery: demo.Delivery) -> httpx.Response:
    answer = demo.send(system.gateway.url, delivery)
    assert answer.status_code in (200, 202, 303), answer.text
    return answer


def secret_of(system: LocalSystem, source: str) -> str:
    return system.secrets[f"cliniko-automations/forms/{source}/signing-secret"]


def typeform(secret: str) -> demo.Delivery:
    """demo's Typeform delivery, its answers the person's, signed again."""
    event = json.loads(demo.typeform_delivery(secret).body)
    for answer in event["form_response"]["answers"]:
        ref, kind = answer["field"]["ref"], answer["type"]
        value = {
            "referrer_name": f"{FIRST} {LAST}",
            "referrer_email": EMAIL,
            "referrer_phone": PHONE,
            "practice_name": COMPANY,
            "referral_reason": REASON,
        }.get(ref)
        if value is not None:
            answer[kind] = value
    body = json.dumps(event).encode()
    signature = "sha256=" + base64.b64encode(demo._hmac(secret, body)).decode()
    headers = {"Content-Type": "application/json", "Typeform-Signature": signature}
    return demo.Delivery("Typeform", "referral-typeform", body, headers)


def tally(secret: str) -> demo.Delivery:
    event = json.loads(demo.tally_delivery(secret).body)
    values = {
        "question_first_name": FIRST,
        "question_last_name": LAST,
        "question_email": EMAIL,
        "question_phone": PHONE,
        "question_practice": COMPANY,
    }
    for field in event["data"]["fields"]:
        field["value"] = values.get(field["key"], field["value"])
    body = json.dumps(event).encode()
    signature = base64.b64encode(demo._hmac(secret, body)).decode()
    headers = {"Content-Type": "application/json", "Tally-Signature": signature}
    return demo.Delivery("Tally", "gp-referral-tally", body, headers)


def webflow(secret: str) -> demo.Delivery:
    event = json.loads(demo.webflow_delivery(secret).body)
    data = event["payload"]["data"]
    data.update(
        {
            "Full Name": f"{FIRST} {LAST}",
            "Email": EMAIL,
            "Phone": PHONE,
            "Company": COMPANY,
            "Message": MESSAGE,
        }
    )
    body = json.dumps(event).encode()
    millis = str(int(time.time() * 1000))
    signature = demo._hmac(secret, millis.encode() + b":" + body).hex()
    headers = {
        "Content-Type": "application/json",
        "x-webflow-timestamp": millis,
        "x-webflow-signature": signature,
    }
    return demo.Delivery("Webflow", "website-webflow", body, headers)


def html_form(system: LocalSystem) -> demo.Delivery:
    """demo's browser post of the sample form, its fields the person's."""
    sample = demo.html_delivery(system.site.url, defaults.HTML_SOURCE, system.captcha_field)
    fields = dict(parse_qsl(sample.body.decode(), keep_blank_values=True))
    fields.update(
        {
            "name": f"{FIRST} {LAST}",
            "email": EMAIL,
            "phone": PHONE,
            "organisation": COMPANY,
            "message": HTML_MESSAGE,
        }
    )
    return demo.Delivery(sample.label, sample.source, urlencode(fields).encode(), sample.headers)


def guessed_first_seen(system: LocalSystem, form: demo.Delivery) -> str:
    """The first-seen record's key of a form post without a nonce, as anyone who knows what
    the person sent (and the form's mapping, in the repository) computes it: the hash of its
    idempotency key, `<source>:sha256:<hash of the draft>`, is keyed by nothing."""
    source = load_form_sources(system.form_sources_file).sources[form.source]
    content_type = form.headers["Content-Type"]
    answers = dict(
        ADAPTERS[source.provider].parse(Delivery(form.body, {}, {}, content_type)).answers
    )
    assert source.html is not None and source.html.captcha is not None
    for field in (source.html.honeypot_field, source.html.captcha.token_field):
        answers.pop(field, None)
    fields = map_answers(answers, source)
    draft = validate_draft(fields, source, given_differently(answers, source))
    key = idempotency_key(source.name, None, draft, sender_chosen=False)
    return FIRST_SEEN_PREFIX + hashlib.sha256(key.encode()).hexdigest()


def queued(system: LocalSystem, url: str) -> int:
    attributes = system.sqs().get_queue_attributes(
        QueueUrl=url,
        AttributeNames=["ApproximateNumberOfMessages", "ApproximateNumberOfMessagesNotVisible"],
    )["Attributes"]
    return sum(int(count) for count in attributes.values())


def dead_letter_one(system: LocalSystem, control: EmulatorControl, delivery: Any) -> None:
    """Send `delivery` while Cliniko answers 500 to everything, until SQS redrives it: each
    receive as the event source makes it, each wait for its visibility skipped."""
    sqs = system.sqs()
    for consumer in system.consumers:
        consumer.stop()
    control.set_faults(error_rate=1.0, statuses=[500])
    send(system, delivery)
    queue = system.queue_url("SubmissionQueue")
    (worker,) = [c for c in system.consumers if c.queue_url == queue]
    dead = system.queue_url("SubmissionDeadLetterQueue")
    for _ in range(10):
        batch = sqs.receive_message(
            QueueUrl=queue,
            MaxNumberOfMessages=10,
            AttributeNames=["All"],
            MessageAttributeNames=["All"],
        ).get("Messages", [])
        if not batch and queued(system, dead):
            break
        if batch:
            worker.function.invoke(sqs_event(batch, worker.queue_arn, worker.region))
        for message in batch:
            sqs.change_message_visibility(
                QueueUrl=queue, ReceiptHandle=message["ReceiptHandle"], VisibilityTimeout=0
            )
    control.clear_faults()
    assert queued(system, dead) == 1


def messages_of(url: str) -> list[dict[str, Any]]:
    """Every message of a queue, read without being taken: each hidden until all are read,
    then visible again at once."""
    sqs = boto3.client("sqs")
    seen: dict[str, dict[str, Any]] = {}
    empty = 0
    while empty < 3:  # SQS answers a receive from some of its servers only
        batch = sqs.receive_message(
            QueueUrl=url,
            MaxNumberOfMessages=10,
            VisibilityTimeout=60,
            AttributeNames=["All"],
            MessageAttributeNames=["All"],
        ).get("Messages", [])
        empty = 0 if batch else empty + 1
        seen.update((message["MessageId"], message) for message in batch)
    for message in seen.values():
        sqs.change_message_visibility(
            QueueUrl=url, ReceiptHandle=message["ReceiptHandle"], VisibilityTimeout=0
        )
    return list(seen.values())


def inventory(every_log_line: Everything, system: LocalSystem) -> dict[str, list[str]]:
    """Where the person is: place -> the values found there."""
    places: dict[str, list[str]] = {}
    dynamodb = boto3.client("dynamodb")
    for table in dynamodb.list_tables()["TableNames"]:
        for page in dynamodb.get_paginator("scan").paginate(TableName=table):
            for item in page["Items"]:
                if hits := found_in(json.dumps(item, ensure_ascii=False)):
                    key = {k: v for k, v in item.items() if k in ("id", "pk", "sk", "request_id")}
                    places[f"table {table} {json.dumps(key)[:120]}"] = hits
    for url in boto3.client("sqs").list_queues().get("QueueUrls", []):
        name = url.rsplit("/", 1)[-1]
        for message in messages_of(url):
            if hits := found_in(json.dumps(message, ensure_ascii=False)):
                places[f"queue {name} {message['MessageId']}"] = hits
    secrets = boto3.client("secretsmanager")
    for secret in secrets.list_secrets()["SecretList"]:
        value = secrets.get_secret_value(SecretId=secret["ARN"]).get("SecretString", "")
        if hits := found_in(value):
            places[f"secret {secret['Name']}"] = hits
    lines = [*every_log_line.lines, *system.log_text().splitlines()]  # type: ignore[attr-defined]
    for number, line in enumerate(lines):
        if hits := found_in(line):
            places[f"log line {number}: {line[:200]}"] = hits
    return places


def stored_texts() -> list[tuple[str, str]]:
    """(table, item as JSON) for every item of every table."""
    dynamodb = boto3.client("dynamodb")
    return [
        (table, json.dumps(item, ensure_ascii=False))
        for table in dynamodb.list_tables()["TableNames"]
        for page in dynamodb.get_paginator("scan").paginate(TableName=table)
        for item in page["Items"]
    ]


def contacts_carrying(control: EmulatorControl) -> list[dict[str, Any]]:
    return [
        contact
        for shard in ("au1", "au2", "uk1")
        for contact in control.contacts(include_archived=True, shard=shard)
        if found_in(json.dumps(contact, ensure_ascii=False))
    ]


def drain(system: LocalSystem) -> None:
    assert system.drain(90)


@pytest.mark.slow
def test_an_erasure_leaves_the_person_in_no_store_this_system_owns(
    system, every_log_line, cliniko, request
) -> None:
    control = EmulatorControl(system.emulator_url)
    request.addfinalizer(control.close)
    sqs = system.sqs()
    json_secret = secret_of(system, "partner-json")

    # Made into contacts: north-clinic (json), main-clinic (Typeform, then Webflow's update).
    first = demo.json_delivery(json_secret, PERSON)
    send(system, first)
    send(system, first)  # a duplicate: the same Idempotency-Key again
    send(system, typeform(secret_of(system, "referral-typeform")))
    drain(system)
    send(system, webflow(secret_of(system, "website-webflow")))
    drain(system)
    form = html_form(system)
    posted = send(system, form)  # a browser's post: its answer a redirect
    assert "problem" not in posted.headers.get("location", ""), posted.headers
    drain(system)
    # Refused, a clear 4xx to its sender: a forged signature, and a body that is no JSON.
    forged = demo.json_delivery("not-the-secret-" + "x" * 24, PERSON)
    assert demo.send(system.gateway.url, forged).status_code == 401
    broken = demo.json_delivery(json_secret, PERSON)
    body = broken.body[:-7]  # signed as sent
    headers = {**broken.headers, "X-Signature": demo._t_v1(json_secret, body)}
    truncated = demo.Delivery(broken.label, broken.source, body, headers)
    assert demo.send(system.gateway.url, truncated).status_code == 400
    assert len(contacts_carrying(control)) == 2

    # Parked: staff made a second contact with their email in main-clinic.
    staff_made = {"first_name": "Zeph", "last_name": LAST, "email": EMAIL}
    control.seed(shard="au1", contacts=[staff_made])
    send(system, tally(secret_of(system, "gp-referral-tally")))
    drain(system)
    assert queued(system, system.queue_url("ParkedQueue")) == 1

    # Dead-lettered: Cliniko answers 500 to everything until SQS redrives the message.
    dead_letter_one(
        system, control, demo.json_delivery(json_secret, {**PERSON, "occupation": "Cartographer"})
    )

    # The change feed publishes their contacts; EventBridge gives up on the webhook.
    events = system.contact_events  # type: ignore[attr-defined]
    events.stand_in.stop()
    assert system.fire("ChangeFeedFunction")["accounts"]
    given_up = 0
    for route in events.stand_in.routes:
        for message in messages_of(route.queue_url):
            sqs.send_message(
                QueueUrl=system.webhook_letters,  # type: ignore[attr-defined]
                MessageBody=message["Body"],
                MessageAttributes={
                    "ERROR_CODE": {"DataType": "String", "StringValue": "SDK_CLIENT_ERROR"},
                    "RETRY_ATTEMPTS": {"DataType": "String", "StringValue": "185"},
                    "RULE_ARN": {"DataType": "String", "StringValue": route.rule},
                    "TARGET_ARN": {"DataType": "String", "StringValue": "arn:aws:events:x"},
                },
            )
            given_up += 1
    assert given_up >= 2

    # A cleanup dry run lists them (its execution's states carry counts, no values).
    run = system.fire("CleanupStateMachine")
    assert run["status"] == "finished" and run["last"]["matched"] >= 1, run
    assert found_in(json.dumps(run, ensure_ascii=False)) == []

    before = inventory(every_log_line, system)
    stores = {place.split(" ")[1] for place in before if place.startswith(("table", "queue"))}
    assert any("SubmissionStore" in store for store in stores), before  # the search finds them
    assert "webhook-stack-dead-letters" in stores, before

    url = f"{system.gateway.url}/erasure-requests"
    body = json.dumps(
        {
            "request_id": "inventory",
            "email": EMAIL,
            "erase_all_matches": True,
            "reason": "GDPR art. 17",
        }
    ).encode()
    answer = httpx.post(url, content=body, headers=signed("POST", url, body), timeout=120)
    assert answer.status_code == 200 and answer.json()["result"] == "erased", answer.text
    purged = {p["store"]: p["count"] for p in answer.json()["purged"]}
    assert purged.get("webhook_dead_letters", 0) >= 1, answer.text

    after = inventory(every_log_line, system)
    ours = {
        place: hits
        for place, hits in after.items()
        if not (place.startswith("queue ") and place.split(" ")[1].startswith(EVENTBRIDGE_SIDE))
    }
    assert ours == {}, json.dumps(ours, indent=1, ensure_ascii=False)
    assert contacts_carrying(control) == []
    # The logs were read: the functions' own (JSON, at DEBUG) and every other logger's.
    # (The functions log nothing at DEBUG of their own: LogLevel=DEBUG reaches each of them.)
    levels = {f.environment.get("POWERTOOLS_LOG_LEVEL") for f in system.functions.values()}
    assert levels == {"DEBUG"}
    assert '"service":"erasure"' in system.log_text()  # type: ignore[attr-defined]
    assert any(line.startswith("local_run") for line in every_log_line.lines)
    # Nor do the unkeyed hashes of the intake's identity claims outlive the erasure (a reader
    # of the table could confirm a guessed email against one).
    claims = {
        claim
        for account in ("main-clinic", "north-clinic")
        for claim in (email_claim(account, EMAIL), name_claim(account, FIRST, LAST))
    }
    kept = [place for place in stored_texts() if any(c in place[1] for c in claims)]
    assert kept == [], kept
    # What stays by design (README "Erasure on request"): the form post's first-seen time,
    # which dates a late redelivery as made before the erasure, under an unkeyed hash of its
    # content: whoever knows all the person sent can still confirm that they sent it.
    first_seen = guessed_first_seen(system, form)
    assert [t for t, text in stored_texts() if f'"{first_seen}"' in text] == [
        "cliniko-automations-local-SubmissionStoreTable"
    ]
    # What the change feed publishes next of their contacts is the scrub: nothing of them.
    for route in events.stand_in.routes:
        sqs.purge_queue(QueueUrl=route.queue_url)
    assert system.fire("ChangeFeedFunction")["accounts"]
    published = [m for route in events.stand_in.routes for m in messages_of(route.queue_url)]
    assert published, "the feed published the erasure's changes"
    assert [found_in(m["Body"]) for m in published if found_in(m["Body"])] == []
    # Every path was taken: what was held before, where.
    print(json.dumps(sorted(before), indent=1, ensure_ascii=False)[:20000])
    print("after (EventBridge side):", json.dumps(after, indent=1, ensure_ascii=False))
