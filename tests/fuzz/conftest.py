"""The fuzz suite's tally: how many cases each HTTP route got and what it answered, printed
at the end of the run (so a run shows what it tried, and that no case got a 5xx)."""

from __future__ import annotations

from collections import Counter, defaultdict

import pytest
from hypothesis import settings

from tests.integration.erasure.stack import erasure_stack  # noqa: F401 (the fixture)
from tests.integration.intake_api.conftest import _captcha_server, captcha, intake  # noqa: F401


class RouteTally:
    """Answers per route, by status code."""

    def __init__(self) -> None:
        self.statuses: dict[str, Counter[int]] = defaultdict(Counter)

    def record(self, route: str, status: int) -> None:
        self.statuses[route][status] += 1

    def lines(self) -> list[str]:
        lines = []
        for route, statuses in sorted(self.statuses.items()):
            codes = ", ".join(f"{code}: {n}" for code, n in sorted(statuses.items()))
            lines.append(f"{route}: {sum(statuses.values())} cases ({codes})")
        server_errors = sum(n for s in self.statuses.values() for c, n in s.items() if c >= 500)
        total = sum(sum(s.values()) for s in self.statuses.values())
        lines.append(f"total: {total} cases, 5xx: {server_errors}")
        return lines


TALLY = RouteTally()


@pytest.fixture
def tally() -> RouteTally:
    return TALLY


def pytest_terminal_summary(terminalreporter, exitstatus, config):
    if not TALLY.statuses:
        return
    profile = settings.get_current_profile_name()  # quick, or long on demand
    terminalreporter.section(f"fuzz suite: cases per route (hypothesis profile {profile!r})")
    for line in TALLY.lines():
        terminalreporter.write_line(line)
