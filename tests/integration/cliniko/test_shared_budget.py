"""The key's budget shared by every process, end to end: clients, the emulator, moto.

Two clients with their own store objects stand for two Lambda processes holding one key:
they share nothing but the DynamoDB table (moto). The emulator runs a scaled window (3 s
instead of 60) so a few windows pass in seconds; what is asserted is that no request met a
429, never how fast anything went.
"""

from __future__ import annotations

import json
import os
import threading
import time

import boto3
import pytest
from cliniko_automations.cliniko.shared_pacing import SharingPolicy, clear_shared_store_budgets
from cliniko_automations.common import cliniko_accounts
from cliniko_automations.common.cliniko_accounts import client_for_secret
from cliniko_automations.common.cliniko_settings import ClinikoVariables
from cliniko_automations.common.rate_limit_table import DynamoBudgetStore

TABLE = "rate-limit"
UA = "Tests (tests@example.com)"


@pytest.fixture
def table(aws: str, monkeypatch) -> str:
    # Budgets and stores live as long as the process; this test's table is new.
    clear_shared_store_budgets()
    monkeypatch.setattr(cliniko_accounts, "_stores", {})
    boto3.client("dynamodb").create_table(
        TableName=TABLE,
        AttributeDefinitions=[{"AttributeName": "key_id", "AttributeType": "S"}],
        KeySchema=[{"AttributeName": "key_id", "KeyType": "HASH"}],
        BillingMode="PAY_PER_REQUEST",
    )
    return TABLE


def test_two_processes_on_one_key_share_the_window_without_429s(cliniko, table) -> None:
    # 60 requests per 3 s window; a wide safety margin covers a slow, shared test machine.
    cliniko.control.set_rate_limit(per_minute=60, time_scale=20)
    policy = SharingPolicy(limit=60, period=3.0, safety=10)
    clients = [
        cliniko.client(
            budget_store=DynamoBudgetStore(boto3.client("dynamodb"), table), sharing=policy
        )
        for _ in range(2)
    ]
    end = time.monotonic() + 3 * policy.period
    errors: list[Exception] = []

    def send(client) -> None:
        try:
            while time.monotonic() < end:
                client.create_contact({"first_name": "Shared"})
        except Exception as exc:  # reported below, with the thread's failure
            errors.append(exc)

    threads = [threading.Thread(target=send, args=(client,)) for client in clients]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()

    assert errors == []
    statuses = [entry["status"] for entry in cliniko.control.requests()]
    assert 429 not in statuses
    assert all(client.request_count > 0 for client in clients)
    # Between them they sent more than one process's share of a window could hold.
    assert len(statuses) > policy.limit


def test_client_for_secret_books_on_the_table_the_function_names(
    cliniko, table, monkeypatch
) -> None:
    settings = ClinikoVariables(
        user_agent=UA, base_url=cliniko.base_url_template, rate_limit_table=table
    )
    boto3.client("secretsmanager").create_secret(Name="cliniko/a", SecretString=cliniko.api_key)
    monkeypatch.setattr(cliniko_accounts, "_clients", {})

    client = client_for_secret("cliniko/a", settings=settings)
    client.list_contacts()

    items = boto3.client("dynamodb").scan(TableName=table)["Items"]
    assert [item["key_id"]["S"] for item in items] == [client.key_id]
    assert cliniko.api_key not in str(items)  # the key's hash, never the key
    assert client_for_secret("cliniko/a", priority="bulk", settings=settings).priority == "bulk"


def test_accounts_of_one_cliniko_user_book_on_one_budget(
    cliniko, table, monkeypatch, tmp_path
) -> None:
    # Cliniko allows 200 requests a minute per user: two accounts whose keys are one user's
    # (named so in the accounts file) spend one budget; a third account's key its own.
    (tmp_path / "accounts.yaml").write_text(
        "accounts:\n"
        "  main-clinic: {api_key_secret: cliniko/main, cliniko_user: owner-1}\n"
        "  north-clinic: {api_key_secret: cliniko/north, cliniko_user: owner-1}\n"
        "  south-clinic: {api_key_secret: cliniko/south}\n"
    )
    monkeypatch.setenv("CLINIKO_ACCOUNTS_FILE", str(tmp_path / "accounts.yaml"))
    monkeypatch.setattr(cliniko_accounts, "_clients", {})
    settings = ClinikoVariables(
        user_agent=UA, base_url=cliniko.base_url_template, rate_limit_table=table
    )
    keys = {name: f"MS0x{name}key0000000000-au1" for name in ("north", "south")}
    keys["main"] = cliniko.api_key
    for name, key in keys.items():
        if name != "main":
            cliniko.control.add_key(key)
        boto3.client("secretsmanager").create_secret(Name=f"cliniko/{name}", SecretString=key)

    for name in keys:
        client_for_secret(f"cliniko/{name}", settings=settings).list_contacts()

    items = boto3.client("dynamodb").scan(TableName=table)["Items"]
    south = client_for_secret("cliniko/south", settings=settings).key_id
    assert len(items) == 2 and south in {item["key_id"]["S"] for item in items}
    assert "owner-1" not in str(items)  # a hash of the label, as of a key
    # A broken accounts file is reported by what reads it first, not here: the erasure reads
    # only its key, and books on the key's own budget then.
    (tmp_path / "accounts.yaml").write_text("accounts: {}\n")
    monkeypatch.setattr(cliniko_accounts, "_clients", {})
    assert client_for_secret("cliniko/main", settings=settings).list_contacts() == []


