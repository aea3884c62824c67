"""The submission store's erasure side against moto: a person's tombstones and bodies go in
batches (25 writes a request), however many there are."""

from __future__ import annotations

from datetime import UTC, datetime

import boto3
from cliniko_automations.common.person_keys import PersonKeys
from cliniko_automations.common.submission_store import DynamoSubmissionStore

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
