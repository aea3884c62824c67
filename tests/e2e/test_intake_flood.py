"""A flood of valid-looking posts against one source, end to end: the intake API handler, moto's
queues and store, the worker handler, the Cliniko emulator over HTTP.

A plain HTML form's URL is in its page, a webhook's URL can leak: a bot posting well-formed
people (the honeypot left empty, no captcha configured) had each made a contact in Cliniko,
some 95 a minute on the user's budget for as long as the backlog it queued lasted. Past its
source's hourly ceiling a submission is held instead: 202 (303 to the thank-you page), its body
kept, its id on the parked queue with the reason `source_hourly_ceiling`, counted, and
replayable by `dead_letters.py --parked replay` like any parked submission.
"""

from __future__ import annotations

import contextlib
import io
import json
from collections.abc import Iterator
from datetime import UTC, datetime
from typing import Any

import pytest
import yaml
from botocore.exceptions import ClientError, ReadTimeoutError
from cliniko_automations.common import aws as aws_clients
from cliniko_automations.common.person_keys import email_hash
from cliniko_automations.common.submission_store import DynamoSubmissionStore

from tests.integration.intake_worker.e2e_world import (
    PEPPER,
    IntakePath,
    build_intake_path,
    delivery,
)
from tests.integration.intake_worker.resources import captured_logs, load_dead_letters_script

dead_letters = load_dead_letters_script()


@pytest.fixture
def path(aws, cliniko, monkeypatch, tmp_path) -> IntakePath:
    built = build_intake_path(cliniko, monkeypatch, tmp_path)
    monkeypatch.setenv("SOURCE_HOURLY_CEILING", "5")
    return built


def html_post(n: int) -> dict:
    return delivery("html", email=f"bot.person{n}@example.org")


def metric_values(stdout: str, name: str) -> list[float]:
    values = []
    for line in stdout.splitlines():
        if line.startswith("{") and "_aws" in line:
            blob = json.loads(line)
            names = [m["Name"] for d in blob["_aws"]["CloudWatchMetrics"] for m in d["Metrics"]]
            if name in names:
                values.append(blob[name])
    return values


def test_a_flood_past_the_hourly_ceiling_is_held_not_made_contacts(path, cliniko, capsys):
    answers = [path.post(html_post(n)) for n in range(12)]
    # Every post is thanked (the person's details are kept either way): a bot learns nothing.
    assert {a["statusCode"] for a in answers} == {303}
    assert all("/contact/thanks?submission_id=" in a["headers"]["Location"] for a in answers)
    assert path.stack.counts(path.stack.queue_url) == (5, 0)
    assert path.stack.counts(path.stack.parked_queue_url) == (7, 0)
    assert metric_values(capsys.readouterr().out, "SubmissionHeld") == [[1.0]] * 7

    path.work()
    assert len(cliniko.control.contacts()) == 5  # before: 12, one per post
    # Another source has an hour of its own.
    typeform = path.post(delivery("typeform", email="real.referral@example.org"))
    assert typeform["statusCode"] == 202 and "held" not in json.loads(typeform["body"])
    path.work()
    assert len(cliniko.control.contacts()) == 6

    # Staff look at what was held, and replay it: nothing was lost.
    out = io.StringIO()
    assert dead_letters.main(["--parked", "list", "--json"], out=out) == 0
    rows = [json.loads(line) for line in out.getvalue().splitlines()]
    assert [(r["reason"], r["body"]) for r in rows] == [("source_hourly_ceiling", "stored")] * 7
    assert dead_letters.main(["--parked", "replay", "--all"], out=io.StringIO()) == 0
    path.work()
    assert len(cliniko.control.contacts()) == 13
    assert path.stack.counts(path.stack.parked_queue_url) == (0, 0)


def test_copies_of_one_delivery_count_once_and_a_copy_of_a_held_one_is_held(path, cliniko):
    # A provider's retries, or a captured signed delivery sent again: the worker makes one
    # contact of them all. Counted each, five copies filled the hour and held the real
    # referral after them for staff.
    captured = delivery("typeform", email="captured@example.org")
    copies = [json.loads(path.post(captured)["body"]) for _ in range(5)]
    assert [c.get("held") for c in copies] == [None] * 5
    real = [
        json.loads(path.post(delivery("typeform", email=f"r{n}@example.org"))["body"])
        for n in range(5)
    ]
    assert [r.get("held") for r in real] == [None] * 4 + ["source_hourly_ceiling"]
    # The held one sent again is held again, not counted, and not handed to the worker.
    again = json.loads(path.post(delivery("typeform", email="r4@example.org"))["body"])
    assert again.get("held") == "source_hourly_ceiling"
    path.work()
    assert len(cliniko.control.contacts()) == 5  # the captured one once, four referrals
    assert path.stack.counts(path.stack.parked_queue_url) == (2, 0)


