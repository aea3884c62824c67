"""The feed's DynamoDB table: each account's cursor and run lease, each contact's last
published state (updated_at, archived, field hashes; never values), expiring by TTL.

    pk "cursor#{account}"                cursor, caught_up_at (the last poll that reached the end),
                                         in_second, after_id, read_from (a busy second's
                                         reading by id, where a run left it: core.py)
    pk "lease#{account}"                 owner, until (one run per account at a time)
    pk "contact#{account}#{contact_id}"  updated_at, archived, hashes, event_id, expires_at,
                                         unsent (a change's events still to send: ids, type,
                                         time, field names and whom to; absent when none)
"""

from __future__ import annotations

import datetime as dt
import time
from collections.abc import Callable, Sequence
from typing import Any

from botocore.exceptions import ClientError

from cliniko_automations.common.dynamodb_batches import get_items, write_items
from cliniko_automations.common.timestamps import iso

from .changes import PublishedState, Unsent
from .core import CorruptState, SecondPosition
from .subscribers import EVENT_TYPES


def _parse(text: str) -> dt.datetime:
    return dt.datetime.fromisoformat(text.replace("Z", "+00:00"))


class DynamoFeedStore:
    def __init__(
        self,
        client: Any,
        table: str,
        *,
        state_days: int,
        clock: Callable[[], float] = time.time,
        sleep: Callable[[float], None] = time.sleep,
    ) -> None:
        self._db = client
        self._table = table
        self._state_seconds = state_days * 86400
        self._clock = clock
        self._sleep = sleep
        # caught_up_at and a busy second's position by account, as this store last read or
        # wrote them.
        self._caught_up: dict[str, dt.datetime | None] = {}
        self._positions: dict[str, SecondPosition | None] = {}

    # -- cursor and lease ------------------------------------------------------------------

    def cursor(self, account: str) -> dt.datetime | None:
        item = self._cursor_item(account)
        if not item:
            return None
        try:
            cursor = _parse(item["cursor"]["S"])
        except (KeyError, TypeError, ValueError):
            raise CorruptState("corrupt_cursor") from None
        if cursor.tzinfo is None:
            raise CorruptState("corrupt_cursor")
        return cursor

    def caught_up_at(self, account: str) -> dt.datetime | None:
        """When a poll of `account` last reached the end. As this store read or wrote it
        while it held the account's lease (no other run moves it then), else read."""
        if account not in self._caught_up:
            self._cursor_item(account)
        return self._caught_up[account]

    def _cursor_item(self, account: str) -> dict[str, Any] | None:
        item: dict[str, Any] | None = self._db.get_item(
            TableName=self._table, Key={"pk": {"S": f"cursor#{account}"}}, ConsistentRead=True
        ).get("Item")
        caught_up = item.get("caught_up_at") if item else None
        try:
            self._caught_up[account] = _parse(caught_up["S"]) if caught_up else None
        except (KeyError, TypeError, ValueError):  # unreadable: as if never caught up
            self._caught_up[account] = None
        self._positions[account] = _position(item or {})
        return item

    def position(self, account: str) -> SecondPosition | None:
        """Where a run left off reading a busy second by id (None: it did not), as the last
        `cursor` read found it."""
        return self._positions.get(account)

    def save_cursor(
        self,
        account: str,
        cursor: dt.datetime,
        *,
        caught_up: bool,
        position: SecondPosition | None = None,
    ) -> None:
        names = {"#c": "cursor"}
        values: dict[str, Any] = {":c": {"S": iso(cursor)}}
        update = "SET #c = :c"
        now = None
        if caught_up:
            now = iso(dt.datetime.fromtimestamp(self._clock(), dt.UTC))
            update += ", caught_up_at = :now"
            values[":now"] = {"S": now}
        if position is None:
            update += " REMOVE in_second, after_id, read_from"
        else:
            update += ", in_second = :second, after_id = :after, read_from = :read"
            values[":second"] = {"S": iso(position.second)}
            values[":after"] = {"S": str(position.after_id)}
            values[":read"] = {"S": iso(position.read_from)}
        self._db.update_item(
            TableName=self._table,
            Key={"pk": {"S": f"cursor#{account}"}},
            UpdateExpression=update,
            ExpressionAttributeNames=names,
            ExpressionAttributeValues=values,
        )
        if now is not None:
            self._caught_up[account] = _parse(now)
        self._positions[account] = position

    def lease(self, account: str, owner: str, seconds: float) -> bool:
        """Take the account's run lease until now + seconds, unless another run holds it."""
        now = self._clock()
        try:
            self._db.put_item(
                TableName=self._table,
                Item={
                    "pk": {"S": f"lease#{account}"},
                    "owner": {"S": owner},
                    "until": {"N": str(int(now + seconds))},
                },
                ConditionExpression="attribute_not_exists(pk) OR #u < :now OR #o = :owner",
                ExpressionAttributeNames={"#u": "until", "#o": "owner"},
                ExpressionAttributeValues={":now": {"N": str(int(now))}, ":owner": {"S": owner}},
            )
        except ClientError as error:
            if error.response["Error"]["Code"] == "ConditionalCheckFailedException":
                return False
            raise
        return True

    def release(self, account: str, owner: str) -> None:
        try:
            self._db.delete_item(
                TableName=self._table,
                Key={"pk": {"S": f"lease#{account}"}},
                ConditionExpression="#o = :owner",
                ExpressionAttributeNames={"#o": "owner"},
                ExpressionAttributeValues={":owner": {"S": owner}},
            )
        except ClientError as error:
            if error.response["Error"]["Code"] != "ConditionalCheckFailedException":
                raise

    # -- published states ------------------------------------------------------------------

    def published(self, account: str, contact_ids: Sequence[str]) -> dict[str, PublishedState]:
        keys = [{"pk": {"S": f"contact#{account}#{cid}"}} for cid in dict.fromkeys(contact_ids)]
        states = [
            _state(item) for item in get_items(self._db, self._table, keys, sleep=self._sleep)
        ]
        return {state.contact_id: state for state in states}

    def record(self, account: str, states: Sequence[PublishedState]) -> None:
        expires = str(int(self._clock()) + self._state_seconds)
        writes = [{"PutRequest": {"Item": _item(account, state, expires)}} for state in states]
        write_items(self._db, self._table, writes, sleep=self._sleep)


