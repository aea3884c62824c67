"""moto's DynamoDB made to keep two promises of DynamoDB's that our writes rely on.

- Each request is carried out atomically. moto checks a write's condition and then writes
  without a lock, and its server answers each request on a thread of its own: two threads'
  conditional puts on one item could both pass `attribute_not_exists` (seen: two holders of
  one identity claim on a loaded machine). Here its requests run one at a time.
- A TransactWriteItems sent again with the ClientRequestToken of one it applied (within 10
  minutes) is answered with success and not applied again; the same token with other items is
  refused (IdempotentParameterMismatchException). botocore fills the token once per call and
  sends it on every retry, so the retry of a transaction whose answer was lost (a read
  timeout on a loaded machine) meets its own write. moto ignored the token and applied the
  transaction again: the erasure trail's conditional append then failed against its own
  record, and the erasure API answered a request's first call 409, "being processed by
  another call" (seen in the erasure model on a loaded CI machine).

For the tests' moto server and the local run's.
"""

from __future__ import annotations

import functools
import json
import threading
import time
from typing import Any

from moto.core.responses import ActionResult
from moto.dynamodb.exceptions import ERROR_TYPE_PREFIX, DynamodbException
from moto.dynamodb.models import DynamoDBBackend
from moto.dynamodb.responses import DynamoHandler

REQUESTS = (
    "put_item",
    "update_item",
    "delete_item",
    "get_item",
    "batch_write_item",
    "batch_get_item",
    "transact_write_items",
    "transact_get_items",
    "query",
    "scan",
)
_lock = threading.RLock()


def dynamodb_requests_one_at_a_time() -> None:
    """Patch moto's DynamoDB backend (once per process) so its requests run one at a time."""
    for name in REQUESTS:
        request = getattr(DynamoDBBackend, name)
        if getattr(request, "one_at_a_time", False):
            continue

        @functools.wraps(request)
        def one_at_a_time(self: Any, *args: Any, _request: Any = request, **kwargs: Any) -> Any:
            with _lock:
                return _request(self, *args, **kwargs)

        one_at_a_time.one_at_a_time = True  # type: ignore[attr-defined]
        setattr(DynamoDBBackend, name, one_at_a_time)


# How long DynamoDB remembers a transaction's token.
TOKEN_SECONDS = 600


class IdempotentParameterMismatch(DynamodbException):
    def __init__(self) -> None:
        super().__init__(
            ERROR_TYPE_PREFIX + "IdempotentParameterMismatchException",
            "The request uses the same client token as a previous, but non-identical request.",
        )


def _transact_write_items_once_per_token(
    handler: DynamoHandler, *, _transact: Any = DynamoHandler.transact_write_items
) -> ActionResult:
    token = handler.body.get("ClientRequestToken")
    if not token:
        return _transact(handler)
    items = json.dumps(handler.body["TransactItems"], sort_keys=True)
    backend = handler.dynamodb_backend
    with _lock:  # a retry may come while its first attempt is still being carried out
        # On the backend: moto's reset makes a new one, and forgets the tokens with it.
        applied: dict[str, tuple[float, str]] = backend.__dict__.setdefault("applied_tokens", {})
        now = time.monotonic()
        for old in [t for t, (at, _) in applied.items() if at <= now - TOKEN_SECONDS]:
            del applied[old]
        if token in applied:
            if applied[token][1] != items:
                raise IdempotentParameterMismatch()
            return ActionResult({"ConsumedCapacity": [], "ItemCollectionMetrics": {}})
        result = _transact(handler)
        applied[token] = (now, items)
        return result


def dynamodb_transaction_tokens_honoured() -> None:
    """Patch moto's DynamoDB (once per process) to answer a transaction's token as the
    module's docstring says."""
    if getattr(DynamoHandler.transact_write_items, "once_per_token", False):
        return
    _transact_write_items_once_per_token.once_per_token = True  # type: ignore[attr-defined]
    DynamoHandler.transact_write_items = _transact_write_items_once_per_token  # type: ignore[method-assign]
