"""An erasure "stack" for tests: moto DynamoDB table and secrets, the emulator, the env vars.

Imported by the erasure integration and end-to-end tests (pytest registers imported fixtures).
"""

from __future__ import annotations

import json
import re
import uuid
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import boto3
import pytest
from cliniko_automations.erasure.audit import LINK_PREFIX
from cliniko_automations.erasure.scrub import PLACEHOLDER_FIRST_NAME, SCRUBBED_VALUES

from tests.integration.cleanup.tables import create_table
from tests.integration.intake_worker.resources import create_submission_store

PEPPER = "test-pepper-0123456789abcdef0123456789abcdef"
# The accounts of the stack's cliniko_accounts.yaml, as the shipped file names them: main-clinic
# (the default account, on shard au1) and north-clinic (on uk1: the emulator keeps each shard's
# contacts apart, as two Cliniko accounts are).
ACCOUNT = "main-clinic"
OTHER_ACCOUNT = "north-clinic"
USER_AGENT = "Erasure Tests (tests@example.com)"

# A contact that fills every personal field, each value distinct so a leak is findable.
PERSONAL = {
    "title": "Professor",
    "first_name": "Grizelda",
    "last_name": "Thistlewaite",
    "preferred_name": "Zelda",
    "company_name": "Thistlewaite Orthopaedics",
    "occupation": "Orthopaedic Surgeon",
    "provider_number": "2426754J",
    "email": "Grizelda.Thistlewaite+ortho@example.com",
    "address_1": "17 Wattlebird Crescent",
    "address_2": "Level 3",
    "address_3": "Suite 305",
    "city": "Wollongbar",
    "state": "New South Wales",
    "post_code": "2477",
    "country_code": "EE",
    "notes": "Referred by the Quokka Clinic; prefers morning calls",
    "doctor_type": "specialist",
    "type_code": 1,
    "phone_numbers": [
        {"number": "0491 570 156", "phone_type": "Mobile"},
        {"number": "02 5550 1234", "phone_type": "Fax"},
    ],
}


def personal_values(contact: dict[str, Any]) -> list[str]:
    """Every personal value of a contact as text, to search logs and tables for."""
    values = [
        str(contact[name])
        for name in PERSONAL
        if name not in ("type_code", "doctor_type", "country_code", "phone_numbers")
    ]
    values.append(contact["email"].lower())
    values.append("Estonia")  # the country name Cliniko derives from country_code
    for phone in contact["phone_numbers"]:
        values.append(phone["number"])
        values.append(phone["number"].replace(" ", ""))
    return values


# A uuid's 4-digit groups stand between hyphens: one uuid4 in 65,536 has "-2477-".
UUID = re.compile(r"[0-9a-f]{8}(?:-[0-9a-f]{4}){3}-[0-9a-f]{12}", re.I)


def whole_values_in(text: str, values: list[str]) -> list[str]:
    """The values `text` holds as whole values, any case: not inside a longer run of letters
    and digits, where a post code like "2477" occurs by chance (a hex hash, an id), nor in a
    uuid (a request or submission id)."""
    text = UUID.sub("<uuid>", text)
    return sorted(
        {
            value
            for value in values
            if value
            and re.search(rf"(?<![0-9A-Za-z]){re.escape(value)}(?![0-9A-Za-z])", text, re.I)
        }
    )


@dataclass
class ErasureStack:
    cliniko: Any
    table_name: str
    pepper_secret: str
    key_secret: str
    other_key: str
    other_key_secret: str
    submission_table: str = "erasure-submission-store"
    idempotency_table: str = "erasure-idempotency"
    env: dict[str, str] = field(default_factory=dict)

    def seed(self, account: str = ACCOUNT, **overrides: Any) -> str:
        """Create a contact in `account` through the real client; returns its id."""
        body = {**PERSONAL, **overrides}
        key = self.other_key if account == OTHER_ACCOUNT else None
        return str(self.cliniko.client(api_key=key).create_contact(body).id)

    def log(self) -> list[dict[str, Any]]:
        return list(self.cliniko.control.requests())

    def audit_items(self, *, links: bool = False) -> list[dict[str, Any]]:
        """Every record in the audit table; with `links`, the items that claim each record's
        place in its chain (`link#<seq>`) too."""
        table = boto3.resource("dynamodb").Table(self.table_name)
        items: list[dict[str, Any]] = []
        scan: dict[str, Any] = {}
        while True:
            page = table.scan(**scan)
            items.extend(i for i in page["Items"] if links or not i["sk"].startswith(LINK_PREFIX))
            if "LastEvaluatedKey" not in page:
                return items
            scan["ExclusiveStartKey"] = page["LastEvaluatedKey"]

    def contact(self, contact_id: str, account: str = ACCOUNT) -> dict[str, Any]:
        """The emulator's stored contact (archived included), via its inspection API."""
        shard = "uk1" if account == OTHER_ACCOUNT else "au1"
        for stored in self.cliniko.control.contacts(include_archived=True, shard=shard):
            if str(stored["id"]) == contact_id:
                return stored
        raise KeyError(contact_id)


