#!/usr/bin/env python3
"""Figures for the Cliniko budget shared by every process of a key (issue 15).

Processes (not threads: concurrent Lambdas are processes) send on one key against the emulator
at Cliniko's real window (200 requests per 60 s, time scale 1), sharing the key's budget
through the DynamoDB rate-limit table on a moto_server (127.0.0.1). Per case: the requests
Cliniko answered (not 429) per minute over the case, as a share of 200; the share of 429
answers; the latency of each intake operation (p50/p95); the cost of the shared budget
(store round trips and their milliseconds per Cliniko request; moto on this machine is slower
than DynamoDB in a region, so the milliseconds are an upper bound); and how evenly the
interactive processes shared what they sent (the least and the most one process sent, as parts
of their total).

Roles of a process:
  creator   creates contacts in a loop (as fast as the budget allows);
  intake    what the intake worker does per submission: a lookup by email, then a create,
            booked together (`expect_requests`);
            saturating (as fast as it can) or at an offered load (submissions per minute,
            latency counted from when a submission arrived);
  cleanup   what the cleanup does: archives contacts in a loop, at bulk priority.
  feed      what the change feed does: polls (a list request) in a loop, at bulk priority
            and under its own cap (FEED_CAP a minute for all its processes together).

    python scripts/bench_pacing.py [--seconds 120] [--cases all] [--out DIR]

It prints a table and writes DIR/pacing.json (default results/).
"""

from __future__ import annotations

import argparse
import json
import multiprocessing
import platform
import statistics
import sys
import time
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
LIMIT = 200
PERIOD = 60.0
TABLE = "bench-rate-limit"
USER_AGENT = "Pacing benchmark (bench@example.com)"
WORKER_WAIT = 25.0  # the intake worker's CLINIKO_MAX_WAIT_SECONDS
CLEANUP_WAIT = 60.0  # the cleanup's
FEED_CAP = 20  # requests a minute: ChangeFeedRequestsPerMinute's default


@dataclass(frozen=True)
class Role:
    kind: str  # creator | intake | cleanup | feed
    processes: int = 1
    threads: int = 1
    max_wait: float = 75.0
    per_minute: float | None = None  # intake's offered load per process; None: saturating


@dataclass(frozen=True)
class Case:
    name: str
    label: str
    roles: tuple[Role, ...]
    baseline: str | None = None  # the case without the cleanup, for the latency ratio


CASES = (
    Case("p1", "1 process, 2 threads", (Role("creator", 1, threads=2),)),
    Case("p2", "2 processes", (Role("creator", 2),)),
    Case("p4", "4 processes", (Role("creator", 4),)),
    Case("p2w", "2 processes, the worker's 25 s wait limit", (Role("creator", 2, max_wait=25),)),
    Case("p4w", "4 processes, the worker's 25 s wait limit", (Role("creator", 4, max_wait=25),)),
    Case("p8w", "8 processes, the worker's 25 s wait limit", (Role("creator", 8, max_wait=25),)),
    Case("i4", "4 intake processes (saturating), no cleanup", (Role("intake", 4, max_wait=25),)),
    Case(
        "i4c",
        "4 intake processes (saturating) + cleanup",
        (Role("intake", 4, max_wait=WORKER_WAIT), Role("cleanup", 1, max_wait=CLEANUP_WAIT)),
        baseline="i4",
    ),
    Case(
        "i4cf",
        "4 intake processes (saturating) + cleanup + 2 change feeds (capped)",
        (
            Role("intake", 4, max_wait=WORKER_WAIT),
            Role("cleanup", 1, max_wait=CLEANUP_WAIT),
            Role("feed", 2, max_wait=CLEANUP_WAIT),
        ),
        baseline="i4",
    ),
    Case(
        "i2",
        "2 intake processes at 40 % of the budget, no cleanup",
        (Role("intake", 2, max_wait=WORKER_WAIT, per_minute=20),),
    ),
    Case(
        "i2c",
        "2 intake processes at 40 % of the budget + cleanup",
        (
            Role("intake", 2, max_wait=WORKER_WAIT, per_minute=20),
            Role("cleanup", 1, max_wait=CLEANUP_WAIT),
        ),
        baseline="i2",
    ),
    Case(
        "i2cf",
        "2 intake at 40 % + cleanup + 2 change feeds (capped)",
        (
            Role("intake", 2, max_wait=WORKER_WAIT, per_minute=20),
            Role("cleanup", 1, max_wait=CLEANUP_WAIT),
            Role("feed", 2, max_wait=CLEANUP_WAIT),
        ),
        baseline="i2",
    ),
)


