"""The erasure's AWS writes whose answer is lost (tests/fixtures/lost_answers.py): botocore
retries, and the retry meets the write its first attempt made."""

from __future__ import annotations

from typing import Any

import pytest
from cliniko_automations.common import aws
from cliniko_automations.common.person_keys import submission_keys
from cliniko_automations.common.submission_store import DynamoSubmissionStore
from cliniko_automations.erasure.accounts import ErasureAccounts
from cliniko_automations.erasure.audit import DynamoAuditLog
from cliniko_automations.erasure.chain_check import verify_chain
from cliniko_automations.erasure.idempotency import KEY_PREFIX, PowertoolsOnce
from cliniko_automations.erasure.models import ErasureRequest
from cliniko_automations.erasure.workflow import Eraser

from tests.fixtures.lost_answers import answers_lost
from tests.integration.erasure import stack
from tests.integration.erasure.stack import PEPPER, USER_AGENT
from tests.integration.erasure.test_core_against_emulator import make_eraser
from tests.integration.erasure.test_core_against_seed_shaped_answers import grizelda

erasure_stack = stack.erasure_stack

CALLER = "arn:aws:iam::123456789012:user/privacy-officer"
PHONE = "0491 570 156"


def eraser_of(erasure_stack: stack.ErasureStack) -> Eraser:
    client = erasure_stack.cliniko.client(user_agent=USER_AGENT)
    dynamodb = aws.client("dynamodb", config=aws.FAIL_FAST)
    return Eraser(
        ErasureAccounts([stack.ACCOUNT], lambda _account: client),
        # As the erasure service makes them: on its one DynamoDB client.
        DynamoAuditLog(erasure_stack.table_name, client=dynamodb),
        PEPPER,
        once=PowertoolsOnce(erasure_stack.idempotency_table, dynamodb=dynamodb),
    )


def ask(**values: Any) -> ErasureRequest:
    return ErasureRequest.parse({"reason": "GDPR art. 17", **values})


def the_request_s_record(body: dict[str, Any]) -> bool:
    return body.get("Item", {}).get("id", {}).get("S", "").startswith(KEY_PREFIX)


def test_a_request_whose_idempotency_record_lost_its_answer_is_erased(erasure_stack) -> None:
    # The retry met the record its first attempt wrote: "in progress" (a 409) for the
    # request's own first call, and for every repeat until the record's lease ran out.
    contact_id = erasure_stack.seed()
    dynamodb = aws.client("dynamodb", config=aws.FAIL_FAST)
    with answers_lost(dynamodb, "PutItem", matching=the_request_s_record) as lost:
        outcome = eraser_of(erasure_stack).submit(
            ask(request_id="r-lost", contact_id=contact_id), CALLER
        )
    assert (lost.lost, len(lost.sent)) == (1, 2)
    assert (outcome.status, outcome.result) == ("completed", "erased")


def test_a_trail_write_whose_answer_was_lost_is_retried_with_its_token(erasure_stack) -> None:
    # DynamoDB answers a TransactWriteItems sent again with the same ClientRequestToken (within
    # 10 minutes) from the first instead of applying it again (so does the tests' moto):
    # botocore fills the token once per call and sends the same one on its retries. A token
    # of each attempt's own would have met the records the first wrote: AlreadyRecorded.
    contact_id = erasure_stack.seed()
    with answers_lost(
        aws.client("dynamodb", config=aws.FAIL_FAST), "TransactWriteItems", times=1
    ) as lost:
        outcome = eraser_of(erasure_stack).submit(
            ask(request_id="r-trail", contact_id=contact_id), CALLER
        )
    first, retry = lost.sent[:2]
    assert first["ClientRequestToken"] == retry["ClientRequestToken"]
    assert first["TransactItems"] == retry["TransactItems"]
    assert (outcome.status, outcome.result) == ("completed", "erased")
    records, places = DynamoAuditLog(erasure_stack.table_name).records_and_places("r-trail")
    assert verify_chain("r-trail", records, places).intact


def puts(body: dict[str, Any]) -> bool:
    return any("PutRequest" in r for rs in body.get("RequestItems", {}).values() for r in rs)


def deletes(body: dict[str, Any]) -> bool:
    return any("DeleteRequest" in r for rs in body.get("RequestItems", {}).values() for r in rs)


def fences(body: dict[str, Any]) -> bool:
    return any("Delete" in item for item in body.get("TransactItems", []))


ERASURE_WRITES = {
    "the fence": ("TransactWriteItems", fences),
    "the tombstones": ("BatchWriteItem", puts),
    "the purge": ("BatchWriteItem", deletes),
}


@pytest.mark.parametrize("write", ERASURE_WRITES)
def test_an_erasure_by_email_whose_write_lost_its_answer_erases_and_purges(
    write: str, erasure_stack: Any
) -> None:
    # The fence's transaction carries its token as the trail's do; the tombstones are puts
    # and the purge deletes: each the same again.
    request_id = "r-" + write.replace(" ", "-")
    dynamodb = aws.client("dynamodb", config=aws.FAIL_FAST)
    store = DynamoSubmissionStore(
        dynamodb, erasure_stack.submission_table, claims_table=erasure_stack.idempotency_table
    )
    email = stack.PERSONAL["email"].lower()
    keys = submission_keys(PEPPER, email, "Grizelda", "Thistlewaite", [PHONE])
    for n in range(30):
        store.put(f"sub-{n}", '{"stored": "a submission of theirs"}', keys)
    cliniko = grizelda(email, PHONE)
    operation, matching = ERASURE_WRITES[write]
    with answers_lost(dynamodb, operation, matching=matching) as lost:
        outcome = make_eraser(erasure_stack, cliniko, submissions=store).submit(
            ask(request_id=request_id, email=email), CALLER
        )
    assert lost.lost == 1 and len(lost.sent) >= 2
    assert outcome.result == "erased", outcome.message
    assert outcome.purged[0].count == 30
    assert store.get("sub-0") is None and store.purge(keys.email_hmac) == []
    assert store.erased_at(keys.tombstone_keys) is not None
    records, places = DynamoAuditLog(erasure_stack.table_name).records_and_places(request_id)
    assert verify_chain(request_id, records, places).intact
