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
        request = {table: {"Keys": list(keys[start : start + BATCH_GET]), "ConsistentRead": True}}
        for answer in _until_processed(client.batch_get_item, request, "UnprocessedKeys", sleep):
            found += answer.get("Responses", {}).get(table, [])
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
        request = {table: list(writes[start : start + BATCH_WRITE])}
        _until_processed(client.batch_write_item, request, "UnprocessedItems", sleep)


def _until_processed(
    send: Callable[..., dict[str, Any]],
    request: Mapping[str, Any],
    leftover: str,
    sleep: Callable[[float], None],
) -> list[dict[str, Any]]:
    """The answers of `send` until none leaves part of the request under `leftover`, which is
    sent again; LeftUnprocessed after ATTEMPTS."""
    answers: list[dict[str, Any]] = []
    for attempt in range(ATTEMPTS):
        answer = send(RequestItems=request)
        answers.append(answer)
        request = answer.get(leftover) or {}
        if not request:
            return answers
        _pause(attempt, sleep)
    raise LeftUnprocessed(f"DynamoDB kept part of a batch unprocessed ({leftover})")


def _pause(attempt: int, sleep: Callable[[float], None]) -> None:
    """A growing pause before the next attempt (none after the last)."""
    if attempt + 1 < ATTEMPTS:
        sleep(min(2.0, 0.05 * 2.0**attempt))
