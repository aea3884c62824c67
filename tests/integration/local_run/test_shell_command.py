"""`python -m local_run shell -- CMD` with a mistyped or non-executable CMD
ends in one line and a shell's exit status (127, 126), not a traceback (README "Operating":
the operating tools' mistakes are one line)."""

from __future__ import annotations

import pytest
from local_run.__main__ import shell

STATE = {"environment": {"AWS_ENDPOINT_URL": "http://127.0.0.1:9"}, "api": "x", "moto": "x"}


@pytest.mark.parametrize(
    ("command", "status"), [(["pyhton-typo", "scripts/erasure.py"], 127), ([__file__], 126)]
)
def test_a_command_that_cannot_start_is_one_line(command, status, capfd) -> None:
    assert shell(STATE, command) == status
    err = capfd.readouterr().err
    assert err.count("\n") == 1 and "Traceback" not in err and command[0] in err
