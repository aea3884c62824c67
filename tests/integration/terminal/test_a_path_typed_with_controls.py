"""A configuration file's path, as typed or set (`--check PATH`, CLEANUP_RULES_FILE), may hold
a control character or a right-to-left override (pasted, or a hostile file name): the config
checks and the operating CLIs' one-line failures quoted it raw, so it acted on the terminal.
Every such line is escaped where it is printed (`print_problems`, `run_tool`)."""

from __future__ import annotations

import os

import pytest

from tests.integration.cleanup.test_handler import deployed  # noqa: F401 (fixture)
from tests.integration.terminal.hostile import (
    HOSTILE,
    SCRIPTS,
    assert_one_line_failure,
    assert_printable,
    run_tool,
)

CHECKS = [
    "cliniko_automations.cleanup.config",
    "cliniko_automations.intake.config",
    "cliniko_automations.common.accounts",
    "cliniko_automations.changefeed.subscribers",
]


@pytest.mark.parametrize("module", CHECKS)
def test_a_config_check_of_a_path_with_controls_escapes_it(module, tmp_path) -> None:
    result = run_tool(["-m", module, "--check", str(tmp_path / HOSTILE)], os.environ)
    assert result.returncode == 1, result.stderr
    assert_printable(result.stderr)
    assert "\\x1b]8;;" in result.stderr


def test_a_rules_file_setting_with_controls_is_one_escaped_line(deployed, tmp_path) -> None:  # noqa: F811
    env = {**os.environ, "CLEANUP_RULES_FILE": str(tmp_path / HOSTILE)}
    result = run_tool([str(SCRIPTS / "cleanup.py"), "plan", "--local"], env)
    assert_one_line_failure(result)
    assert_printable(result.stderr)
    assert result.stderr.startswith("cleanup.py: ConfigError: "), result.stderr