def test_client_for_secret_caps_a_named_caller_on_the_shared_table(
    cliniko, table, monkeypatch
) -> None:
    settings = ClinikoVariables(
        user_agent=UA, base_url=cliniko.base_url_template, rate_limit_table=table
    )
    boto3.client("secretsmanager").create_secret(Name="cliniko/c", SecretString=cliniko.api_key)
    monkeypatch.setattr(cliniko_accounts, "_clients", {})

    feed = client_for_secret(
        "cliniko/c", priority="bulk", requests_per_minute=20, caller="changefeed", settings=settings
    )
    feed.list_contacts()
    # Uncapped, the same secret and priority is another client (the cache slot has the cap).
    cleanup = client_for_secret("cliniko/c", priority="bulk", settings=settings)

    (item,) = boto3.client("dynamodb").scan(TableName=table)["Items"]
    assert "cap_changefeed" in item and "bulk_tat" in item
    assert feed.rate_budget.cap.rate == 20
    assert cleanup is not feed and cleanup.rate_budget.cap is None


def test_the_bulk_share_and_floor_settings_reach_the_shared_budget(
    cliniko, table, monkeypatch
) -> None:
    given = {"user_agent": UA, "base_url": cliniko.base_url_template, "rate_limit_table": table}
    boto3.client("secretsmanager").create_secret(Name="cliniko/d", SecretString=cliniko.api_key)
    monkeypatch.setattr(cliniko_accounts, "_clients", {})

    default = client_for_secret("cliniko/d", priority="bulk", settings=ClinikoVariables(**given))
    assert default.rate_budget.policy == SharingPolicy()
    monkeypatch.setattr(cliniko_accounts, "_clients", {})
    settings = ClinikoVariables(**given, bulk_share="0.5", bulk_floor="0.2")
    policy = client_for_secret("cliniko/d", priority="bulk", settings=settings).rate_budget.policy
    assert (policy.bulk_share, policy.bulk_floor) == (0.5, 0.2)
    # A bulk share set below the default floor takes the floor down with it.
    settings = ClinikoVariables(**given, bulk_share="0.05")
    policy = client_for_secret("cliniko/d", priority="bulk", settings=settings).rate_budget.policy
    assert (policy.bulk_share, policy.bulk_floor) == (0.05, 0.05)


def test_an_unreachable_table_paces_locally_and_counts_a_metric(
    cliniko, table, monkeypatch, capsys
) -> None:
    settings = ClinikoVariables(
        user_agent=UA, base_url=cliniko.base_url_template, rate_limit_table="no-such-table"
    )
    boto3.client("secretsmanager").create_secret(Name="cliniko/b", SecretString=cliniko.api_key)
    monkeypatch.setattr(cliniko_accounts, "_clients", {})

    client = client_for_secret("cliniko/b", settings=settings)
    assert client.list_contacts() == []  # still served, paced by the process alone

    assert client._transport._budget.in_fallback
    emitted = [json.loads(line) for line in capsys.readouterr().out.splitlines() if "_aws" in line]
    (metric,) = [m for m in emitted if "ClinikoPacingFallback" in m]
    # Exactly the dimensions PacingFallbackAlarm selects (tests/infrastructure/template).
    (dimensions,) = metric["_aws"]["CloudWatchMetrics"][0]["Dimensions"]
    assert sorted(dimensions) == ["reason", "service"]
    assert metric["service"] == os.environ["POWERTOOLS_SERVICE_NAME"]
    assert metric["reason"] == "rate_budget_store_unavailable"
    assert (
        metric["_aws"]["CloudWatchMetrics"][0]["Namespace"]
        == (os.environ["POWERTOOLS_METRICS_NAMESPACE"])
    )
