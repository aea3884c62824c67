"""The operators' tools check that each table and queue they were given is of the kind they
take, before they read or write it: an operator copies names from the stack's outputs into
the environment (README "Set up for your clinic", step 5), and one output copied for another
reads nothing, misleads ("0 dead letters", "body gone") or writes into the wrong table (the
erasure's idempotency records into the submission store, where nothing ever reads or expires
them as such; a cleanup run's lock into the change feed's table).

A table is known by its key schema and its global secondary indexes, as template.yaml declares
them (tests/unit/common/test_stack_resources.py holds the two together): deployed names are
CloudFormation's, made up, so a name says nothing. The idempotency table and the submission
store share their key (`id`); the store's indexes tell them apart. A queue is known by its
place in the redrive: the submission queue sends its failures to the dead-letter queue (a
RedrivePolicy), the dead-letter queue is that policy's target, the parked queue is neither.

The tools given several check too that all come from one stack (`check_one_stack`, by the
tag CloudFormation puts on each). Only the tools call this (a DescribeTable, a
GetQueueAttributes, a read of its tags each), never a Lambda handler, whose tables and queues
the template names.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

from botocore.exceptions import ClientError

from cliniko_automations.common.printable import printable


class WrongResource(RuntimeError):
    """A table or queue of another kind was named: one line naming the setting and the name."""


@dataclass(frozen=True)
class TableKind:
    what: str  # as the tool says it: "the idempotency table"
    output: str  # the stack output its name comes from
    key: tuple[tuple[str, str], ...]  # (attribute, HASH | RANGE)
    indexes: frozenset[str] = frozenset()


IDEMPOTENCY_TABLE = TableKind("the idempotency table", "IdempotencyTableName", (("id", "HASH"),))
SUBMISSION_STORE = TableKind(
    "the submission store",
    "SubmissionStoreTableName",
    (("id", "HASH"),),
    frozenset({"by-email-hmac", "by-name-hmac"}),
)
LEDGER_TABLE = TableKind(
    "the intake's ledger",
    "LedgerTableName",
    (("contact_id", "HASH"),),
    frozenset({"ActiveByAccount"}),
)
CLEANUP_RUNS_TABLE = TableKind(
    "the cleanup runs table", "CleanupRunsTableName", (("pk", "HASH"), ("sk", "RANGE"))
)
AUDIT_TABLE = TableKind(
    "an erasure audit table", "ErasureAuditTableName", (("request_id", "HASH"), ("sk", "RANGE"))
)


def check_table(dynamodb: Any, name: str, kind: TableKind, setting: str) -> str:
    """Raise WrongResource unless table `name` (given as `setting`) is of `kind`; its ARN (for
    `table_stack`). A table that is not there is DynamoDB's ResourceNotFoundException."""
    table = dynamodb.describe_table(TableName=name)["Table"]
    key = tuple((k["AttributeName"], k["KeyType"]) for k in table["KeySchema"])
    indexes = frozenset(i["IndexName"] for i in table.get("GlobalSecondaryIndexes", []))
    if key != kind.key or indexes != kind.indexes:
        keyed = ", ".join(attribute for attribute, _ in key)
        raise WrongResource(
            f"{setting}: table {printable(name)} is not {kind.what} (keyed {printable(keyed)}"
            + (f", indexes {printable(', '.join(sorted(indexes)))}" if indexes else "")
            + f"): take it from the stack's {kind.output} output"
        )
    arn: str = table["TableArn"]
    return arn


@dataclass(frozen=True)
class QueueKind:
    what: str
    output: str
    redrives: bool  # it has a RedrivePolicy: failures move on to a dead-letter queue
    redrive_target: bool  # another queue's RedrivePolicy names it


SUBMISSION_QUEUE = QueueKind("the submission queue", "SubmissionQueueUrl", True, False)
DEAD_LETTER_QUEUE = QueueKind(
    "the submission dead-letter queue", "SubmissionDeadLetterQueueUrl", False, True
)
PARKED_QUEUE = QueueKind("the parked queue", "ParkedQueueUrl", False, False)
# EventBridge's dead letters: no queue redrives to it (the rules' targets name it).
WEBHOOK_DEAD_LETTER_QUEUE = QueueKind(
    "the webhook dead-letter queue", "WebhookDeadLetterQueueUrl (webhook stack)", False, False
)


