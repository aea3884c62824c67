"""The erasure's purge of one person's stored submissions at volume.

How many bodies one email has stored is nobody's choice but its senders': each delivery is
stored under a new submission id and kept while it is queued, parked or dead-lettered (up to
16 days), so a sender who floods a form with someone's email while their submissions park
(several contacts match) leaves tens of thousands. Each record the erasure writes is one
DynamoDB item (at most 400 KB), and so is its stored outcome in the idempotency table.
"""

from __future__ import annotations

import time
import uuid

import boto3
from cliniko_automations.common.dynamodb_batches import write_items
from cliniko_automations.common.person_keys import submission_keys
from cliniko_automations.common.submission_store import BODY_PREFIX, DynamoSubmissionStore
from cliniko_automations.erasure.attempt import LISTED_SUBMISSIONS

from tests.integration.erasure import stack
from tests.integration.erasure.test_core_against_seed_shaped_answers import (
    CALLER,
    ask,
    grizelda,
    make_eraser,
)

erasure_stack = stack.erasure_stack  # the fixture

# More submission ids (uuids, 36 characters) than one 400 KB item can list.
STORED = 11_500


def test_a_person_with_more_stored_submissions_than_an_item_can_list_is_erased(erasure_stack):
    dynamodb = boto3.client("dynamodb")
    table = erasure_stack.submission_table
    store = DynamoSubmissionStore(dynamodb, table, claims_table=erasure_stack.idempotency_table)
    email, phones = stack.PERSONAL["email"].lower(), ["0491 570 156"]
    keys = submission_keys(stack.PEPPER, email, "Grizelda", "Thistlewaite", phones)
    # One body stored as the intake stores it, and copies of it under other ids (one
    # BatchWriteItem per 25, where a put each takes a minute on moto).
    store.put("first", '{"stored": "a submission of theirs"}', keys)
    item = dynamodb.get_item(TableName=table, Key={"id": {"S": f"{BODY_PREFIX}first"}})["Item"]
    copies = [
        {"PutRequest": {"Item": {**item, "id": {"S": f"{BODY_PREFIX}{uuid.uuid4()}"}}}}
        for _ in range(STORED - 1)
    ]
    write_items(dynamodb, table, copies, sleep=time.sleep)
    cliniko = grizelda(email, phones[0])
    eraser = make_eraser(erasure_stack, cliniko, submissions=store)

    outcome = eraser.submit(ask(request_id="many-bodies", email=email), CALLER)

    assert outcome.result == "erased", outcome.message
    (purged,) = outcome.purged
    assert purged.count == STORED
    assert len(purged.submission_ids) == LISTED_SUBMISSIONS
    assert store.get("first") is None
    assert store.purge(keys.email_hmac) == []  # none left
    # The trail says so too, and a repeat of the request is answered from what was stored.
    again = eraser.submit(ask(request_id="many-bodies", email=email), CALLER)
    assert (again.result, again.purged[0].count) == ("erased", STORED)