def _item(account: str, state: PublishedState, expires: str) -> dict[str, Any]:
    item: dict[str, Any] = {
        "pk": {"S": f"contact#{account}#{state.contact_id}"},
        "contact_id": {"S": state.contact_id},
        "updated_at": {"S": state.updated_at},
        "archived": {"BOOL": state.archived},
        "hashes": {"M": {k: {"S": v} for k, v in state.hashes.items()}},
        "event_id": {"S": state.event_id},
        "expires_at": {"N": expires},
    }
    if state.unsent:
        item["unsent"] = {"L": [{"M": _unsent_item(unsent)} for unsent in state.unsent]}
    return item


def _unsent_item(unsent: Unsent) -> dict[str, Any]:
    return {
        "event_id": {"S": unsent.event_id},
        "type": {"S": unsent.type},
        "updated_at": {"S": unsent.updated_at},
        "changed_fields": {"L": [{"S": name} for name in unsent.changed_fields]},
        "first_seen": {"BOOL": unsent.first_seen},
        "erased": {"BOOL": unsent.erased},
        "bus": {"BOOL": unsent.bus},
        "subscribers": {"L": [{"S": name} for name in unsent.subscribers]},
    }


def _state(item: dict[str, Any]) -> PublishedState:
    try:
        return PublishedState(
            contact_id=item["contact_id"]["S"],
            updated_at=item["updated_at"]["S"],
            archived=item["archived"]["BOOL"],
            hashes={k: v["S"] for k, v in item["hashes"]["M"].items()},
            event_id=item["event_id"]["S"],
            unsent=tuple(_unsent(entry["M"]) for entry in item.get("unsent", {"L": []})["L"]),
        )
    except (AttributeError, KeyError, TypeError):
        raise CorruptState("corrupt_state") from None


def _unsent(entry: dict[str, Any]) -> Unsent:
    if entry["type"]["S"] not in EVENT_TYPES:
        # Edited by hand: it would go on the bus under a type no subscriber asks for.
        raise KeyError("type")
    return Unsent(
        event_id=entry["event_id"]["S"],
        type=entry["type"]["S"],
        updated_at=entry["updated_at"]["S"],
        changed_fields=tuple(name["S"] for name in entry["changed_fields"]["L"]),
        first_seen=entry["first_seen"]["BOOL"],
        bus=entry["bus"]["BOOL"],
        subscribers=tuple(name["S"] for name in entry["subscribers"]["L"]),
        # Owed by a version that did not mark erasures: sent unmarked, as it was first.
        erased=entry.get("erased", {"BOOL": False})["BOOL"],
    )


def _position(item: dict[str, Any]) -> SecondPosition | None:
    """A busy second's position in the cursor item; an unreadable one is as none (the second
    is read again from its first id: slower, never a change missed)."""
    try:
        second, read_from = _parse(item["in_second"]["S"]), _parse(item["read_from"]["S"])
        after_id = int(item["after_id"]["S"])
    except (KeyError, TypeError, ValueError):
        return None
    if second.tzinfo is None or read_from.tzinfo is None:
        return None
    return SecondPosition(second, after_id, read_from)
