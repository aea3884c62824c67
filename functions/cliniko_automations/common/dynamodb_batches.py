"""DynamoDB's batch calls as their callers need them: every key read, every item written, or an
error. A batch call answers the part it could not do now (throttling) as unprocessed instead
of raising, and botocore does not retry that part: it is sent again here, after a growing
pause, a bounded number of times."""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from typing import Any

# BatchGetItem's most keys, and BatchWriteItem's most writes, in one request.
BATCH_GET = 100
BATCH_WRITE = 25
ATTEMPTS = 8


class LeftUnprocessed(RuntimeError):
    """DynamoDB kept part of a batch unprocessed through every attempt (throttled throughout)."""


def get_items(
    client: Any,
    table: str,
    keys: Sequence[Mapping[str, Any]],
    *,
    sleep: Callable[[float], None],
) -> list[dict[str, Any]]:
    """Every item of `keys` that exists (consistent reads, any number of keys)."""
    found: list[dict[str, Any]] = []
    for start in range(0, len(keys), BATCH_GET):
        request: dict[str, Any] = {
            table: {"Keys": list(keys[start : start + BATCH_GET]), "ConsistentRead": True}
        }
        for attempt in range(ATTEMPTS):
            answer = client.batch_get_item(RequestItems=request)
            found += answer.get("Responses", {}).get(table, [])
            request = answer.get("UnprocessedKeys") or {}
            if not request:
                break
            _pause(attempt, sleep)
        else:
            raise LeftUnprocessed("DynamoDB kept keys unprocessed")
    return found


def write_items(
    client: Any,
    table: str,
    writes: Sequence[Mapping[str, Any]],
    *,
    sleep: Callable[[float], None],
) -> None:
    """Every write request of `writes` (PutRequest / DeleteRequest), 25 a call."""
    for start in range(0, len(writes), BATCH_WRITE):
        request: dict[str, Any] = {table: list(writes[start : start + BATCH_WRITE])}
        for attempt in range(ATTEMPTS):
            answer = client.batch_write_item(RequestItems=request)
            request = answer.get("UnprocessedItems") or {}
            if not request:
                break
            _pause(attempt, sleep)
        else:
            raise LeftUnprocessed("DynamoDB kept writes unprocessed")


def _pause(attempt: int, sleep: Callable[[float], None]) -> None:
    """A growing pause before the next attempt (none after the last)."""
    if attempt + 1 < ATTEMPTS:
        sleep(min(2.0, 0.05 * 2.0**attempt))
