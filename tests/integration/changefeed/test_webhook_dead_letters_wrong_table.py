"""`webhook_dead_letters` given AUDIT_TABLE of another table (the wrong stack
output, e.g. LedgerTableName for ErasureAuditTableName) must end in one line, exit 1, as
erasure.py does for the same mistake, not a traceback (README "Operating": a table that is
not there or a missing setting is one line naming it, exit 1)."""

from __future__ import annotations

import boto3

from tests.integration.changefeed.test_webhook_dead_letters import (  # noqa: F401 (fixtures)
    erasure_stack,
    world,
)


def test_an_audit_table_that_is_not_the_trail_is_one_line(world, capsys, monkeypatch) -> None:  # noqa: F811
    cli, _, letters, _, _, _, _ = world  # a full-copy letter carries contact fields
    ddb = boto3.client("dynamodb")
    ddb.create_table(
        TableName="not-the-trail",
        KeySchema=[{"AttributeName": "pk", "KeyType": "HASH"}],
        AttributeDefinitions=[{"AttributeName": "pk", "AttributeType": "S"}],
        BillingMode="PAY_PER_REQUEST",
    )
    ddb.put_item(TableName="not-the-trail", Item={"pk": {"S": "ledger#1"}})
    monkeypatch.setenv("AUDIT_TABLE", "not-the-trail")
    capsys.readouterr()

    try:
        code = cli("replay", "--all")[0]
        message = capsys.readouterr().err
    except SystemExit as exit_:  # the tools' way to say a mistake in one line
        code, message = 1, str(exit_.code)

    assert code == 1
    assert message.strip().count("\n") == 0
    assert "is not an erasure audit table" in message
    # Nothing was replayed, and every letter is visible again at once.
    monkeypatch.setenv("AUDIT_TABLE", "replay-audit")
    assert len(cli("list", "--json")[1].splitlines()) == len(letters)
