"""The submission store's erasure side against moto: a person's tombstones and bodies go in
batches (25 writes a request), however many there are; the tombstone an erasure writes before
its lookup waits for the intake worker's claims on the person."""

from __future__ import annotations

import threading
import time
from datetime import UTC, datetime, timedelta

import boto3
from cliniko_automations.common.identity_claims import claim_item_key, claim_key
from cliniko_automations.common.person_keys import PersonKeys
from cliniko_automations.common.submission_store import (
    FENCE_CLAIMS,
    DynamoSubmissionStore,
    StoredSubmission,
)
from cliniko_automations.intake_worker.store import DynamoClaims

from tests.integration.cleanup.tables import create_table
from tests.integration.intake_worker.resources import create_submission_store

ERASED_AT = datetime(2026, 11, 30, 9, 30, tzinfo=UTC)


def test_every_tombstone_and_every_body_of_a_person_goes_past_one_batch(aws) -> None:
    dynamodb = boto3.client("dynamodb")
    store = DynamoSubmissionStore(dynamodb, create_submission_store(dynamodb, "store"))
    person = PersonKeys(email_hmac="email-hmac")
    other = PersonKeys(email_hmac="other-hmac")
    for n in range(30):
        store.put(f"sub-{n:02d}", "{}", person)
    store.put("someone-else", "{}", other)
    keys = [f"key-{n:02d}" for n in range(30)]

    store.tombstone([*keys, keys[0]], ERASED_AT)  # a key twice is written once
    purged = store.purge("email-hmac")

    assert purged == [f"sub-{n:02d}" for n in range(30)]
    assert all(store.get(f"sub-{n:02d}") is None for n in range(30))
    assert store.get("someone-else") is not None
    assert store.erased_at(keys) == ERASED_AT
    assert store.erased_at(["key-00"]) == ERASED_AT
    assert store.erased_at(["never-erased"]) is None


def test_a_person_erased_twice_was_last_erased_at_the_later_time(aws) -> None:
    # Erased by name and phone, then again by email: a submission made between the two is
    # older than the latest erasure, and dropped.
    dynamodb = boto3.client("dynamodb")
    store = DynamoSubmissionStore(dynamodb, create_submission_store(dynamodb, "store"))
    store.tombstone(["name-phone-key"], ERASED_AT)
    store.tombstone(["email-key"], ERASED_AT + timedelta(days=3))
    assert store.erased_at(["email-key", "name-phone-key"]) == ERASED_AT + timedelta(days=3)
    assert store.erased_at(["name-phone-key", "email-key"]) == ERASED_AT + timedelta(days=3)


def test_a_redelivery_keeps_the_time_its_submission_was_first_received(aws) -> None:
    # A payload without a time of its own is as old as its first receipt: delivered again
    # after its person's erasure, it is older than the erasure, and dropped.
    dynamodb = boto3.client("dynamodb")
    store = DynamoSubmissionStore(dynamodb, create_submission_store(dynamodb, "store"))
    later = ERASED_AT + timedelta(days=2)
    assert store.first_received("partner-json:sha256:abc", ERASED_AT).at == ERASED_AT
    assert store.first_received("partner-json:sha256:abc", later).at == ERASED_AT
    assert store.first_received("partner-json:sha256:def", later).at == later


def store_on_clock(now: list[float]) -> DynamoSubmissionStore:
    """A new submission store whose clock reads `now[0]`."""
    dynamodb = boto3.client("dynamodb")
    return DynamoSubmissionStore(
        dynamodb, create_submission_store(dynamodb, "store"), clock=lambda: now[0]
    )


def test_a_body_outlives_the_fourteen_days_a_queue_keeps_its_id(aws) -> None:
    # The parked and dead-letter queues keep a message 14 days: replayed on its last day, the
    # id still finds its body (BODY_TTL_SECONDS); `keep` gives it that long again.
    now = [time.time()]
    store = store_on_clock(now)
    store.put("sub-1", "{}", PersonKeys(email_hmac="email-hmac"))
    now[0] += 14 * 24 * 3600 + 3600
    assert isinstance(store.get("sub-1"), StoredSubmission)
    store.keep("sub-1")
    now[0] += 14 * 24 * 3600 + 3600
    assert isinstance(store.get("sub-1"), StoredSubmission)
    now[0] += 3 * 24 * 3600
    assert store.get("sub-1") is None


