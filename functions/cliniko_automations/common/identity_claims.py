"""Identity claims: the intake worker's short lock on one person in one account, and the
check an erasure makes against it.

The worker holds a claim while it looks a person up, reads their tombstones once more and
creates or updates their contact (intake_worker/store.DynamoClaims). An erasure writes the
tombstone of the request's email in one transaction with a check that no worker holds that
email's claim in any account it searches (`DynamoSubmissionStore.fence`), and only then looks
the person up in Cliniko. Whichever comes first, no contact escapes: a worker that claims
after the fence reads the tombstone and stops; one that held the claim before it has had its
create answered before the fence could pass, so the erasure's lookup finds that contact. A
create whose answer was lost keeps the claim until Cliniko has surely settled it
(`LOST_CREATE_SETTLES_SECONDS`), and an answered one a few seconds, in case Cliniko's lists
show a new contact a moment after its create (`CREATED_SEARCH_SETTLES_SECONDS`). A worker with
an email that also has the person's name and phone holds the name's claim too while it writes
(find_or_create.Lookup.writing_claim_key): a worker without the email knows them by it. Once it has
found the contacts, the erasure fences again on
their own identities (`contact_claims`: an erasure by contact id names no email, and a worker
may know the person by name and phone): a worker updating one of them has had its update
answered before the scrub, which then overwrites it.

Claims live in the idempotency table (pk `id`, TTL `expiration`) as `intake-claim#<sha256>`:
a hash of the account and the identity, unkeyed (the worker holds no pepper), so a reader of
the table with a guessed email could confirm it. A claim is deleted when its worker lets go,
and one left expired (a lost create's, a killed worker's) by the fence of an erasure of its
person; the rest wait for DynamoDB's TTL.
"""

from __future__ import annotations

import hashlib
import random
import time
from collections.abc import Callable, Mapping
from typing import Any

from cliniko_automations.common.person_keys import clean_email, compared_email, fold_name, text_of

CLAIM_PREFIX = "intake-claim#"
# Cliniko ends a request running over 30 s with a 504 (its API docs): a create whose answer
# was lost is saved within that or never. The worker keeps its claim this long after the
# loss, so an erasure of the person looks them up only once Cliniko has settled it.
LOST_CREATE_SETTLES_SECONDS = 60.0
# Cliniko's docs do not say that a contact is listed (found by the `q[]` email or name filter)
# as soon as its create has answered. The worker keeps its claim this long after a create, so
# the person's next submission (which waits up to CLAIM_WAIT_SECONDS, 5 s, for the claim) and
# an erasure's fence look them up only once a lagging search would list the new contact.
CREATED_SEARCH_SETTLES_SECONDS = 3.0


def claim_key(account: str, *identity: str) -> str:
    """The claim of one identity (`"email", email` or `"name", first, last`, as the worker
    compares them) in one account: two clinics may know the same person."""
    return hashlib.sha256("\x00".join((account, *identity)).encode()).hexdigest()


def email_claim(account: str, email: object) -> str:
    """The claim of an email in one account, the email compared as the worker compares it."""
    return claim_key(account, "email", compared_email(email))


def name_claim(account: str, first: object, last: object) -> str:
    """The claim of a name in one account (the worker's identity without an email)."""
    return claim_key(account, "name", fold_name(text_of(first)), fold_name(text_of(last)))


def contact_claims(account: str, contact: Mapping[str, Any]) -> list[str]:
    """The claims a worker holds while it updates this Cliniko contact in this account: its
    email's, and its name's (a worker matching by name and phone)."""
    claims = []
    if clean_email(text_of(contact.get("email"))):
        claims.append(email_claim(account, contact.get("email")))
    if fold_name(contact.get("first_name")) and fold_name(contact.get("last_name")):
        claims.append(name_claim(account, contact.get("first_name"), contact.get("last_name")))
    return claims


def claim_item_key(key: str) -> dict[str, dict[str, str]]:
    return {"id": {"S": CLAIM_PREFIX + key}}


def claim_is_free(now: int) -> dict[str, Any]:
    """The condition that no live claim is on the item: absent, or expired by `now` (epoch
    seconds; DynamoDB's TTL deletes lazily, within days)."""
    return {
        "ConditionExpression": "attribute_not_exists(id) OR #exp < :now",
        "ExpressionAttributeNames": {"#exp": "expiration"},
        "ExpressionAttributeValues": {":now": {"N": str(now)}},
    }


def waited_for(free: Callable[[], bool], seconds: float, sleep: Callable[[float], None]) -> bool:
    """Ask `free()` until it answers True, for up to `seconds`: False if it never did. Pauses
    from 50 ms doubling to 500 ms, with jitter so that a crowd of waiters does not retry in
    step (the worker waiting to take a claim, an erasure waiting for every claim to end)."""
    deadline = time.monotonic() + seconds
    delay = 0.05
    while not free():
        if time.monotonic() >= deadline:
            return False
        sleep(delay * random.uniform(0.5, 1.5))  # noqa: S311 - not security related
        delay = min(delay * 2, 0.5)
    return True