def test_a_held_submission_of_a_person_erased_since_it_was_made_is_not_kept(path, cliniko):
    # A provider's redelivery, days later, of a submission made before its person's erasure:
    # the worker drops such a one unstored, but held past the ceiling, the erased person's
    # body waited 16 days on the parked queue for staff.
    erased = "erased.person@example.org"
    path.stack.store().tombstone([email_hash(PEPPER, erased)], datetime.now(UTC))
    for n in range(5):  # the hour's five
        path.post(delivery("typeform", email=f"r{n}@example.org"))
    answer = json.loads(path.post(delivery("typeform", email=erased))["body"])

    assert answer["held"] == "source_hourly_ceiling"  # answered as any held one
    assert path.stack.store().get(answer["submission_id"]) is None
    assert path.stack.counts(path.stack.parked_queue_url) == (0, 0)


def test_a_signed_source_answers_held_and_a_sources_own_ceiling_overrides(
    path, cliniko, monkeypatch, tmp_path
):
    config = tmp_path / "form_sources.yaml"
    data = yaml.safe_load(config.read_text(encoding="utf-8"))
    data["sources"]["referral-typeform"]["hourly_ceiling"] = 2
    data["sources"]["partner-json"]["hourly_ceiling"] = 0  # an import's source: none
    config.write_text(yaml.safe_dump(data), encoding="utf-8")
    answers = [path.post(delivery("typeform", email=f"tf{n}@example.org")) for n in range(3)]
    bodies = [json.loads(a["body"]) for a in answers]
    assert [a["statusCode"] for a in answers] == [202] * 3
    assert [b.get("held") for b in bodies] == [None, None, "source_hourly_ceiling"]
    assert all(b["submission_id"] for b in bodies)
    imports = [path.post(delivery("json", email=f"row{n}@example.org")) for n in range(8)]
    assert [json.loads(a["body"]).get("held") for a in imports] == [None] * 8
    assert path.stack.counts(path.stack.queue_url) == (10, 0)
    assert path.stack.counts(path.stack.parked_queue_url) == (1, 0)


def test_the_ceiling_counts_each_hour_apart_and_never_past_it(aws, monkeypatch):
    from datetime import UTC, datetime

    import boto3

    from tests.integration.intake_worker.resources import create_submission_store

    dynamodb = boto3.client("dynamodb")
    create_submission_store(dynamodb, "ceiling-store")
    store = DynamoSubmissionStore(dynamodb, "ceiling-store")
    ten, eleven = datetime(2026, 12, 5, 10, 59, tzinfo=UTC), datetime(2026, 12, 5, 11, tzinfo=UTC)
    assert [store.admit_to_hour("web", ten, 2) for _ in range(4)] == [True, True, False, False]
    assert store.admit_to_hour("other", ten, 2)
    assert store.admit_to_hour("web", eleven, 2)
    item = dynamodb.get_item(
        TableName="ceiling-store", Key={"id": {"S": "source-hour#web#2026-12-05T10"}}
    )
    assert item["Item"]["queued"] == {"N": "2"}  # the refused ones are not counted
    store.leave_hour("web", ten)  # one that did not reach the worker after all
    assert [store.admit_to_hour("web", ten, 2) for _ in range(2)] == [True, False]
    # Never below nothing: a count given back to an hour with none makes no debt.
    twelve = datetime(2026, 12, 5, 12, tzinfo=UTC)
    store.leave_hour("web", twelve)
    assert [store.admit_to_hour("web", twelve, 1) for _ in range(2)] == [True, False]


NOT_ACCEPTED = "Submission not accepted: a dependency failed"


@contextlib.contextmanager
def refused(service: str, operation: str, *, then: str | None = None) -> Iterator[list[str]]:
    """AWS answering the intake API's `service` client's `operation` with a 500 (a hiccup),
    and, with `then`, that service's next call after each refusal too: the operations refused,
    in order. A botocore hook: the AWS boundary."""
    names: list[str] = []
    owed: list[str] = []

    def refuse(model: Any, **_: Any) -> None:
        names.append(model.name)
        raise ClientError({"Error": {"Code": "InternalServerError"}}, model.name)

    def first(model: Any, **kwargs: Any) -> None:
        if then is not None:
            owed.append(then)
        refuse(model, **kwargs)

    def after(model: Any, **kwargs: Any) -> None:
        if owed:
            owed.pop()
            refuse(model, **kwargs)

    hooks = [(service, f"before-call.{service}.{operation}", first)]
    if then is not None:
        hooks.append((then, f"before-call.{then}", after))
    for name, event, hook in hooks:
        aws_clients.client(name, config=aws_clients.FAIL_FAST).meta.events.register(event, hook)
    try:
        yield names
    finally:
        for name, event, hook in hooks:
            client = aws_clients.client(name, config=aws_clients.FAIL_FAST)
            client.meta.events.unregister(event, hook)