def check_queue(sqs: Any, url: str, kind: QueueKind, setting: str) -> dict[str, Any]:
    """Raise WrongResource unless queue `url` (given as `setting`) has `kind`'s place in the
    redrive; returns its RedrivePolicy ({} without one). A queue that is not there is SQS's
    QueueDoesNotExist, as before."""
    attributes = sqs.get_queue_attributes(QueueUrl=url, AttributeNames=["RedrivePolicy"]).get(
        "Attributes", {}
    )
    policy = json.loads(attributes["RedrivePolicy"]) if "RedrivePolicy" in attributes else {}
    sources = sqs.list_dead_letter_source_queues(QueueUrl=url, MaxResults=1).get("queueUrls", [])
    if bool(policy) != kind.redrives or bool(sources) != kind.redrive_target:
        place = (
            "it redrives to a dead-letter queue"
            if policy
            else "another queue redrives to it"
            if sources
            else "no queue redrives to it"
        )
        raise WrongResource(
            f"{setting}: queue {printable(url)} is not {kind.what} ({place}): take it from the "
            f"stack's {kind.output} output"
        )
    return policy


def check_redrive(
    sqs: Any, queue_policy: dict[str, Any], dead_letter_url: str, settings: str
) -> None:
    """The submission queue redrives to this dead-letter queue: not one of another stack."""
    arn = sqs.get_queue_attributes(QueueUrl=dead_letter_url, AttributeNames=["QueueArn"])[
        "Attributes"
    ]["QueueArn"]
    if queue_policy.get("deadLetterTargetArn") != arn:
        raise WrongResource(
            f"{settings}: the submission queue does not redrive to this dead-letter queue "
            "(another stack's?): take both from the same stack's outputs"
        )


# The tag CloudFormation puts on every resource of a stack that takes tags.
STACK_TAG = "aws:cloudformation:stack-id"


def check_one_stack(stacks: dict[str, str | None]) -> None:
    """Raise WrongResource when two of the resources given (by setting: the stack id its
    `STACK_TAG` names, None where untold) come from different stacks. Each may be of its kind
    and still another stack's (dev and prod in one account): its queues and tables agree on
    their kinds, and a parked submission replayed into the other stack's submission queue was
    dropped there, its body in this stack's store (the submission lost); the other stack's
    erasure trail let an erased person's webhook go out again. A resource without the tag (a
    local run, a stack made otherwise) cannot be told, and is not."""
    told = {setting: stack for setting, stack in stacks.items() if stack}
    if len(set(told.values())) > 1:
        named = ", ".join(
            f"{setting} of {printable(_stack_name(stack))}" for setting, stack in told.items()
        )
        raise WrongResource(
            f"{named}: not one stack's: take them all from the same stack's outputs"
        )


def _stack_name(stack_id: str) -> str:
    # arn:aws:cloudformation:REGION:ACCOUNT:stack/NAME/UUID
    parts = stack_id.split("/")
    return parts[1] if len(parts) >= 3 else stack_id


def queue_stack(sqs: Any, url: str) -> str | None:
    """The stack queue `url` belongs to (None: untold, or its tags not readable)."""
    try:
        stack = sqs.list_queue_tags(QueueUrl=url).get("Tags", {}).get(STACK_TAG)
    except ClientError:
        return None
    return stack if isinstance(stack, str) else None


def table_stack(dynamodb: Any, arn: str) -> str | None:
    """The stack the table of `arn` (`check_table`'s) belongs to (None: untold, or its tags
    not readable)."""
    try:
        return _stack_of(dynamodb.list_tags_of_resource(ResourceArn=arn).get("Tags", []))
    except ClientError:
        return None


def bus_stack(events: Any, name: str) -> str | None:
    """The stack event bus `name` belongs to (None: untold, or its tags not readable)."""
    try:
        arn = events.describe_event_bus(Name=name)["Arn"]
        return _stack_of(events.list_tags_for_resource(ResourceARN=arn).get("Tags", []))
    except ClientError:
        return None


def _stack_of(tags: list[dict[str, str]]) -> str | None:
    """`STACK_TAG`'s value among tags listed as DynamoDB and EventBridge list them."""
    return next((tag["Value"] for tag in tags if tag.get("Key") == STACK_TAG), None)