def test_a_first_seen_record_past_its_expiry_is_gone_though_dynamodb_still_holds_it(aws) -> None:
    # DynamoDB's TTL deletes lazily (within days), and moto never does: the same details sent
    # again a day after their first-seen record expired (21 days after they last arrived) are
    # a new submission, made now. Read from the expired item, they kept their first arrival's
    # time: made before an erasure in between, a returning person was dropped as erased.
    now = [ERASED_AT.timestamp() - 5 * 86400]
    store = store_on_clock(now)
    first = datetime.fromtimestamp(now[0], UTC)
    assert store.first_received("form:sha256:abc", first).at == first
    now[0] += 20 * 86400  # inside the record's 21 days: a redelivery
    assert store.first_received("form:sha256:abc", first + timedelta(days=20)).at == first
    now[0] += 21 * 86400 + 1  # 21 days and a second since it last arrived
    again = datetime.fromtimestamp(now[0], UTC)
    assert again > ERASED_AT
    assert store.first_received("form:sha256:abc", again).at == again
    # And that new arrival's record lives its 21 days again.
    now[0] += 86400
    assert store.first_received("form:sha256:abc", again + timedelta(days=1)).at == again


def test_keep_leaves_a_body_that_is_gone_gone(aws) -> None:
    # An id sent to a queue again after its person's erasure, or after its body expired (and
    # waits for DynamoDB's lazy TTL), must not bring the body or an item back.
    now = [time.time()]
    store = store_on_clock(now)
    store.put("erased", "{}", PersonKeys(email_hmac="email-hmac"))
    store.put("expired", "{}", PersonKeys(email_hmac="other-hmac"))
    assert store.purge("email-hmac") == ["erased"]
    now[0] += 17 * 24 * 3600
    for submission_id in ("erased", "expired", "never-stored"):
        store.keep(submission_id)
        assert store.get(submission_id) is None


def fenced_store(dynamodb, *, wait: float = 0.3) -> DynamoSubmissionStore:
    return DynamoSubmissionStore(
        dynamodb,
        create_submission_store(dynamodb, "store"),
        claims_table=create_table("IdempotencyTable", "claims"),
        fence_wait_seconds=wait,
    )


CLAIMS = [claim_key(account, "email", "ana@example.com") for account in ("main", "north")]


def test_a_fence_tombstones_when_no_worker_holds_the_person_and_deletes_expired_claims(aws) -> None:
    dynamodb = boto3.client("dynamodb")
    store = fenced_store(dynamodb)
    # Another person's claim, and one of this person's that expired (its holder died).
    others = claim_key("main", "email", "bo@example.com")
    held = DynamoClaims(dynamodb, "claims").hold(others)
    held.__enter__()
    dynamodb.put_item(
        TableName="claims",
        Item={**claim_item_key(CLAIMS[1]), "token": {"S": "t"}, "expiration": {"N": "1"}},
    )

    assert store.fence("email-hmac", ERASED_AT, CLAIMS) is True
    assert store.erased_at(["email-hmac"]) == ERASED_AT
    # The expired claim's key is an unkeyed hash of the email: gone with the erasure, not left
    # to DynamoDB's lazy TTL. The other person's claim is theirs.
    left = {item["id"]["S"] for item in dynamodb.scan(TableName="claims")["Items"]}
    assert left == {claim_item_key(others)["id"]["S"]}
    held.__exit__(None, None, None)


def test_a_fence_waits_for_a_held_claim_and_writes_nothing_while_it_is_held(aws) -> None:
    dynamodb = boto3.client("dynamodb")
    store = fenced_store(dynamodb, wait=0.3)
    with DynamoClaims(dynamodb, "claims").hold(CLAIMS[1]):
        started = time.monotonic()
        assert store.fence("email-hmac", ERASED_AT, CLAIMS) is False
        assert time.monotonic() - started >= 0.3
        assert store.erased_at(["email-hmac"]) is None
    # Let go: the next fence passes.
    assert store.fence("email-hmac", ERASED_AT, CLAIMS) is True


def test_a_fence_passes_once_the_worker_lets_go(aws) -> None:
    dynamodb = boto3.client("dynamodb")
    store = fenced_store(dynamodb, wait=10)
    held = DynamoClaims(dynamodb, "claims").hold(CLAIMS[0])
    held.__enter__()
    threading.Timer(0.4, held.__exit__, (None, None, None)).start()

    started = time.monotonic()
    assert store.fence("email-hmac", ERASED_AT, CLAIMS) is True
    assert 0.4 <= time.monotonic() - started < 10
    assert store.erased_at(["email-hmac"]) == ERASED_AT


def test_a_fence_checks_more_claims_than_one_transaction_holds(aws) -> None:
    dynamodb = boto3.client("dynamodb")
    store = fenced_store(dynamodb)
    claims = [
        claim_key(f"account-{n}", "email", "ana@example.com") for n in range(FENCE_CLAIMS + 5)
    ]
    with DynamoClaims(dynamodb, "claims").hold(claims[-1]):  # in the second transaction
        assert store.fence("email-hmac", ERASED_AT, claims) is False
    assert store.fence("email-hmac", ERASED_AT, claims) is True
