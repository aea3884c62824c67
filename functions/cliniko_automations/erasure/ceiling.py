"""The stack's ceiling on contacts erased per rolling hour (stack parameter ErasureHourlyLimit).

An erasure cannot be undone, and nothing else stops many of them: an operator's script looping
over the wrong CSV, a leaked credential allowed to invoke the API, or one request whose email
many contacts share (`erase_all_matches`) scrubbed 35 contacts in 8 s, bounded only by
Cliniko's 200 requests a minute (about 3,000 contacts an hour, the intake starved meanwhile),
with no alarm. A clinic's legitimate erasures are a few a month, so the ceiling counts the
contacts each attempt is about to scrub (after the lookup, before anything changes) over the
last hour, for the whole stack, and refuses an attempt that would pass it: the request stays
open in the trail (its due date counts from its receipt, so an abandoned one still turns
overdue) and the same request id goes through once the hour has room, or the operator raises
the parameter. A dry run, or a lookup that found nobody, changes nothing and is not counted.

The count is one item of the idempotency table, under the erasure's own key prefix (the
function's IAM policy already limits it to those keys): the admitted attempts of the last hour,
each with its time, request id and contact count, written with a version condition so two
erasures at once cannot both take the last room.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from botocore.exceptions import ClientError

from cliniko_automations.erasure.errors import OverHourlyLimit, RequestInProgress
from cliniko_automations.erasure.idempotency import KEY_PREFIX

WINDOW_SECONDS = 3600
# The item's key: no Powertools record has it (theirs end in an md5 hex digest).
CEILING_KEY = f"{KEY_PREFIX}#hourly-ceiling"
# How many times an admission reads the item again when another erasure wrote it meanwhile.
REREADS = 5


@dataclass(frozen=True)
class Admitted:
    at: int  # epoch seconds
    request_id: str
    contacts: int


@dataclass(frozen=True)
class HourRead:
    """The item as `check_room` read it: `admit`'s first attempt writes over this read (its
    version condition refuses the write if another erasure wrote since, and it reads again),
    so an erasure reads the item once, not twice, on its way."""

    version: int
    admitted: tuple[Admitted, ...]


class DynamoHourlyCeiling:
    """The `ErasureCeiling` port (ports.py) on the idempotency table."""

    def __init__(self, table_name: str, limit: int, *, dynamodb: Any) -> None:
        """`limit`: contacts per rolling hour; 0 turns the ceiling off."""
        self._table = table_name
        self.limit = limit
        self._dynamodb = dynamodb

    def admit(
        self, request_id: str, contacts: int, now: datetime, read: HourRead | None = None
    ) -> None:
        """Count `contacts` about to be erased by `request_id`, or raise OverHourlyLimit
        (nothing counted). An attempt of a request already admitted within the hour (a retry
        after a failure) counts only the contacts beyond those it was admitted for. `read`:
        `check_room`'s, taken as the item's state for the first try."""
        if self.limit <= 0 or contacts <= 0:
            return
        at = int(now.timestamp())
        for _ in range(REREADS):
            if read is None:
                version, admitted = self._read(at)
            else:
                version, admitted = read.version, _within_hour(read.admitted, at)
                read = None
            before = sum(a.contacts for a in admitted if a.request_id == request_id)
            wanted = max(0, contacts - before)
            if wanted == 0:
                return
            used = sum(a.contacts for a in admitted)
            if used + wanted > self.limit:
                raise OverHourlyLimit(
                    request_id, self.limit, used, wanted, _retry_after(admitted, wanted, self, at)
                )
            if self._write(version, [*admitted, Admitted(at, request_id, wanted)], at):
                return
        raise RequestInProgress(request_id)

    def check_room(self, request_id: str, now: datetime) -> HourRead | None:
        """Raise OverHourlyLimit when the hour has no room left for one more contact (and
        `request_id` was not admitted within it): a loop past the ceiling stops before its
        tombstones and Cliniko's lookup, so it spends none of the clinic's budget either.
        Returns what it read, for `admit` (None: the ceiling is off)."""
        if self.limit <= 0:
            return None
        at = int(now.timestamp())
        version, admitted = self._read(at)
        read = HourRead(version, tuple(admitted))
        if any(a.request_id == request_id for a in admitted):
            return read
        used = sum(a.contacts for a in admitted)
        if used >= self.limit:
            raise OverHourlyLimit(
                request_id, self.limit, used, 1, _retry_after(admitted, 1, self, at)
            )
        return read

    def _read(self, at: int) -> tuple[int, list[Admitted]]:
        item = self._dynamodb.get_item(
            TableName=self._table, Key={"id": {"S": CEILING_KEY}}, ConsistentRead=True
        ).get("Item")
        if item is None:
            return 0, []
        admitted = [_admitted(entry["M"]) for entry in item.get("admitted", {}).get("L", [])]
        return int(item["version"]["N"]), _within_hour(admitted, at)

    def _write(self, version: int, admitted: list[Admitted], at: int) -> bool:
        condition: dict[str, Any] = (
            {"ConditionExpression": "attribute_not_exists(id)"}
            if version == 0
            else {
                "ConditionExpression": "version = :read",
                "ExpressionAttributeValues": {":read": {"N": str(version)}},
            }
        )
        try:
            self._dynamodb.put_item(
                TableName=self._table,
                Item={
                    "id": {"S": CEILING_KEY},
                    "version": {"N": str(version + 1)},
                    "admitted": {
                        "L": [
                            {
                                "M": {
                                    "at": {"N": str(a.at)},
                                    "request_id": {"S": a.request_id},
                                    "contacts": {"N": str(a.contacts)},
                                }
                            }
                            for a in admitted
                        ]
                    },
                    # Gone by itself once the hour it counts has passed (and an hour's margin).
                    "expiration": {"N": str(at + 2 * WINDOW_SECONDS)},
                },
                **condition,
            )
        except ClientError as error:
            if error.response.get("Error", {}).get("Code") == "ConditionalCheckFailedException":
                return False
            raise
        return True


def _within_hour(admitted: Iterable[Admitted], at: int) -> list[Admitted]:
    return [a for a in admitted if a.at > at - WINDOW_SECONDS]


def _admitted(entry: Mapping[str, Any]) -> Admitted:
    return Admitted(
        at=int(entry["at"]["N"]),
        request_id=entry["request_id"]["S"],
        contacts=int(entry["contacts"]["N"]),
    )


def _retry_after(
    admitted: list[Admitted], wanted: int, ceiling: DynamoHourlyCeiling, at: int
) -> int | None:
    """Seconds until the hour has room for `wanted` contacts (None: never, the ceiling is
    lower than the request alone)."""
    if wanted > ceiling.limit:
        return None
    used = sum(a.contacts for a in admitted)
    for entry in sorted(admitted, key=lambda a: a.at):
        used -= entry.contacts
        if used + wanted <= ceiling.limit:
            return max(1, math.ceil(entry.at + WINDOW_SECONDS - at))
    return 1
