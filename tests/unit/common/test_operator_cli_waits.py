"""README "Operating": an operating CLI's call to AWS waits at most `AWS_CONNECT_SECONDS` to
connect and `AWS_ANSWER_SECONDS` for an answer, `AWS_ATTEMPTS` attempts, whichever session
made its client (boto3's default one: `boto3.client`; the shared one: `common.aws.client`); a
client with its own configuration (`FAIL_FAST`) keeps it; and what the tool changed is put
back once it ends (a test calling a tool's `main`)."""

from __future__ import annotations

import importlib
import importlib.util
import sys
from pathlib import Path

import boto3
import pytest
from botocore.config import Config
from cliniko_automations.common import aws
from cliniko_automations.common.operator_cli import (
    AWS_ANSWER_SECONDS,
    AWS_ATTEMPTS,
    AWS_CONNECT_SECONDS,
    run_tool,
)

SCRIPTS = Path(__file__).resolve().parents[3] / "scripts"


def waits(client) -> tuple:
    config = client.meta.config
    return (config.connect_timeout, config.read_timeout, config.retries)


# What a client given the bound itself resolves to.
BOUNDED = waits(
    boto3.session.Session(region_name="eu-west-1").client(
        "sqs",
        config=Config(
            connect_timeout=AWS_CONNECT_SECONDS,
            read_timeout=AWS_ANSWER_SECONDS,
            retries={"mode": "standard", "total_max_attempts": AWS_ATTEMPTS},
        ),
    )
)
FAIL_FAST = waits(
    boto3.session.Session(region_name="eu-west-1").client("sqs", config=aws.FAIL_FAST)
)


@pytest.fixture(autouse=True)
def no_default_session(monkeypatch):
    monkeypatch.setenv("AWS_DEFAULT_REGION", "eu-west-1")
    monkeypatch.setattr(boto3, "DEFAULT_SESSION", None)


def test_every_client_a_tool_makes_waits_within_the_bound() -> None:
    made = {}

    def command() -> int:
        made["default"] = boto3.client("sqs")
        made["resource"] = boto3.resource("dynamodb").meta.client
        made["shared"] = aws.session().client("sqs")
        made["fail_fast"] = aws.session().client("sqs", config=aws.FAIL_FAST)
        return 0

    assert run_tool("dead_letters.py", command) == 0
    assert waits(made["default"]) == waits(made["resource"]) == waits(made["shared"]) == BOUNDED
    assert waits(made["fail_fast"]) == FAIL_FAST
    assert BOUNDED[:2] == (5, 10) and FAIL_FAST[:2] == (1, 2)


def test_the_attempts_are_as_many_as_said() -> None:
    # Counting the first: botocore's `max_attempts` counts only the retries after it, and
    # max_attempts 3 made four attempts (README "Operating" says three), FAIL_FAST's 2 three.
    assert BOUNDED[2] == {"mode": "standard", "total_max_attempts": AWS_ATTEMPTS}
    assert FAIL_FAST[2] == {"mode": "standard", "total_max_attempts": 2}


def test_what_a_tool_changed_is_put_back() -> None:
    assert run_tool("dead_letters.py", lambda: 0) == 0
    assert boto3.DEFAULT_SESSION is None
    assert waits(aws.session().client("sqs"))[:2] == (60, 60)  # botocore's defaults
    assert waits(boto3.client("sqs"))[:2] == (60, 60)


def test_a_default_session_made_before_is_left_in_place() -> None:
    # A test's, carrying event hooks of its own (tests/integration/intake_worker).
    theirs = boto3.session.Session()
    boto3.DEFAULT_SESSION = theirs
    seen = []
    assert run_tool("dead_letters.py", lambda: seen.append(boto3.DEFAULT_SESSION) or 0) == 0
    assert seen == [theirs] and boto3.DEFAULT_SESSION is theirs


@pytest.mark.parametrize("script", ["erasure.py", "cleanup.py", "dead_letters.py"])
def test_no_tool_makes_the_default_session_as_it_loads(script, monkeypatch) -> None:
    # Else it would be taken for someone else's and left with botocore's 60 s waits.
    spec = importlib.util.spec_from_file_location(f"tool_{script[:-3]}", SCRIPTS / script)
    module = importlib.util.module_from_spec(spec)
    monkeypatch.setitem(sys.modules, spec.name, module)  # its dataclasses look it up there
    spec.loader.exec_module(module)
    importlib.import_module("cliniko_automations.changefeed.webhook_dead_letters")
    assert boto3.DEFAULT_SESSION is None