def assert_scrubbed_and_archived(erasure_stack: ErasureStack, contact_id: str) -> None:
    """The contact is archived with every personal field blank (its first name the
    placeholder Cliniko requires)."""
    stored = erasure_stack.contact(contact_id)
    assert stored["archived_at"]
    assert stored["first_name"] == PLACEHOLDER_FIRST_NAME
    for name in SCRUBBED_VALUES:
        if name != "first_name":
            assert stored.get(name) in ("", None, []), name
    assert not stored.get("country")


def make_audit_table(name: str) -> None:
    boto3.client("dynamodb").create_table(
        TableName=name,
        KeySchema=[
            {"AttributeName": "request_id", "KeyType": "HASH"},
            {"AttributeName": "sk", "KeyType": "RANGE"},
        ],
        AttributeDefinitions=[
            {"AttributeName": "request_id", "AttributeType": "S"},
            {"AttributeName": "sk", "AttributeType": "S"},
        ],
        BillingMode="PAY_PER_REQUEST",
    )


def write_accounts(path: Path, accounts: dict[str, str]) -> Path:
    """A cliniko_accounts.yaml of these accounts (name: key secret)."""
    entries = {name: {"api_key_secret": secret} for name, secret in accounts.items()}
    path.write_text(json.dumps({"accounts": entries}))
    return path


@pytest.fixture
def erasure_stack(
    aws: str, cliniko: Any, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> Iterator[ErasureStack]:
    stack = ErasureStack(
        cliniko=cliniko,
        table_name="erasure-audit",
        pepper_secret="erasure/pepper",
        # A fresh name per test: client_for_secret caches one client per secret name for the
        # life of the process (as a Lambda container does), and each test has its own key.
        key_secret=f"cliniko/erasure-key-{uuid.uuid4().hex[:12]}",
        other_key=f"MS0xnorth{uuid.uuid4().hex[:16]}-uk1",
        other_key_secret=f"cliniko/north-key-{uuid.uuid4().hex[:12]}",
    )
    cliniko.control.add_key(stack.other_key)
    make_audit_table(stack.table_name)
    create_table("IdempotencyTable", stack.idempotency_table)
    create_submission_store(boto3.client("dynamodb"), stack.submission_table)
    secrets = boto3.client("secretsmanager")
    secrets.create_secret(Name=stack.pepper_secret, SecretString=PEPPER)
    secrets.create_secret(Name=stack.key_secret, SecretString=cliniko.api_key)
    secrets.create_secret(Name=stack.other_key_secret, SecretString=stack.other_key)
    accounts = {ACCOUNT: stack.key_secret, OTHER_ACCOUNT: stack.other_key_secret}
    stack.env = {
        "AUDIT_TABLE": stack.table_name,
        "IDEMPOTENCY_TABLE": stack.idempotency_table,
        "SUBMISSION_TABLE": stack.submission_table,
        "PEPPER_SECRET_NAME": stack.pepper_secret,
        "CLINIKO_API_KEY_SECRET_NAME": stack.key_secret,
        "CLINIKO_ACCOUNTS_FILE": str(write_accounts(tmp_path / "erasure_accounts.yaml", accounts)),
        "CLINIKO_USER_AGENT": USER_AGENT,
        "CLINIKO_BASE_URL": cliniko.base_url_template,
    }
    for name, value in stack.env.items():
        monkeypatch.setenv(name, value)
    yield stack
