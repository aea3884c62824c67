#!/usr/bin/env python3
"""Figures for the Cliniko client runtime.

1. Cold import time of the client runtime (`ClinikoClient` and its errors, with httpx and the
   generated client beneath them): a fresh `python -X importtime` process
   per run; the total is the sum of the top-level cumulative times of the modules that import
   brought in (modules already loaded by interpreter start-up are left out). The median of
   `--runs` runs is printed, with where the time goes by top-level package.
2. Requests to list 1,000 contacts: an in-process emulator on 127.0.0.1 seeded with 1,000
   contacts, listed with `ClinikoClient.list_contacts()`, counted by the client and by the
   emulator's own counters.

    python scripts/bench_client.py [--runs 5] [--contacts 1000]
"""

from __future__ import annotations

import argparse
import re
import statistics
import subprocess
import sys
import time

MODULE = "cliniko_automations.cliniko"
# The package loads the client on first use (PEP 562): import what a Cliniko caller imports.
IMPORT = f"from {MODULE} import ClinikoClient, errors"
# httpx imports its optional command line (click, rich, pygments) whenever they are installed.
# The dev venv has them (schemathesis, typer); the Lambda artifact does not, so the "as
# deployed" figure makes them unimportable, which is what httpx meets in Lambda.
CLI_ONLY = ("click", "rich", "pygments")
IMPORT_AS_DEPLOYED = f"import sys; sys.modules.update(dict.fromkeys({CLI_ONLY!r})); {IMPORT}"
_LINE = re.compile(r"^import time:\s+(\d+)\s+\|\s+(\d+)\s+\|( *)(\S+)\s*$")


def _import_lines(code: str) -> list[tuple[int, int, int, str]]:
    """(self us, cumulative us, depth, module) per line of one fresh `-X importtime` run."""
    result = subprocess.run(
        [sys.executable, "-X", "importtime", "-c", code],
        capture_output=True,
        text=True,
        check=True,
    )
    lines = []
    for line in result.stderr.splitlines():
        match = _LINE.match(line)
        if match:
            depth = (len(match.group(3)) - 1) // 2
            lines.append((int(match.group(1)), int(match.group(2)), depth, match.group(4)))
    return lines


def _measure(startup: set[str], code: str) -> tuple[float, dict[str, float]]:
    """Total ms of the import and self ms by top-level package, start-up modules left out."""
    lines = _import_lines(code)
    # Children print before their parent, and start-up imports print first: everything after
    # the last top-level start-up line was brought in by our import.
    first = 0
    for index, (_, _, depth, name) in enumerate(lines):
        if depth == 0 and name in startup:
            first = index + 1
    ours = lines[first:]
    total = sum(cumulative for _, cumulative, depth, _ in ours if depth == 0) / 1000.0
    by_package: dict[str, float] = {}
    for own, _, _, name in ours:
        root = name.split(".")[0]
        by_package[root] = by_package.get(root, 0.0) + own / 1000.0
    return total, by_package


def import_time(runs: int, code: str) -> tuple[float, list[tuple[str, float]]]:
    startup = {name for _, _, depth, name in _import_lines("pass") if depth == 0}
    _import_lines(code)  # writes .pyc files, so runs measure imports only
    totals: list[float] = []
    packages: dict[str, list[float]] = {}
    for _ in range(runs):
        total, by_package = _measure(startup, code)
        totals.append(total)
        for name, millis in by_package.items():
            packages.setdefault(name, []).append(millis)
    ranked = sorted(
        ((name, statistics.median(values)) for name, values in packages.items()),
        key=lambda item: item[1],
        reverse=True,
    )
    return statistics.median(totals), ranked[:8]


def requests_to_list(count: int) -> tuple[int, int, float]:
    from cliniko_automations.cliniko import ClinikoClient
    from cliniko_emulator import EmulatorControl, EmulatorServer

    key = "MS0xbenchkey00000000000000-au1"
    server = EmulatorServer(port=0, keys=[key]).start()
    control = EmulatorControl(server.url)
    try:
        control.seed(count, seed=1)
        control.clear_requests()
        before = control.counters()["total"]
        with ClinikoClient(
            key, "Client benchmark (bench@example.com)", base_url=server.base_url_template
        ) as client:
            started = time.perf_counter()
            contacts = client.list_contacts()
            elapsed = time.perf_counter() - started
            if len({c.id for c in contacts}) != count:
                raise SystemExit(f"listed {len(contacts)} contacts, expected {count}")
            sent = client.request_count
        served = control.counters()["total"] - before
    finally:
        control.close()
        server.stop()
    return sent, served, elapsed


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--runs", type=int, default=5)
    parser.add_argument("--contacts", type=int, default=1000)
    args = parser.parse_args()

    for label, code in (("in the dev venv", IMPORT), ("as deployed", IMPORT_AS_DEPLOYED)):
        median, heaviest = import_time(args.runs, code)
        print(
            f"cold import of {MODULE} {label}: {median:.1f} ms "
            f"(median of {args.runs} fresh processes)"
        )
        print("  own time by top-level package (median):")
        for name, millis in heaviest:
            print(f"    {name:<40} {millis:7.1f} ms")

    sent, served, elapsed = requests_to_list(args.contacts)
    print(
        f"listing {args.contacts} contacts: {sent} requests sent by the client, "
        f"{served} served by the emulator ({elapsed * 1000:.0f} ms)"
    )


if __name__ == "__main__":
    main()
