"""After an erasure nothing of the person is left in any table or queue of the whole system.

The local run (every table, queue and secret of template.yaml on moto, the emulator as Cliniko)
is given one person everywhere it can hold them: a submission made into a contact, one
dead-lettered, one parked, two still queued, the change feed's state, a cleanup run whose rule
names their email. After the erasure, every DynamoDB item, every message of every queue
(dead-letter queues too, read without being taken) and every secret is searched for their
name, email and phone, in any case and URL-encoded: the stores' own tests check each purge,
this one finds a store none of them knows of. The logs are searched by test_no_leaks_at_debug.
"""

from __future__ import annotations

import hashlib
import json
import re
from collections.abc import Callable, Iterator
from typing import Any
from urllib.parse import quote, quote_plus

import boto3
import httpx
import pytest
import yaml
from cliniko_emulator import EmulatorControl
from local_run import demo
from local_run.system import LocalSystem

from tests.integration.local_run.test_local_run import signed

FIRST, LAST = "Zephyrine", "Quillfeather"
EMAIL = "zq-7781@example.org"
PHONE = "+61 400 778 199"
PERSON = {"first_name": FIRST, "last_name": LAST, "email": EMAIL, "mobile": PHONE}
ACCOUNT, SHARD = "north-clinic", "au2"  # partner-json's account, and its key's shard


def searched() -> set[str]:
    values = [FIRST, LAST, EMAIL, PHONE, hashlib.sha256(f"email\x00{EMAIL}".encode()).hexdigest()]
    return {
        form.lower()
        for value in values
        for form in (value, quote(value, safe=""), quote_plus(value))
    }


def found_in(text: str) -> list[str]:
    lowered = text.lower()
    hits = sorted(form for form in searched() if form in lowered)
    if "400778199" in re.sub(r"\D", "", text):
        hits.append("the phone's digits")
    return hits


def residue(found: Callable[[str], list[str]] = found_in) -> dict[str, list[str]]:
    """Where the person is (or what `found` looks for, tests/e2e/leak_search.py's markers): a
    place (table and key, queue and message id, secret) -> what was found."""
    places: dict[str, list[str]] = {}
    dynamodb = boto3.client("dynamodb")
    for table in dynamodb.list_tables()["TableNames"]:
        for page in dynamodb.get_paginator("scan").paginate(TableName=table):
            for item in page["Items"]:
                if hits := found(json.dumps(item, ensure_ascii=False)):
                    places[f"{table} {json.dumps(item)[:80]}"] = hits
    sqs = boto3.client("sqs")
    for url in sqs.list_queues().get("QueueUrls", []):
        for _ in range(5):  # SQS answers a receive from some of its servers only
            answer = sqs.receive_message(
                QueueUrl=url,
                MaxNumberOfMessages=10,
                VisibilityTimeout=0,
                AttributeNames=["All"],
                MessageAttributeNames=["All"],
            )
            for message in answer.get("Messages", []):
                if hits := found(json.dumps(message, ensure_ascii=False)):
                    places[f"{url.rsplit('/', 1)[-1]} {message['MessageId']}"] = hits
    secrets = boto3.client("secretsmanager")
    for secret in secrets.list_secrets()["SecretList"]:
        value = secrets.get_secret_value(SecretId=secret["ARN"]).get("SecretString", "")
        if hits := found(value):
            places[f"secret {secret['Name']}"] = hits
    return places


def submit(system: LocalSystem, fields: dict[str, Any]) -> None:
    secret = system.secrets["cliniko-automations/forms/partner-json/signing-secret"]
    assert demo.send(system.gateway.url, demo.json_delivery(secret, fields)).status_code == 202


def queued(system: LocalSystem, queue: str) -> int:
    attributes = system.sqs().get_queue_attributes(
        QueueUrl=system.queue_url(queue), AttributeNames=["ApproximateNumberOfMessages"]
    )["Attributes"]
    return int(attributes["ApproximateNumberOfMessages"])


def carrying_the_person(control: EmulatorControl) -> list[dict[str, Any]]:
    return [c for c in control.contacts(shard=SHARD) if found_in(json.dumps(c))]


@pytest.fixture
def held_everywhere(local_system, tmp_path, monkeypatch) -> Iterator[EmulatorControl]:
    """The local run holding the person in every store it has."""
    rules = tmp_path / "cleanup_rules.yaml"
    rule = {"name": "one-person", "account": ACCOUNT}
    rule["where"] = [{"field": "email", "op": "equals", "value": EMAIL}]
    rules.write_text(yaml.safe_dump({"rules": [rule]}))
    monkeypatch.setenv("CLEANUP_RULES_FILE", str(rules))  # read at each invocation
    system = local_system
    with EmulatorControl(system.emulator_url) as control:
        submit(system, PERSON)  # made into a contact
        assert system.drain(60)
        assert len(carrying_the_person(control)) == 1
        key = system.account_keys[ACCOUNT]
        control.add_key(key, read_only=True)
        submit(system, {**PERSON, "company_name": "Quillfeather Studio"})  # Cliniko's 403
        assert system.drain(60)
        control.add_key(key)
        staff_made = {**PERSON, "first_name": "Zephy"}  # the same email: which one is theirs?
        control.seed(shard=SHARD, contacts=[staff_made])
        submit(system, {**PERSON, "occupation": "Cartographer"})  # parked
        assert system.drain(60)
        assert system.fire("ChangeFeedFunction")["accounts"]
        assert system.fire("CleanupStateMachine")["status"] == "finished"  # a dry run
        for consumer in system.consumers:
            consumer.stop()
        submit(system, {**PERSON, "notes": "please call after 5"})
        submit(system, {"first_name": FIRST, "last_name": LAST, "mobile": "0400 778 199"})
        waiting = ("SubmissionQueue", "SubmissionDeadLetterQueue", "ParkedQueue")
        assert [queued(system, queue) for queue in waiting] == [2, 1, 1]
        yield control


def test_an_erasure_by_email_leaves_nothing_of_the_person_in_any_store(
    local_system, held_everywhere
):
    control, system = held_everywhere, local_system
    assert any("SubmissionStoreTable" in place for place in residue())  # the search finds them
    url = f"{system.gateway.url}/erasure-requests"
    body = json.dumps(
        {"request_id": "residue", "email": EMAIL, "erase_all_matches": True, "reason": "art. 17"}
    ).encode()
    answer = httpx.post(url, content=body, headers=signed("POST", url, body), timeout=60)
    assert answer.status_code == 200 and answer.json()["result"] == "erased", answer.text

    assert residue() == {}
    # The submissions queued before the erasure are dropped when they are worked, not made.
    for consumer in system.consumers:
        while consumer.poll_once():
            pass
    assert queued(system, "SubmissionQueue") == 0
    assert carrying_the_person(control) == []
