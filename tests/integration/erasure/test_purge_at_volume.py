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
from typing import Any

import boto3
import pytest
from botocore.exceptions import ClientError
from cliniko_automations.cliniko import errors as cliniko_errors
from cliniko_automations.common.dynamodb_batches import BATCH_WRITE, write_items
from cliniko_automations.common.person_keys import PersonKeys, submission_keys
from cliniko_automations.common.submission_store import (
    BODY_PREFIX,
    EMAIL_INDEX,
    PURGE_PAGE,
    DynamoSubmissionStore,
    PurgeCut,
)
from cliniko_automations.erasure.attempt import LISTED_SUBMISSIONS, PURGE_UNFINISHED

from tests.integration.erasure import stack
from tests.integration.erasure.test_core_against_seed_shaped_answers import (
    CALLER,
    SeedShapedCliniko,
    ask,
    grizelda,
    make_eraser,
)

erasure_stack = stack.erasure_stack  # the fixture

# More submission ids (uuids, 36 characters) than one 400 KB item can list.
STORED = 11_500


EMAIL, PHONES = stack.PERSONAL["email"].lower(), ["0491 570 156"]


def store_bodies(erasure_stack: Any, count: int) -> tuple[DynamoSubmissionStore, PersonKeys]:
    """`count` bodies of the person: one stored as the intake stores it, and copies of it
    under other ids (one BatchWriteItem per 25, where a put each takes a minute on moto)."""
    dynamodb = boto3.client("dynamodb")
    table = erasure_stack.submission_table
    store = DynamoSubmissionStore(dynamodb, table, claims_table=erasure_stack.idempotency_table)
    keys = submission_keys(stack.PEPPER, EMAIL, "Grizelda", "Thistlewaite", PHONES)
    store.put("first", '{"stored": "a submission of theirs"}', keys)
    item = dynamodb.get_item(TableName=table, Key={"id": {"S": f"{BODY_PREFIX}first"}})["Item"]
    copies = [
        {"PutRequest": {"Item": {**item, "id": {"S": f"{BODY_PREFIX}{uuid.uuid4()}"}}}}
        for _ in range(count - 1)
    ]
    write_items(dynamodb, table, copies, sleep=time.sleep)
    return store, keys


def still_stored(erasure_stack: Any, keys: PersonKeys) -> int:
    pages = (
        boto3.client("dynamodb")
        .get_paginator("query")
        .paginate(
            TableName=erasure_stack.submission_table,
            IndexName=EMAIL_INDEX,
            KeyConditionExpression="email_hmac = :h",
            ExpressionAttributeValues={":h": {"S": keys.email_hmac}},
            Select="COUNT",
        )
    )
    return sum(page["Count"] for page in pages)


class Countdown:
    """The time an invocation leaves, spent by reads instead of seconds: `plenty` reads of
    an hour each, then none (a deadline the test sets in counts, on any machine)."""

    def __init__(self, plenty: int) -> None:
        self.reads = 0
        self.plenty = plenty

    def __call__(self) -> float:
        self.reads += 1
        return 3600.0 if self.reads <= self.plenty else 0.0


def test_a_person_with_more_stored_submissions_than_an_item_can_list_is_erased(erasure_stack):
    store, keys = store_bodies(erasure_stack, STORED)
    email, phones = EMAIL, PHONES
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


def test_the_purge_deletes_a_page_at_a_time_and_stops_at_its_deadline(erasure_stack):
    # More than one page of the index: the deadline falls in the second page.
    stored = PURGE_PAGE + 200
    store, keys = store_bodies(erasure_stack, stored)
    batches = PURGE_PAGE // BATCH_WRITE + 3

    with pytest.raises(PurgeCut) as cut:
        store.purge(keys.email_hmac, time_left=Countdown(plenty=batches))

    assert len(cut.value.deleted) == batches * BATCH_WRITE
    assert still_stored(erasure_stack, keys) == stored - batches * BATCH_WRITE
    # Given time, the next purge deletes what is left, and only that.
    rest = store.purge(keys.email_hmac, time_left=Countdown(plenty=stored))
    assert len(rest) == stored - batches * BATCH_WRITE
    assert set(rest).isdisjoint(cut.value.deleted)
    assert still_stored(erasure_stack, keys) == 0


def test_an_erasure_out_of_time_purging_fails_retryably_before_cliniko_changes(erasure_stack):
    # A flood left more bodies than one invocation deletes: the attempt stops at the time the
    # invocation leaves (the erasure API's 29 s less its reserve), answered and recorded,
    # where it ran into the Lambda's timeout (API Gateway's 500, no purge record).
    stored = 300
    store, keys = store_bodies(erasure_stack, stored)
    cliniko = grizelda(EMAIL, PHONES[0])
    request = ask(request_id="flooded", email=EMAIL)
    countdown = Countdown(plenty=4)

    cut = make_eraser(erasure_stack, cliniko, submissions=store, time_left=countdown).submit(
        request, CALLER
    )

    assert (cut.status, cut.result) == ("failed", "failed")
    assert PURGE_UNFINISHED in cut.message and "same request id" in cut.message
    assert cliniko.writes == [] and cliniko.contact["email"] == EMAIL  # findable again
    assert cut.purged[0].count == 4 * BATCH_WRITE
    assert still_stored(erasure_stack, keys) == stored - 4 * BATCH_WRITE
    purge = [i for i in erasure_stack.audit_items() if i.get("record") == "purge"]
    assert [(p.get("unfinished"), len(p["purged"])) for p in purge] == [(True, 1)]

    # The same request id, sent again, goes on from what is left and finishes.
    done = make_eraser(erasure_stack, cliniko, submissions=store).submit(request, CALLER)

    assert done.result == "erased", done.message
    assert done.purged[0].count == stored  # the request's whole purge, both attempts'
    purge = [i for i in erasure_stack.audit_items() if i.get("record") == "purge"]
    assert sorted(int(p["purged"][0]["count"]) for p in purge) == [
        4 * BATCH_WRITE,
        stored - 4 * BATCH_WRITE,
    ]
    assert still_stored(erasure_stack, keys) == 0