class TimedStore:
    """The DynamoDB store, timed: what the shared budget costs a Cliniko request."""

    def __init__(self, inner: Any) -> None:
        self.inner = inner
        self.seconds = 0.0
        self.calls = 0

    def book(self, budget_id, now, bookings):
        started = time.perf_counter()
        try:
            return self.inner.book(budget_id, now, bookings)
        finally:
            self.seconds += time.perf_counter() - started
            self.calls += 1

    def block(self, budget_id, until):
        started = time.perf_counter()
        try:
            return self.inner.block(budget_id, until)
        finally:
            self.seconds += time.perf_counter() - started
            self.calls += 1


def run_process(
    role: Role,
    index: int,
    key: str,
    base_url: str,
    moto: str,
    ids: list[str],
    ready: Any,
    go: Any,
    window: Any,
    results: Any,
) -> None:
    """One process of a case (a multiprocessing target): its operations from the start the
    main process sets once every process is ready, until the end; its figures to `results`."""
    import logging
    import threading

    logging.disable(logging.WARNING)

    from cliniko_automations.cliniko import ClinikoClient, RetryPolicy, errors
    from cliniko_automations.cliniko.filters import StringFilter
    from cliniko_automations.common.rate_limit_table import DynamoBudgetStore

    inner = DynamoBudgetStore(moto_dynamodb(moto), TABLE)
    store = TimedStore(inner)
    client = ClinikoClient(
        key,
        USER_AGENT,
        base_url=base_url,
        retry_policy=RetryPolicy.within(role.max_wait),
        budget_store=store,
        priority="bulk" if role.kind in ("cleanup", "feed") else "interactive",
        **(
            {"requests_per_minute": FEED_CAP, "caller": "changefeed"} if role.kind == "feed" else {}
        ),
    )
    latencies: list[float] = []
    outcomes: dict[str, int] = {}
    lock = threading.Lock()
    ready.put(index)
    go.wait()
    start, end = window[0], window[1]
    while time.time() < start:
        time.sleep(min(0.05, start - time.time()))

    def note(outcome: str, latency: float | None) -> None:
        with lock:
            outcomes[outcome] = outcomes.get(outcome, 0) + 1
            if latency is not None:
                latencies.append(latency)

    def operation(n: int) -> None:
        if role.kind == "cleanup":
            client.archive_contact(ids[n % len(ids)])
            return
        if role.kind == "feed":  # a quiet poll: one list request
            client.list_contacts([StringFilter("email").eq(f"nobody-{index}@example.com")])
            return
        email = f"bench-{index}-{n}@example.com"
        if role.kind == "intake":
            client.expect_requests(2)  # as the worker does: the lookup and its create
            client.list_contacts([StringFilter("email").eq(email)])
        client.create_contact({"first_name": "Bench", "last_name": str(n), "email": email})

    def loop(thread: int) -> None:
        n = thread
        interval = None if role.per_minute is None else 60.0 / role.per_minute
        due = start + (index * 7.3 % interval if interval else 0.0)
        while True:
            if interval is not None:
                while time.time() < due and due < end:
                    time.sleep(max(0.0, min(0.1, due - time.time())))
                arrived = due
                due += interval
            else:
                arrived = time.time()
            if arrived >= end:
                return
            try:
                operation(n)
                note("ok", time.time() - arrived)
            except errors.RateLimited:
                note("rate_limited", None)
            except errors.ClinikoError as exc:
                note(type(exc).__name__, None)
            n += role.threads

    threads = [threading.Thread(target=loop, args=(t,)) for t in range(role.threads)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    client.close()
    results.put(
        {
            "kind": role.kind,
            "requests": client.request_count,
            "outcomes": outcomes,
            "latencies": latencies,
            "store_calls": inner.calls,  # DynamoDB calls (a booking may take two)
            "store_seconds": store.seconds,
            "fallbacks": client._transport._budget.fallbacks,
        }
    )


def _percentile(values: list[float], q: float) -> float | None:
    if not values:
        return None
    if len(values) == 1:
        return values[0]
    return statistics.quantiles(values, n=100, method="inclusive")[q - 1]


def run_case(
    case: Case, seconds: float, server: Any, control: Any, moto: str, serial: int
) -> dict[str, Any]:
    key = f"MS0xbenchpacing{serial:04d}{'0' * 8}-au1"  # a fresh key: a fresh window and item
    control.add_key(key)
    ids = control.seed(2000, seed=serial) if _has_cleanup(case) else []
    since = max((entry["seq"] for entry in control.requests()), default=0)
    context = multiprocessing.get_context("spawn")  # a fresh interpreter, as a Lambda has
    ready, results, go = context.Queue(), context.Queue(), context.Event()
    window = context.Array("d", 2)
    processes = []
    index = 0
    for role in case.roles:
        for _ in range(role.processes):
            args = (
                role,
                index,
                key,
                server.base_url_template,
                moto,
                ids,
                ready,
                go,
                window,
                results,
            )
            processes.append(context.Process(target=run_process, args=args))
            index += 1
    for process in processes:
        process.start()
    for _ in processes:
        ready.get(timeout=300)  # imports and clients built: start them together
    start = time.time() + 1.0
    end = start + seconds
    window[0], window[1] = start, end
    go.set()
    outcome = [results.get(timeout=seconds + 600) for _ in processes]
    for process in processes:
        process.join()
    results = outcome
    log = control.requests(since)
    in_case = [e for e in log if start <= _logged_at(e) < end]
    answered = [e for e in in_case if e["status"] != 429]
    throttled = len(in_case) - len(answered)
    bulk_paths = sum(1 for e in answered if e["path"].endswith("/archive"))
    intake_latencies = [
        x for r in results if r["kind"] not in ("cleanup", "feed") for x in r["latencies"]
    ]
    feed_polls = sum(r["outcomes"].get("ok", 0) for r in results if r["kind"] == "feed")
    requests = sum(r["requests"] for r in results)
    # Each interactive process's part of what the interactive processes sent: all equal
    # (1 / their number) when the budget is shared fairly.
    interactive = [r["requests"] for r in results if r["kind"] not in ("cleanup", "feed")]
    shares = [n / sum(interactive) for n in interactive] if sum(interactive) else []
    store_calls = sum(r["store_calls"] for r in results)
    store_seconds = sum(r["store_seconds"] for r in results)
    outcomes: dict[str, int] = {}
    for result in results:
        for name, count in result["outcomes"].items():
            outcomes[name] = outcomes.get(name, 0) + count
    return {
        "case": case.name,
        "label": case.label,
        "seconds": seconds,
        "answered": len(answered),
        "answered_per_minute": len(answered) / seconds * 60,
        "achieved_share": len(answered) / (seconds / PERIOD * LIMIT),
        "responses": len(in_case),
        "throttled": throttled,
        "share_429": throttled / len(in_case) if in_case else 0.0,
        "bulk_answered": bulk_paths,
        "intake_ops": len(intake_latencies),
        "intake_p50_s": _percentile(intake_latencies, 50),
        "intake_p95_s": _percentile(intake_latencies, 95),
        "outcomes": outcomes,
        "process_share_min": min(shares, default=None),
        "process_share_max": max(shares, default=None),
        "store_calls_per_request": store_calls / requests if requests else None,
        "store_ms_per_call": store_seconds / store_calls * 1000 if store_calls else None,
        "store_ms_per_request": store_seconds / requests * 1000 if requests else None,
        "fallbacks": sum(r["fallbacks"] for r in results),
        "feed_polls_per_minute": feed_polls / seconds * 60 if _has_feed(case) else None,
        "baseline": case.baseline,
    }


def moto_dynamodb(moto: str) -> Any:
    """A DynamoDB client of the moto server at `moto`, failing fast as the functions' do."""
    import boto3
    from cliniko_automations.common.aws import FAIL_FAST

    return boto3.client(
        "dynamodb",
        endpoint_url=moto,
        region_name="eu-west-1",
        aws_access_key_id="bench",
        aws_secret_access_key="bench",  # noqa: S106 - moto's fake credentials
        config=FAIL_FAST,
    )


def store_round_trip_ms(moto: str, calls: int = 200) -> dict[str, float]:
    """One process booking on an idle table: the milliseconds of one UpdateItem (moto)."""
    from cliniko_automations.cliniko.shared_pacing import TAT, Booking
    from cliniko_automations.common.rate_limit_table import DynamoBudgetStore

    store = DynamoBudgetStore(moto_dynamodb(moto), TABLE)
    timings = []
    for _ in range(calls):
        now = time.time()
        started = time.perf_counter()
        store.book("round-trip", now, [Booking(TAT, 0.001, now + 1e9)])
        timings.append((time.perf_counter() - started) * 1000)
    return {
        "calls": store.calls,
        "median_ms": statistics.median(timings),
        "p95_ms": _percentile(timings, 95) or 0.0,
    }


def _has_feed(case: Case) -> bool:
    return any(role.kind == "feed" for role in case.roles)


def _has_cleanup(case: Case) -> bool:
    return any(role.kind == "cleanup" for role in case.roles)


def _logged_at(entry: dict) -> float:
    return datetime.fromisoformat(entry["time"].replace("Z", "+00:00")).timestamp()


def _fmt(value: float | None, spec: str) -> str:
    return "-" if value is None else format(value, spec)


def _shares(row: dict[str, Any]) -> str:
    low, high = row.get("process_share_min"), row.get("process_share_max")
    return "-" if low is None or high == 1.0 else f"{low:.1%}-{high:.1%}"


def print_table(rows: list[dict[str, Any]]) -> None:
    by_name = {row["case"]: row for row in rows}
    print()
    print(
        f"{'case':<52} {'answered/200':>12} {'429 share':>9} {'bulk':>5} "
        f"{'p50 s':>6} {'p95 s':>6} {'p95 x':>6} {'ddb/req':>7} {'ms/req':>6} "
        f"{'shares':>11}"
    )
    for row in rows:
        base = by_name.get(row["baseline"] or "")
        ratio = (
            row["intake_p95_s"] / base["intake_p95_s"]
            if base and row["intake_p95_s"] and base["intake_p95_s"]
            else None
        )
        print(
            f"{row['label']:<52} {row['achieved_share']:>12.3f} {row['share_429']:>9.2%} "
            f"{row['bulk_answered']:>5} {_fmt(row['intake_p50_s'], '.2f'):>6} "
            f"{_fmt(row['intake_p95_s'], '.2f'):>6} {_fmt(ratio, '.2f'):>6} "
            f"{_fmt(row['store_calls_per_request'], '.2f'):>7} "
            f"{_fmt(row['store_ms_per_request'], '.2f'):>6} "
            f"{_shares(row):>11}"
        )
        if row.get("feed_polls_per_minute") is not None:
            print(
                f"{'':<4}the change feeds together: {row['feed_polls_per_minute']:.1f} requests"
                f" a minute (cap {FEED_CAP})"
            )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--seconds", type=float, default=120.0)
    parser.add_argument(
        "--cases", default="all", help="comma-separated: " + ", ".join(c.name for c in CASES)
    )
    parser.add_argument("--out", type=Path, default=ROOT / "results")
    args = parser.parse_args()
    chosen = CASES if args.cases == "all" else [c for c in CASES if c.name in args.cases.split(",")]

    import logging

    from cliniko_emulator import EmulatorControl, EmulatorServer

    logging.getLogger("werkzeug").setLevel(logging.ERROR)  # moto_server's access log
    from moto.server import ThreadedMotoServer

    moto_server = ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
    moto_server.start()
    host, port = moto_server._server.server_address  # moto exposes no accessor
    moto = f"http://{host}:{port}"
    moto_dynamodb(moto).create_table(
        TableName=TABLE,
        AttributeDefinitions=[{"AttributeName": "key_id", "AttributeType": "S"}],
        KeySchema=[{"AttributeName": "key_id", "KeyType": "HASH"}],
        BillingMode="PAY_PER_REQUEST",
    )
    # Cliniko's real window: 200 requests per 60 s of real time (time scale 1).
    server = EmulatorServer(port=0, per_minute=LIMIT, time_scale=1.0).start()
    control = EmulatorControl(server.url)
    rows = []
    args.out.mkdir(parents=True, exist_ok=True)
    try:
        for serial, case in enumerate(chosen, start=1):
            print(f"{case.label}: {args.seconds:.0f} s ...", flush=True)
            rows.append(run_case(case, args.seconds, server, control, moto, serial))
            row = rows[-1]
            print(
                f"  answered {row['answered']} ({row['achieved_share']:.3f} of the budget), "
                f"429s {row['throttled']} ({row['share_429']:.2%}), outcomes {row['outcomes']}",
                flush=True,
            )
            _write(args.out / "pacing.json", rows, None)
        round_trip = store_round_trip_ms(moto)
        _write(args.out / "pacing.json", rows, round_trip)
    finally:
        server.stop()
        moto_server.stop()
    print_table(rows)
    print(
        f"\none booking (UpdateItem) on moto_server, one process, idle: "
        f"median {round_trip['median_ms']:.1f} ms, p95 {round_trip['p95_ms']:.1f} ms "
        f"({round_trip['calls']} calls for 200 bookings)"
    )
    print(f"written: {args.out / 'pacing.json'}")


def _write(path: Path, rows: list[dict[str, Any]], round_trip: dict | None) -> None:
    path.write_text(
        json.dumps(
            {
                "benchmark": "pacing",
                "limit_per_minute": LIMIT,
                "machine": f"{platform.machine()}, {multiprocessing.cpu_count()} cores, Python "
                f"{platform.python_version()}",
                "when": datetime.now().astimezone().isoformat(timespec="seconds"),
                "cases": rows,
                "store_round_trip": round_trip,
            },
            indent=2,
        )
        + "\n"
    )


if __name__ == "__main__":
    sys.exit(main())
