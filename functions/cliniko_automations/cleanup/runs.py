"""Cleanup runs in DynamoDB (`CleanupRunsTable`, keys `pk` + `sk`): the one-run-at-a-time
lock, each run's checkpointed state (its report) and the contact ids it matched or archived.

    pk                   sk                              what
    lock#<rule set>      lock                            run_id, execution, lease_until
    rule-set#<rule set>  latest                          run_id of the newest run
    run#<run id>         state                           RunState as JSON, status, times
    run#<run id>         ids#<rule>#<batch>#<kind>       ids (a string set; kind archived|matched)

The lock is a lease: a run renews it on every step and releases it when it ends, so a run
that died without releasing it (an execution stopped by hand) blocks the rule set for at most
LEASE_SECONDS. Ids and counts only, never personal data. Items expire after RETENTION_DAYS.
"""

from __future__ import annotations

import contextlib
import json
import time
from collections.abc import Sequence
from typing import Any

from cliniko_automations.cleanup.core import RunState

# Longer than anything between two steps of a run: a step (at most 15 minutes), a wait after a
# 429 (about a minute) and Step Functions' retries of a failed step.
LEASE_SECONDS = 3600
RETENTION_DAYS = 90


class DynamoRuns:
    def __init__(self, client: Any, table: str, *, clock: Any = time.time) -> None:
        self._client = client
        self._table = table
        self._clock = clock

    def _expiration(self) -> dict[str, str]:
        return {"N": str(int(self._clock()) + RETENTION_DAYS * 86400)}

    # -- the lock ------------------------------------------------------------------------

    def acquire(self, rule_set: str, run_id: str, execution: str) -> bool:
        """Take the rule set's lock for `run_id` (or keep it: the same run continuing in a
        new execution); False while another run holds a live lease."""
        now = int(self._clock())
        try:
            self._client.put_item(
                TableName=self._table,
                Item={
                    "pk": {"S": f"lock#{rule_set}"},
                    "sk": {"S": "lock"},
                    "run_id": {"S": run_id},
                    "execution": {"S": execution},
                    "lease_until": {"N": str(now + LEASE_SECONDS)},
                },
                ConditionExpression="attribute_not_exists(pk) OR run_id = :run "
                "OR lease_until < :now",
                ExpressionAttributeValues={":run": {"S": run_id}, ":now": {"N": str(now)}},
            )
        except self._client.exceptions.ConditionalCheckFailedException:
            return False
        return True

    def renew(self, rule_set: str, run_id: str, execution: str | None = None) -> bool:
        """Extend the lease; False when the lock is no longer this run's, or (`execution`
        given) no longer held by that execution: two executions of one run (a start retried
        after its answer was lost, a hand-made begin) would archive everything twice."""
        condition = "run_id = :run"
        values = {
            ":run": {"S": run_id},
            ":until": {"N": str(int(self._clock()) + LEASE_SECONDS)},
        }
        if execution is not None:
            condition += " AND execution = :execution"
            values[":execution"] = {"S": execution}
        try:
            self._client.update_item(
                TableName=self._table,
                Key={"pk": {"S": f"lock#{rule_set}"}, "sk": {"S": "lock"}},
                UpdateExpression="SET lease_until = :until",
                ConditionExpression=condition,
                ExpressionAttributeValues=values,
            )
        except self._client.exceptions.ConditionalCheckFailedException:
            return False
        return True

    def release(self, rule_set: str, run_id: str, execution: str | None = None) -> None:
        """Give up the lock if `run_id` holds it (and, `execution` given, that execution)."""
        condition = "run_id = :run"
        values = {":run": {"S": run_id}}
        if execution is not None:
            condition += " AND execution = :execution"
            values[":execution"] = {"S": execution}
        # Not ours (any more): nothing to release.
        with contextlib.suppress(self._client.exceptions.ConditionalCheckFailedException):
            self._client.delete_item(
                TableName=self._table,
                Key={"pk": {"S": f"lock#{rule_set}"}, "sk": {"S": "lock"}},
                ConditionExpression=condition,
                ExpressionAttributeValues=values,
            )

    def holder(self, rule_set: str) -> dict[str, Any] | None:
        item = self._get(f"lock#{rule_set}", "lock")
        if item is None:
            return None
        return {
            "run_id": item["run_id"]["S"],
            "execution": item["execution"]["S"],
            "lease_until": int(item["lease_until"]["N"]),
        }

    def held_elsewhere(self, rule_set: str, run_id: str, execution: str) -> bool:
        """True while another execution of `run_id` holds a live lease on the lock."""
        holder = self.holder(rule_set)
        return (
            holder is not None
            and holder["run_id"] == run_id
            and holder["execution"] != execution
            and holder["lease_until"] >= int(self._clock())
        )

    # -- runs ----------------------------------------------------------------------------

    def create(self, rule_set: str, state: RunState) -> bool:
        """Write a new run and name it the rule set's latest; False, leaving the run as it is,
        when a run with its id exists already.

        Its id is its execution's (actions.run_id_of), and the caller holds the rule set's
        lock for it: a run already there is this execution's own, written by an earlier
        attempt, and no run of the rule set has begun since. It is named the latest all the
        same: that attempt may have stopped before naming it, or botocore's retry of a put
        whose answer was lost met the run the put had written (`status` then showed the run
        before, or no run)."""
        try:
            self._put_state(state, rule_set)
            new = True
        except self._client.exceptions.ConditionalCheckFailedException:
            new = False
        self._client.put_item(
            TableName=self._table,
            Item={
                "pk": {"S": f"rule-set#{rule_set}"},
                "sk": {"S": "latest"},
                "run_id": {"S": state.run_id},
            },
        )
        return new

    def save(self, state: RunState) -> None:
        self._client.update_item(
            TableName=self._table,
            Key={"pk": {"S": f"run#{state.run_id}"}, "sk": {"S": "state"}},
            UpdateExpression="SET #state = :state, #status = :status, updated_at = :now, "
            "expiration = :expiration",
            ExpressionAttributeNames={"#state": "state", "#status": "status"},
            ExpressionAttributeValues={
                ":state": {"S": json.dumps(state.as_dict())},
                ":status": {"S": state.status},
                ":now": {"N": str(int(self._clock()))},
                ":expiration": self._expiration(),
            },
        )

    def _put_state(self, state: RunState, rule_set: str) -> None:
        self._client.put_item(
            TableName=self._table,
            Item={
                "pk": {"S": f"run#{state.run_id}"},
                "sk": {"S": "state"},
                "rule_set": {"S": rule_set},
                "state": {"S": json.dumps(state.as_dict())},
                "status": {"S": state.status},
                "updated_at": {"N": str(int(self._clock()))},
                "expiration": self._expiration(),
            },
            ConditionExpression="attribute_not_exists(pk)",
        )

    def load(self, run_id: str) -> RunState | None:
        item = self._get(f"run#{run_id}", "state")
        if item is None:
            return None
        state = RunState.from_dict(json.loads(item["state"]["S"]))
        if item.get("status", {}).get("S") == "failed":  # `mark_failed` writes the status only
            state.status = "failed"
        return state

    def latest(self, rule_set: str) -> str | None:
        item = self._get(f"rule-set#{rule_set}", "latest")
        return None if item is None else item["run_id"]["S"]

    def mark_failed(self, run_id: str) -> bool:
        """Mark a running run failed; False when there is no such run or it is over already
        (finished, or failed): a late or repeated release changes no run's outcome."""
        try:
            self._client.update_item(
                TableName=self._table,
                Key={"pk": {"S": f"run#{run_id}"}, "sk": {"S": "state"}},
                UpdateExpression="SET #status = :failed",
                ConditionExpression="#status = :running",
                ExpressionAttributeNames={"#status": "status"},
                ExpressionAttributeValues={
                    ":failed": {"S": "failed"},
                    ":running": {"S": "running"},
                },
            )
        except self._client.exceptions.ConditionalCheckFailedException:
            return False
        return True

    # -- contact ids ---------------------------------------------------------------------

    def record_ids(
        self, run_id: str, rule: str, batch: int, kind: str, contact_ids: Sequence[str]
    ) -> None:
        # A set, added to: recording the same ids again (a step redone) changes nothing.
        self._client.update_item(
            TableName=self._table,
            Key={"pk": {"S": f"run#{run_id}"}, "sk": {"S": f"ids#{rule}#{batch:08d}#{kind}"}},
            UpdateExpression="ADD ids :ids SET expiration = :expiration",
            ExpressionAttributeValues={
                ":ids": {"SS": list(contact_ids)},
                ":expiration": self._expiration(),
            },
        )

    def contact_ids(self, run_id: str, kind: str) -> dict[str, list[str]]:
        """The ids a run matched or archived, by rule."""
        found: dict[str, list[str]] = {}
        paginator = self._client.get_paginator("query")
        pages = paginator.paginate(
            TableName=self._table,
            KeyConditionExpression="pk = :pk AND begins_with(sk, :ids)",
            ExpressionAttributeValues={":pk": {"S": f"run#{run_id}"}, ":ids": {"S": "ids#"}},
        )
        for page in pages:
            for item in page.get("Items", []):
                _, rule, _, item_kind = item["sk"]["S"].split("#")
                if item_kind == kind:
                    found.setdefault(rule, []).extend(sorted(item["ids"]["SS"]))
        return found

    def _get(self, pk: str, sk: str) -> dict[str, Any] | None:
        item: dict[str, Any] | None = self._client.get_item(
            TableName=self._table, Key={"pk": {"S": pk}, "sk": {"S": sk}}, ConsistentRead=True
        ).get("Item")
        return item