def test_a_retry_after_cliniko_refused_counts_the_bodies_the_first_attempt_purged(erasure_stack):
    # The shared budget busy past the erasure API's 5 s wait: the scrub is refused after the
    # purge. The retry finds nothing left to purge; its outcome still counts the request's.
    stored = 60
    store, _ = store_bodies(erasure_stack, stored)

    class BusyOnce(SeedShapedCliniko):
        refused = False

        def update_contact(self, contact_id, body, *, include_archived=False):
            if not self.refused:
                self.refused = True
                raise cliniko_errors.RateLimited("budget booked past the wait", reset_at=None)
            return super().update_contact(contact_id, body, include_archived=include_archived)

    cliniko = grizelda(EMAIL, PHONES[0], cliniko=BusyOnce)
    request = ask(request_id="busy-budget", email=EMAIL)
    first = make_eraser(erasure_stack, cliniko, submissions=store).submit(request, CALLER)
    assert first.status == "failed" and first.purged[0].count == stored

    done = make_eraser(erasure_stack, cliniko, submissions=store).submit(request, CALLER)

    assert done.result == "erased", done.message
    assert done.purged[0].count == stored  # was 0: the retry's own purge found none left


def test_a_retry_failing_before_its_purge_still_counts_the_bodies_purged_before(erasure_stack):
    # The first attempt purges, then Cliniko refuses its scrub; the second fails at its lookup
    # (Cliniko down), before it reaches the purge: its answer still tells what went.
    stored = 30
    store, _ = store_bodies(erasure_stack, stored)

    class RefusesThenDown(SeedShapedCliniko):
        updates_refused = 0
        lists = 0

        def list_contacts(self, filters: Any = (), sort: Any = None) -> list[dict[str, Any]]:
            self.lists += 1
            if self.updates_refused and self.lists > 1:
                raise cliniko_errors.ServerError("Cliniko answered 503")
            return super().list_contacts(filters, sort)

        def update_contact(self, contact_id, body, *, include_archived=False):
            self.updates_refused += 1
            raise cliniko_errors.RateLimited("budget booked past the wait", reset_at=None)

    cliniko = grizelda(EMAIL, PHONES[0], cliniko=RefusesThenDown)
    request = ask(request_id="down-after-purge", email=EMAIL)
    first = make_eraser(erasure_stack, cliniko, submissions=store).submit(request, CALLER)
    assert first.status == "failed" and first.purged[0].count == stored

    second = make_eraser(erasure_stack, cliniko, submissions=store).submit(request, CALLER)

    assert second.status == "failed", second.message
    assert [(p.store, p.count) for p in second.purged] == [("submission_store", stored)]
    # The request's status says so too: it was read from the last attempt's records alone,
    # and that attempt, failing before its purge, has none (the status said nothing went).
    status = make_eraser(erasure_stack, cliniko, submissions=store).status(request.request_id)
    assert [(p.store, p.count) for p in status.purged] == [("submission_store", stored)]


class _FailingWrites:
    """boto3's DynamoDB client whose BatchWriteItem fails after `good` calls (throttled past
    its retries, a network gone): what the store meets, not the store changed."""

    def __init__(self, client: Any, good: int) -> None:
        self._client = client
        self.good = good

    def __getattr__(self, name: str) -> Any:
        return getattr(self._client, name)

    def batch_write_item(self, **kwargs: Any) -> Any:
        if self.good <= 0:
            raise ClientError({"Error": {"Code": "InternalServerError"}}, "BatchWriteItem")
        self.good -= 1
        return self._client.batch_write_item(**kwargs)


def test_a_purge_failing_part_way_still_counts_what_it_deleted(erasure_stack):
    # The bodies deleted before the store failed are gone: unrecorded, the retry's outcome
    # counted only the rest (the request's whole purge is what the outcome says).
    stored = 300
    store, keys = store_bodies(erasure_stack, stored)
    failing = DynamoSubmissionStore(
        _FailingWrites(boto3.client("dynamodb"), good=4),
        erasure_stack.submission_table,
        claims_table=erasure_stack.idempotency_table,
    )
    cliniko = grizelda(EMAIL, PHONES[0])
    request = ask(request_id="store-failed", email=EMAIL)

    first = make_eraser(erasure_stack, cliniko, submissions=failing).submit(request, CALLER)

    assert first.status == "failed" and "submission_store_error" in first.message
    assert cliniko.writes == []
    gone = stored - still_stored(erasure_stack, keys)  # the tombstones' write took one call
    assert gone == 3 * BATCH_WRITE
    assert first.purged[0].count == gone
    done = make_eraser(erasure_stack, cliniko, submissions=store).submit(request, CALLER)
    assert done.result == "erased", done.message
    assert done.purged[0].count == stored
