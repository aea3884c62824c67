"""The scheduled cleanup archives a contact while the intake worker's update of it is on its way
to Cliniko: the person sent the form again (a referral months later) and the worker found their
contact active, and the cleanup's step archives it, as its rule says, just before the update
lands. Cliniko's docs do not say whether an update reaches an archived contact: where it does
not (its own route hides one, `archived_get="hidden"`), the update's 404 parks the submission
(`match_not_found`); where it does, the update lands in a record staff no longer see. Either way
the submission must reach staff as a submission that met only an archived contact does
(parked), never be reported `updated` into the archive, where nobody learns the person is back.

The whole path (intake API, SQS, the worker), the real cleanup step (its ledger the worker's),
moto, and the emulator over HTTP, which runs the cleanup's step just before the worker's update
takes effect.
"""

from __future__ import annotations

import datetime as dt
import json
import uuid
from typing import Any

import boto3
import pytest
from cliniko_automations.cleanup.config import CleanupRule
from cliniko_automations.cleanup.core import CleanupStep, RuleProgress, RunState
from cliniko_automations.cleanup.runs import DynamoRuns
from cliniko_automations.common.ledger import DynamoLedger, LedgerEntry

from tests.e2e.test_erasure_reaches_submissions import answered_id, world  # noqa: F401
from tests.fixtures.emulator import before_each_answer
from tests.integration.cleanup.tables import create_table
from tests.integration.erasure import stack as erasure
from tests.integration.intake_worker.e2e_world import delivery
from tests.integration.intake_worker.resources import captured_logs
from tests.unit.intake_api import samples

erasure_stack = erasure.erasure_stack  # the fixture (the world's environment needs it)

ACCOUNT = "main-clinic"  # the Typeform source's clinic
NOW = dt.datetime.now(dt.UTC)
STALE = (NOW - dt.timedelta(days=200)).strftime("%Y-%m-%dT%H:%M:%SZ")

# The clinic's rule: the form's contacts nobody has touched for half a year.
STALE_RULE = CleanupRule.model_validate(
    {
        "name": "untouched-form-contacts",
        "account": ACCOUNT,
        "where": [{"field": "updated_at", "op": "older_than_days", "value": 180}],
    }
)


def cleanup_step(cliniko: Any, ledger_table: str) -> tuple[Any, RunState]:
    """One run of the rule, archiving, to its end (one step is enough for one contact)."""
    dynamodb = boto3.client("dynamodb")
    runs = DynamoRuns(dynamodb, create_table("CleanupRunsTable", f"r{uuid.uuid4().hex[:8]}"))
    state = RunState(
        run_id=uuid.uuid4().hex,
        dry_run=False,
        started_at=dt.datetime.now(dt.UTC).isoformat(),
        rules=[RuleProgress.start(STALE_RULE)],
    )
    runs.create("cleanup_rules", state)
    loaded = runs.load(state.run_id)
    outcome = CleanupStep(
        rules={STALE_RULE.name: STALE_RULE},
        client_for_account=lambda account: cliniko.client(timeout=60),
        ledger=DynamoLedger(dynamodb, ledger_table),
        checkpoints=runs,
        out_of_time=lambda: False,
    ).run(loaded)
    return outcome, loaded


@pytest.mark.parametrize(
    ("archived_get", "expected_reason"),
    [("visible", "archived_match"), ("hidden", "match_not_found")],
)
def test_an_update_the_cleanup_archived_under_reaches_staff_as_parked(
    world,  # noqa: F811
    erasure_stack,
    cliniko,
    emulator,
    monkeypatch,
    archived_get,
    expected_reason,
):
    path = world
    cliniko.control.set_behaviour(archived_get=archived_get)
    # Made by the form 200 days ago (in the ledger), untouched since; no phone yet.
    [contact_id] = cliniko.control.seed(
        contacts=[
            {
                "first_name": samples.FIRST,
                "last_name": samples.LAST,
                "email": samples.EMAIL,
                "created_at": STALE,
                "updated_at": STALE,
            }
        ]
    )
    contact_id = str(contact_id)
    DynamoLedger(boto3.client("dynamodb"), path.stack.ledger_table).record(
        LedgerEntry(contact_id, ACCOUNT, "referral-typeform", "first-referral", STALE)
    )
    # Their referral again, bringing a phone (fill_blanks): the worker's update.
    submission_id = answered_id(path.post(delivery("typeform")))

    runs: list[Any] = []

    def cleanup_first(method: str, body: bytes) -> None:
        if method in ("PATCH", "PUT") and not runs:
            runs.append(cleanup_step(cliniko, path.stack.ledger_table))

    before_each_answer(emulator, monkeypatch, cleanup_first)
    with captured_logs("intake") as logs:
        path.work()

    [(outcome, state)] = runs
    assert outcome.next == "done" and state.rules[0].archived == 1, state.as_dict()
    stored = next(
        c for c in cliniko.control.contacts(include_archived=True) if str(c["id"]) == contact_id
    )
    assert stored["archived_at"]
    [processed] = logs.json("submission processed")
    assert processed["action"] == "parked", json.dumps(processed)
    [parked] = path.stack.drain(path.stack.parked_queue_url)
    assert json.loads(parked["Body"])["submission_id"] == submission_id
    attributes = {k: v["StringValue"] for k, v in parked["MessageAttributes"].items()}
    assert attributes["candidate_contact_ids"] == contact_id, attributes
    assert attributes["reason"] == expected_reason, attributes
    # Nobody made twice: the one (archived) contact.
    assert len(cliniko.control.contacts(include_archived=True)) == 1
