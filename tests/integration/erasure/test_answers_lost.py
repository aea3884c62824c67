"""The erasure's AWS writes whose answer is lost (tests/fixtures/lost_answers.py): botocore
retries, and the retry meets the write its first attempt made."""

from __future__ import annotations

from typing import Any

from cliniko_automations.common import aws
from cliniko_automations.erasure.accounts import ErasureAccounts
from cliniko_automations.erasure.audit import DynamoAuditLog
from cliniko_automations.erasure.chain_check import verify_chain
from cliniko_automations.erasure.idempotency import KEY_PREFIX, PowertoolsOnce
from cliniko_automations.erasure.models import ErasureRequest
from cliniko_automations.erasure.workflow import Eraser

from tests.fixtures.lost_answers import answers_lost
from tests.integration.erasure import stack
from tests.integration.erasure.stack import PEPPER, USER_AGENT

erasure_stack = stack.erasure_stack

CALLER = "arn:aws:iam::123456789012:user/privacy-officer"


def eraser_of(erasure_stack: stack.ErasureStack) -> Eraser:
    client = erasure_stack.cliniko.client(user_agent=USER_AGENT)
    return Eraser(
        ErasureAccounts([stack.ACCOUNT], lambda _account: client),
        DynamoAuditLog(erasure_stack.table_name),
        PEPPER,
        # As the erasure service makes it: on the shared client.
        once=PowertoolsOnce(erasure_stack.idempotency_table, dynamodb=aws.client("dynamodb")),
    )


def ask(**values: Any) -> ErasureRequest:
    return ErasureRequest.parse({"reason": "GDPR art. 17", **values})


def the_request_s_record(body: dict[str, Any]) -> bool:
    return body.get("Item", {}).get("id", {}).get("S", "").startswith(KEY_PREFIX)


def test_a_request_whose_idempotency_record_lost_its_answer_is_erased(erasure_stack) -> None:
    # The retry met the record its first attempt wrote: "in progress" (a 409) for the
    # request's own first call, and for every repeat until the record's lease ran out.
    contact_id = erasure_stack.seed()
    dynamodb = aws.client("dynamodb")
    with answers_lost(dynamodb, "PutItem", matching=the_request_s_record) as lost:
        outcome = eraser_of(erasure_stack).submit(
            ask(request_id="r-lost", contact_id=contact_id), CALLER
        )
    assert (lost.lost, len(lost.sent)) == (1, 2)
    assert (outcome.status, outcome.result) == ("completed", "erased")


def test_a_trail_write_whose_answer_was_lost_is_retried_with_its_token(erasure_stack) -> None:
    # DynamoDB answers a TransactWriteItems sent again with the same ClientRequestToken (within
    # 10 minutes) from the first instead of applying it again (the helper does so for moto):
    # botocore fills the token once per call and sends the same one on its retries. A token
    # of each attempt's own would have met the records the first wrote: AlreadyRecorded.
    contact_id = erasure_stack.seed()
    with answers_lost(aws.client("dynamodb"), "TransactWriteItems", times=1) as lost:
        outcome = eraser_of(erasure_stack).submit(
            ask(request_id="r-trail", contact_id=contact_id), CALLER
        )
    first, retry = lost.sent[:2]
    assert first["ClientRequestToken"] == retry["ClientRequestToken"]
    assert first["TransactItems"] == retry["TransactItems"]
    assert (outcome.status, outcome.result) == ("completed", "erased")
    records, places = DynamoAuditLog(erasure_stack.table_name).records_and_places("r-trail")
    assert verify_chain("r-trail", records, places).intact
