"""Powertools' idempotency records, taken so that botocore's retry of a lost answer counts as
the attempt that sent it.

Powertools takes a record with a conditional PutItem (no record, or an expired one, or one in
progress past its lease). When the put's answer is lost after DynamoDB applied it (a read
timeout, a connection closed once the request was sent, a 500), botocore sends the same
request again, and the retry meets the record its first attempt wrote. Refused, Powertools
reads it as another attempt in progress (IdempotencyAlreadyInProgressError), and the record
stays in progress until its lease ends (the invocation's end) with nobody in it: the intake
worker handed its message back as `in_progress` and met the record again on each receive
within that lease (3 or 4 of its 5 receives, 2 to 4 minutes at the 30 s backoff); the
erasure API answered the request 409 until its 29 s lease ended.

`RetriesRecognised` wraps the DynamoDB client Powertools is given: each record put carries a
token of its own (`attempt`), and its condition also admits the item that carries that token,
which only the same put, sent again by botocore, can have written.
"""

from __future__ import annotations

import secrets
from typing import Any

ATTEMPT_ATTRIBUTE = "attempt"


class RetriesRecognised:
    """The DynamoDB client for Powertools' persistence layer (`boto3_client`): its `put_item`
    as above, everything else the client's own."""

    def __init__(self, client: Any) -> None:
        self._client = client

    def put_item(self, **request: Any) -> Any:
        condition = request.get("ConditionExpression")
        if condition is None:  # no condition for a retry to fail
            return self._client.put_item(**request)
        token = {"S": secrets.token_hex(16)}
        return self._client.put_item(
            **{
                **request,
                "Item": {**request["Item"], ATTEMPT_ATTRIBUTE: token},
                "ConditionExpression": f"({condition}) OR #attempt = :attempt",
                "ExpressionAttributeNames": {
                    **request.get("ExpressionAttributeNames", {}),
                    "#attempt": ATTEMPT_ATTRIBUTE,
                },
                "ExpressionAttributeValues": {
                    **request.get("ExpressionAttributeValues", {}),
                    ":attempt": token,
                },
            }
        )

    def __getattr__(self, name: str) -> Any:
        return getattr(self._client, name)
