"""`webhook_dead_letters replay` with a subscriber's secret that is not `whsec_` + base64 (a
value rotated by hand, `openssl rand` output pasted without the prefix) must end in one line
naming the secret, exit 1, not a BadSigningSecret traceback (README "Operating": a secret that
cannot be read or a bad setting is one line naming it, exit 1), and keep every letter."""

from __future__ import annotations

import boto3
from cliniko_automations.common.secrets import clear_secret_caches

from tests.integration.changefeed.test_webhook_dead_letters import (  # noqa: F401 (fixtures)
    erasure_stack,
    world,
)


def test_a_malformed_subscriber_secret_is_one_line(world, capsys) -> None:  # noqa: F811
    cli, _, letters, _, _, _, _ = world
    boto3.client("secretsmanager").put_secret_value(
        SecretId="tests/webhooks/crm-sync", SecretString="not a whsec secret"
    )
    clear_secret_caches()  # a new process reads the secret afresh
    capsys.readouterr()

    try:
        code = cli("replay", "--all")[0]
        message = capsys.readouterr().err
    except SystemExit as exit_:  # the tools' way to say a mistake in one line
        code, message = 1, str(exit_.code)

    assert code == 1
    assert message.strip().count("\n") == 0
    assert "tests/webhooks/crm-sync" in message and "whsec_" in message
    assert "not a whsec secret" not in message  # never the value
    # Nothing was replayed, and every letter is visible again at once.
    assert len(cli("list", "--json")[1].splitlines()) == len(letters)
