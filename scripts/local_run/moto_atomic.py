"""moto's DynamoDB made to take one request at a time, as DynamoDB carries out each atomically.

moto checks a write's condition and then writes without a lock, and its server answers each
request on a thread of its own: two threads' conditional puts on one item could both pass
`attribute_not_exists` (seen: two holders of one identity claim on a loaded machine). For the
tests' moto server and the local run's.
"""

from __future__ import annotations

import functools
import threading
from typing import Any

from moto.dynamodb.models import DynamoDBBackend

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
