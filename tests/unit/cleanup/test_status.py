"""scripts/cleanup.py's progress of one rule: its total and ETA in entries asked about."""

from __future__ import annotations

import importlib.util
from pathlib import Path

from cliniko_automations.cleanup.core import RuleProgress

SCRIPT = Path(__file__).resolve().parents[3] / "scripts" / "cleanup.py"
_spec = importlib.util.spec_from_file_location("cleanup_cli", SCRIPT)
assert _spec and _spec.loader
cli = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(cli)


class Ledger:
    """The ledger's count of active entries after a cursor: 200 of a 300-entry ledger."""

    def count_active(self, account: str, cursor: str | None) -> int:
        return 200


def test_a_batch_in_hand_is_not_counted_twice_in_the_total() -> None:
    # 100 entries asked about, found matching and not archived yet: they are among the asked.
    # Counted again as work left, the total read 400 for a 300-entry ledger, then shrank as
    # the batch was archived.
    progress = RuleProgress(
        "test-submissions", "clinic", True, phase="archive", pending=[str(i) for i in range(100)]
    )
    progress.asked = 100
    status = cli.rule_status(progress, Ledger(), elapsed=50.0)
    assert status["total"] == 300
    progress.pending = progress.pending[50:]
    assert cli.rule_status(progress, Ledger(), elapsed=60.0)["total"] == 300
