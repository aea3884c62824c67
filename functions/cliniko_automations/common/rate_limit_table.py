"""The shared Cliniko rate budget in DynamoDB: the `BudgetStore` of cliniko/shared_pacing.py.

One item per Cliniko key, keyed by the key's fingerprint (a hash; the key is never stored):
`tat`, `bulk_tat`, `floor_tat` (bulk callers on their floor) and a capped caller's
`cap_<name>` (how far each schedule is booked, UNIX seconds; the adapter books any schedule
name it is given), `blocked_until` (a 429's reset) and `expires_at` (TTL: a key unused for a
day leaves no item behind).

A booking is one conditional UpdateItem. DynamoDB cannot compute max(tat, now) in an update,
so the adapter guesses the branch from the last booking of the key: "idle" (the schedule is
in the past: set it to now + cost) or "busy" (add the cost, if the result stays under the
ceiling).
When the guess was wrong the refused answer carries the item as it is
(ReturnValuesOnConditionCheckFailure), and the booking is tried once more with the right
branch: no read is ever needed.
"""

from __future__ import annotations

import threading
from collections.abc import Mapping, Sequence
from typing import Any

from botocore.exceptions import BotoCoreError, ClientError

from cliniko_automations.cliniko.shared_pacing import (
    BLOCKED_UNTIL,
    Booking,
    BudgetStoreUnavailable,
    StoreAnswer,
    stale_after,
)

KEY_ATTRIBUTE = "key_id"
EXPIRES_AFTER = 24 * 3600


def _number(value: float) -> dict[str, str]:
    return {"N": f"{value:.6f}"}


def _values(item: Mapping[str, Any] | None) -> dict[str, float]:
    if not item:
        return {}
    return {
        name: float(value["N"])
        for name, value in item.items()
        if name != KEY_ATTRIBUTE and isinstance(value, dict) and "N" in value
    }


class DynamoBudgetStore:
    """`BudgetStore` on a DynamoDB table whose partition key is `key_id` (a string)."""

    def __init__(self, client: Any, table: str) -> None:
        self._client = client
        self._table = table
        # Per (key, schedule): its value after the last booking, and whether that booking
        # found it ahead of now; from them the likely branch of the next booking.
        self._last: dict[tuple[str, str], tuple[float, bool]] = {}
        self._lock = threading.Lock()
        self.calls = 0  # UpdateItem calls made, for benchmarks

    def book(self, budget_id: str, now: float, bookings: Sequence[Booking]) -> StoreAnswer:
        with self._lock:
            ahead = {b.name: self._likely_ahead(budget_id, b.name, now) for b in bookings}
        for _ in range(2):
            granted, values = self._try(budget_id, now, bookings, ahead)
            actual = {
                b.name: now <= values.get(b.name, 0.0) <= stale_after(now, b) for b in bookings
            }
            with self._lock:
                for booking in bookings:
                    value = values.get(booking.name, 0.0)
                    after = max(value, now) + booking.cost if granted else value
                    mine, _ = self._last.get((budget_id, booking.name), (0.0, False))
                    # Ahead of now, and further than this process itself had booked it.
                    others = actual[booking.name] and value > mine + 1e-3
                    self._last[(budget_id, booking.name)] = (after, others)
            blocked = now < values.get(BLOCKED_UNTIL, 0.0) <= stale_after(now)
            if granted or actual == ahead or blocked:
                return StoreAnswer(granted, values)
            ahead = actual  # the wrong branch was guessed: once more with the right one
        return StoreAnswer(False, values)

    def _likely_ahead(self, budget_id: str, name: str, now: float) -> bool:
        # Booked ahead when last seen and not yet run out, or others had booked it ahead at
        # the last booking (they keep the key busy: a cleanup running beside intake).
        after, others = self._last.get((budget_id, name), (0.0, False))
        return after >= now or others

    def block(self, budget_id: str, until: float) -> None:
        try:
            self.calls += 1
            self._client.update_item(
                TableName=self._table,
                Key={KEY_ATTRIBUTE: {"S": budget_id}},
                UpdateExpression="SET #b = :until, #e = :expires",
                # A later block holds, unless a clock gone wrong wrote it (readers skip it).
                ConditionExpression="attribute_not_exists(#b) OR #b < :until OR #b > :stale",
                ExpressionAttributeNames={"#b": BLOCKED_UNTIL, "#e": "expires_at"},
                ExpressionAttributeValues={
                    ":until": _number(until),
                    ":stale": _number(stale_after(until)),
                    ":expires": {"N": str(int(until) + EXPIRES_AFTER)},
                },
            )
        except ClientError as exc:
            if _code(exc) != "ConditionalCheckFailedException":  # a later block already holds
                raise BudgetStoreUnavailable(f"rate limit table: {_code(exc)}") from exc
        except BotoCoreError as exc:
            raise BudgetStoreUnavailable(f"rate limit table: {type(exc).__name__}") from exc

    def _try(
        self, budget_id: str, now: float, bookings: Sequence[Booking], ahead: Mapping[str, bool]
    ) -> tuple[bool, dict[str, float]]:
        names = {"#b": BLOCKED_UNTIL, "#e": "expires_at"}
        values = {
            ":now": _number(now),
            ":stale": _number(stale_after(now)),
            ":expires": {"N": str(int(now) + EXPIRES_AFTER)},
        }
        conditions = ["(attribute_not_exists(#b) OR #b <= :now OR #b > :stale)"]
        updates = ["#e = :expires"]
        for index, booking in enumerate(bookings):
            name = f"#s{index}"
            names[name] = booking.name
            if not ahead[booking.name]:  # idle: the schedule restarts at now
                values[f":v{index}"] = _number(now + booking.cost)
                values[f":x{index}"] = _number(stale_after(now, booking))
                conditions.append(
                    f"(attribute_not_exists({name}) OR {name} < :now OR {name} > :x{index})"
                )
                updates.append(f"{name} = :v{index}")
            else:  # busy: the schedule moves on from where it is, up to its ceiling
                values[f":c{index}"] = _number(booking.cost)
                values[f":m{index}"] = _number(booking.ceiling - booking.cost)
                conditions.append(f"({name} >= :now AND {name} <= :m{index})")
                updates.append(f"{name} = {name} + :c{index}")
        try:
            self.calls += 1
            answer = self._client.update_item(
                TableName=self._table,
                Key={KEY_ATTRIBUTE: {"S": budget_id}},
                UpdateExpression="SET " + ", ".join(updates),
                ConditionExpression=" AND ".join(conditions),
                ExpressionAttributeNames=names,
                ExpressionAttributeValues=values,
                ReturnValues="ALL_OLD",
                ReturnValuesOnConditionCheckFailure="ALL_OLD",
            )
        except ClientError as exc:
            if _code(exc) == "ConditionalCheckFailedException":
                return False, _values(exc.response.get("Item"))
            raise BudgetStoreUnavailable(f"rate limit table: {_code(exc)}") from exc
        except BotoCoreError as exc:
            raise BudgetStoreUnavailable(f"rate limit table: {type(exc).__name__}") from exc
        return True, _values(answer.get("Attributes"))


def _code(exc: ClientError) -> str:
    return str(exc.response.get("Error", {}).get("Code", "error"))
