"""An AWS_DEFAULT_REGION that is set but empty (`export
AWS_DEFAULT_REGION=$REGION` in a shell without REGION, as README "Set up" step 5 writes it) is
the missing region the operating CLIs name in one line, not "Invalid endpoint:
https://sqs..amazonaws.com" (README "Operating": no region is one line naming it, exit 1)."""

from __future__ import annotations

import boto3
import pytest
from cliniko_automations.common.operator_cli import EXIT_FAILED, run_tool


@pytest.mark.parametrize("variable", ["AWS_DEFAULT_REGION", "AWS_REGION"])
def test_an_empty_region_is_named_as_missing(variable, monkeypatch, capsys) -> None:
    for name in ("AWS_DEFAULT_REGION", "AWS_REGION", "AWS_ENDPOINT_URL", "AWS_PROFILE"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("AWS_CONFIG_FILE", "/nonexistent")
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "x")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "y")
    monkeypatch.setenv(variable, "")

    def command() -> int:
        boto3.client("sqs").get_queue_url(QueueName="q")  # never sent: no region
        return 0

    assert run_tool("dead_letters.py", command) == EXIT_FAILED
    (line,) = capsys.readouterr().err.splitlines()
    assert line == "dead_letters.py: NoRegionError: You must specify a region."


def test_ctrl_c_is_one_line_and_exit_130(capsys) -> None:
    # README "Operating": Ctrl-C exits 130, as a shell reports SIGINT, with no traceback.
    def command() -> int:
        raise KeyboardInterrupt

    assert run_tool("cleanup.py", command) == 130
    assert capsys.readouterr().err == "cleanup.py: interrupted\n"


def test_a_bug_keeps_its_traceback() -> None:
    # Only a mistake of the environment is one line and exit 1: a bug of the tool's own is
    # raised, so that it is seen and reported rather than taken for a setting to fix.
    def command() -> int:
        raise TypeError("a bug")

    with pytest.raises(TypeError, match="a bug"):
        run_tool("cleanup.py", command)
