"""The cleanup's tables in moto, created from template.yaml's own definitions (keys, the
ledger's sparse index), so the tests run against the shape that deploys."""

from __future__ import annotations

import boto3
from local_run.template import SamApp

TEMPLATE = SamApp.load()


def create_table(logical_id: str, name: str) -> str:
    props = TEMPLATE.resources[logical_id]["Properties"]
    extra = {}
    if props.get("GlobalSecondaryIndexes"):
        extra["GlobalSecondaryIndexes"] = props["GlobalSecondaryIndexes"]
    boto3.client("dynamodb").create_table(
        TableName=name,
        AttributeDefinitions=props["AttributeDefinitions"],
        KeySchema=props["KeySchema"],
        BillingMode=props["BillingMode"],
        **extra,
    )
    return name


def create_cleanup_tables(prefix: str = "cleanup") -> tuple[str, str]:
    """(ledger table, runs table)"""
    return (
        create_table("LedgerTable", f"{prefix}-ledger"),
        create_table("CleanupRunsTable", f"{prefix}-runs"),
    )
