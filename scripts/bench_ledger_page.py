#!/usr/bin/env python3
"""How long one page of the ledger's active set takes on moto and on dynalite, by table size.

    python scripts/bench_ledger_page.py [--sizes 10000 100000] [--backends moto dynalite]

The cleanup's find phase reads the ledger's sparse index (`ActiveByAccount`) 100 ids at a
time (DynamoLedger.active_ids). Each backend runs in its own process on 127.0.0.1 (moto_server;
dynalite as scripts/bench_bulk.py starts it), the ledger made from template.yaml, filled with
the items the intake writes, grown to each size in turn; at each size one page is read from the
start and one from the middle of the id range, --repeat times each, and the median printed.
Writes results/bench_ledger_page.json.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "scripts"))
sys.path.insert(0, str(ROOT))
RESULTS = ROOT / "results"
ACCOUNT = "bench-clinic"  # the account bench_bulk.seed_ledger writes


def contact_id(number: int) -> str:
    return str(1_000_000_000 + number)  # Cliniko's ids are strings of digits


def timed_page(ledger: Any, after: str | None, repeat: int) -> float:
    times = []
    for _ in range(repeat):
        t0 = time.perf_counter()
        ids = ledger.active_ids(ACCOUNT, after, 100)
        times.append(time.perf_counter() - t0)
        if len(ids) != 100:
            raise RuntimeError(f"a page held {len(ids)} ids, not 100")
    return statistics.median(times)


def measure(backend: str, endpoint: str, sizes: list[int], repeat: int) -> list[dict[str, Any]]:
    import boto3
    from bench_bulk import seed_ledger
    from cliniko_automations.common.ledger import DynamoLedger

    from tests.integration.cleanup.tables import create_table

    dynamodb = boto3.client("dynamodb", endpoint_url=endpoint)
    os.environ["AWS_ENDPOINT_URL_DYNAMODB"] = endpoint  # create_table's own client
    table = create_table("LedgerTable", f"page-{backend}")
    dynamodb.get_waiter("table_exists").wait(
        TableName=table, WaiterConfig={"Delay": 1, "MaxAttempts": 30}
    )
    ledger = DynamoLedger(dynamodb, table)
    rows, seeded = [], 0
    for size in sorted(sizes):
        t0 = time.perf_counter()
        seed_ledger(dynamodb, table, [contact_id(n) for n in range(seeded, size)])
        seeding = time.perf_counter() - t0
        seeded = size
        row = {
            "backend": backend,
            "items": size,
            "page_from_start_seconds": round(timed_page(ledger, None, repeat), 4),
            "page_from_middle_seconds": round(timed_page(ledger, contact_id(size // 2), repeat), 4),
            "seeding_seconds": round(seeding, 1),
        }
        print(f"  {row}", file=sys.stderr, flush=True)
        rows.append(row)
    return rows


def main() -> int:
    cli = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    cli.add_argument("--sizes", type=int, nargs="+", default=[10_000, 100_000])
    cli.add_argument("--backends", nargs="+", choices=("moto", "dynalite"), default=None)
    cli.add_argument("--repeat", type=int, default=3)
    cli.add_argument("--out", default=str(RESULTS / "bench_ledger_page.json"))
    args = cli.parse_args()
    os.environ.update(
        {
            "AWS_ACCESS_KEY_ID": "local",
            "AWS_SECRET_ACCESS_KEY": "local",
            "AWS_DEFAULT_REGION": "eu-west-1",
        }
    )
    from bench_bulk import Dynalite
    from local_run.system import MotoServer

    rows: list[dict[str, Any]] = []
    for backend in args.backends or ["dynalite", "moto"]:
        server = Dynalite() if backend == "dynalite" else MotoServer()
        server.start()
        try:
            rows += measure(backend, server.url, args.sizes, args.repeat)
        finally:
            server.stop()

    print("\n| backend | items | page from start (s) | page from middle (s) | seeding (s) |")
    print("|---|---|---|---|---|")
    for row in rows:
        print(
            f"| {row['backend']} | {row['items']:,} | {row['page_from_start_seconds']} "
            f"| {row['page_from_middle_seconds']} | {row['seeding_seconds']} |"
        )
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps({"repeat": args.repeat, "rows": rows}, indent=2) + "\n")
    print(f"\nwritten to {out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