@pytest.mark.parametrize(
    ("service", "operation"), [("sqs", "SendMessage"), ("dynamodb", "PutItem")]
)
def test_a_submission_answered_503_gives_its_hourly_count_back(path, service, operation):
    # The store or the queue failed three deliveries after they were counted: answered 503,
    # the provider delivers them again. Counted each time, they spent three of the hour's
    # five, and two of the provider's five real referrals were held.
    posts = [delivery("typeform", email=f"referral{n}@example.org") for n in range(5)]
    with captured_logs("intake") as logs, refused(service, operation) as names:
        assert [path.post(post)["statusCode"] for post in posts[:3]] == [503] * 3
    assert names == [operation] * 3
    answers = [path.post(post) for post in posts]
    assert [a["statusCode"] for a in answers] == [202] * 5
    assert [json.loads(a["body"]).get("held") for a in answers] == [None] * 5
    assert path.stack.counts(path.stack.queue_url) == (5, 0)
    assert path.stack.counts(path.stack.parked_queue_url) == (0, 0)
    assert [line["hour_count"] for line in logs.json(NOT_ACCEPTED)] == ["given_back"] * 3


def test_a_count_that_cannot_be_given_back_leaves_the_503_as_it_was(path):
    # The queue refuses, and so does the store asked for the count back: the sender is still
    # answered 503 (delivered again), never a 500, and the log says the count was kept.
    post = delivery("typeform", email="referral@example.org")
    with captured_logs("intake") as logs, refused("sqs", "SendMessage", then="dynamodb") as names:
        answer = path.post(post)
    assert names == ["SendMessage", "UpdateItem"]
    assert answer["statusCode"] == 503
    (failed,) = logs.json(NOT_ACCEPTED)
    assert (failed["dependency"], failed["hour_count"]) == ("queue", "kept")


def test_a_store_that_does_not_answer_is_not_asked_for_the_count_back(path):
    # A store that timed out may be stalled: asked again, it could hold the function past its
    # 10 s, and API Gateway's 500 (which providers do not retry) would replace the 503.
    dynamodb = aws_clients.client("dynamodb", config=aws_clients.FAIL_FAST)
    calls: list[str] = []

    def stalled_at_the_body(model: Any, **_: Any) -> None:
        calls.append(model.name)
        if model.name == "PutItem":
            raise ReadTimeoutError(endpoint_url="https://dynamodb.eu-west-1.amazonaws.com")

    dynamodb.meta.events.register("before-call.dynamodb", stalled_at_the_body)
    try:
        with captured_logs("intake") as logs:
            answer = path.post(delivery("typeform", email="referral@example.org"))
    finally:
        dynamodb.meta.events.unregister("before-call.dynamodb", stalled_at_the_body)
    assert answer["statusCode"] == 503
    assert calls == ["UpdateItem", "UpdateItem", "PutItem"]  # counted, first seen, the body
    (failed,) = logs.json(NOT_ACCEPTED)
    assert (failed["dependency"], failed["hour_count"]) == ("submission_store", "kept")


def test_one_signed_delivery_replayed_is_one_contact_and_one_lookup_and_create(
    path, cliniko, monkeypatch
):
    """A leaked webhook URL and one captured delivery: the signature holds for each copy
    (Typeform signs the body, with no time), so every copy is accepted and queued; each is the
    same response token, so the worker answers every copy after the first from its
    idempotency record, sending Cliniko nothing (within its day: after it, a lookup each)."""
    monkeypatch.setenv("SOURCE_HOURLY_CEILING", "0")  # without it: every copy goes to the worker
    replay = delivery("typeform", email="captured@example.org")
    answers = [path.post(replay) for _ in range(40)]
    assert {a["statusCode"] for a in answers} == {202}
    assert len({json.loads(a["body"])["submission_id"] for a in answers}) == 40
    cliniko.control.clear_requests()
    assert path.work() == 40
    assert path.stack.counts(path.stack.queue_url) == (0, 0)
    assert [(r["method"], r["status"]) for r in cliniko.control.requests()] == [
        ("GET", 200),
        ("POST", 201),
    ]
    assert len(cliniko.control.contacts()) == 1
