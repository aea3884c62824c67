"""The table kinds the operators' tools check against (common/stack_resources.py) are
template.yaml's tables, key for key and index for index, and no two of them alike."""

from __future__ import annotations

import pytest
from cliniko_automations.common import stack_resources
from cliniko_automations.common.stack_resources import TableKind
from local_run.template import SamApp

KINDS = {
    "IdempotencyTable": stack_resources.IDEMPOTENCY_TABLE,
    "SubmissionStoreTable": stack_resources.SUBMISSION_STORE,
    "LedgerTable": stack_resources.LEDGER_TABLE,
    "CleanupRunsTable": stack_resources.CLEANUP_RUNS_TABLE,
    "ErasureAuditTable": stack_resources.AUDIT_TABLE,
}
TEMPLATE = SamApp.load()


def shape(properties: dict) -> tuple:
    key = tuple((k["AttributeName"], k["KeyType"]) for k in properties["KeySchema"])
    indexes = frozenset(i["IndexName"] for i in properties.get("GlobalSecondaryIndexes", []))
    return key, indexes


@pytest.mark.parametrize(("logical_id", "kind"), KINDS.items())
def test_each_kind_is_its_table_in_the_template(logical_id: str, kind: TableKind) -> None:
    properties = TEMPLATE.resources[logical_id]["Properties"]
    assert shape(properties) == (kind.key, kind.indexes)
    outputs = TEMPLATE.template["Outputs"]
    assert outputs[kind.output]["Value"] == {"Ref": logical_id}


def test_no_other_table_of_the_stack_passes_for_one_of_these() -> None:
    tables = {
        logical_id: shape(resource["Properties"])
        for logical_id, resource in TEMPLATE.resources.items()
        if resource["Type"] == "AWS::DynamoDB::Table"
    }
    for logical_id, kind in KINDS.items():
        alike = [other for other, found in tables.items() if found == (kind.key, kind.indexes)]
        assert alike == [logical_id]


def test_the_queue_kinds_are_the_template_s_redrive() -> None:
    queues = {
        logical_id: resource["Properties"]
        for logical_id, resource in TEMPLATE.resources.items()
        if resource["Type"] == "AWS::SQS::Queue"
    }
    kinds = {
        "SubmissionQueue": stack_resources.SUBMISSION_QUEUE,
        "SubmissionDeadLetterQueue": stack_resources.DEAD_LETTER_QUEUE,
        "ParkedQueue": stack_resources.PARKED_QUEUE,
    }
    assert set(queues) == set(kinds)
    targets = {
        str(properties["RedrivePolicy"]["deadLetterTargetArn"])
        for properties in queues.values()
        if "RedrivePolicy" in properties
    }
    for logical_id, kind in kinds.items():
        assert ("RedrivePolicy" in queues[logical_id]) == kind.redrives
        assert any(logical_id in target for target in targets) == kind.redrive_target
        assert TEMPLATE.template["Outputs"][kind.output]["Value"] == {"Ref": logical_id}
