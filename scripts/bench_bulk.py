#!/usr/bin/env python3
"""Bulk benchmark of the cleanup: N matching contacts, steps killed at random points.

    python scripts/bench_bulk.py [--contacts 100000] [--time-scale 60] [--kill-rate 0.3]
                                 [--dynamodb moto|dynalite]

What runs: the Cliniko emulator (its own process, validation off, Cliniko's limit of 200
requests per window with the window shrunk by --time-scale) holding N contacts that the rule
matches plus --others that it does not; moto_server (its own process) with the ledger (the N
contacts, as the intake would have written them) and the runs table, made from template.yaml.
With --dynamodb dynalite the two tables live in dynalite instead (a DynamoDB in Node on
127.0.0.1, pinned in scripts/dynalite/, installed by this script into .tools/dynalite with
`npm ci`; it needs Node 18+ and npm): moto answers the ledger's index query by reading and
sorting the whole table (9 s a page at 100,000 items: scripts/bench_ledger_page.py),
dynalite reads one page of its sorted index, as DynamoDB does (0.01 s). The secret stays
in moto (AWS_ENDPOINT_URL); DynamoDB calls go to dynalite (AWS_ENDPOINT_URL_DYNAMODB).
Dynalite ignores TTL, which no step relies on.

The state machine's loop is local_run.state_machine.run_loop; every step is a fresh
subprocess running the cleanup's Lambda handler, and with probability --kill-rate a step is
SIGKILLed at a uniformly random moment of its time budget (a crash or a timeout at any point;
the loop retries it, as the definition's Retry does).

Time scale S: the emulator's rate-limit window is 60/S s (200 requests per window), the step's
Lambda budget is 900/S s (stop margin 90/S s), and the Cliniko client paces 200 requests per
60 "client seconds" on a clock running S times faster (a bench-only client factory in the step
subprocess; 429 waits are then under-slept, which costs extra requests, counted against the
result; its HTTP timeout is 60 s, so that a loaded machine's slow answer is not retried, which
would show as a second archive request). Real-time equivalent = wall time x S: an upper bound,
since where this machine is slower than the scaled budget the wall time holds our own
processing as well, which at real scale hides inside the rate-limit waits. The lower bound is
requests x 60 / 200 s.

Checks: every matching contact archived, each by exactly one archive request (the emulator's
request log), none of the others touched. Prints a table and writes results/bench_bulk.json.
"""

from __future__ import annotations

import argparse
import json
import os
import random
import signal
import subprocess
import sys
import tempfile
import textwrap
import time
from collections import Counter
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "scripts"))
RESULTS = ROOT / "results"
KEY = "MS0xbulkbenchkey000000000000-au1"
USER_AGENT = "Bulk bench (bench@example.com)"
SECRET = "cliniko-automations/accounts/bench-clinic/api-key"  # noqa: S105 - a name
REAL_STEP_SECONDS = 900
REAL_MARGIN_SECONDS = 90
BUDGET_PER_MINUTE = 200
DYNALITE_PACKAGE = ROOT / "scripts" / "dynalite"
DYNALITE_HOME = ROOT / ".tools" / "dynalite"

RULES = """\
rules:
  - name: bulk-test-contacts
    account: bench-clinic
    where:
      - {field: email, op: like, value: "%@bulk-test.example.com"}
    # A first run over a planned backlog: past the default 500 a run of this rule would stop.
    max_archives_per_run: 1000000
"""
ACCOUNTS = f"""\
accounts:
  bench-clinic:
    api_key_secret: {SECRET}
"""

# The step subprocess: the cleanup's handler with a client paced on a scaled clock.
STEP = textwrap.dedent(
    """
    import json, os, sys, time, uuid
    from cliniko_automations.cleanup import handler, wiring
    from cliniko_automations.cliniko import ClinikoClient, RetryPolicy
    from cliniko_automations.common.secrets import read_secret

    SCALE = float(os.environ["BENCH_TIME_SCALE"])

    class ScaledClock:
        def monotonic(self): return time.monotonic() * SCALE
        def time(self): return time.time()
        def sleep(self, seconds):
            if seconds > 0: time.sleep(seconds / SCALE)

    CLOCK, CLIENTS = ScaledClock(), {}

    # time_left is in real seconds and this client's clock runs S times faster: the step's
    # own stop margin (the scaled Context below) is what ends a step here.
    def bulk_client(secret_name, settings, time_left=None):
        if secret_name not in CLIENTS:
            CLIENTS[secret_name] = ClinikoClient(
                read_secret(secret_name, prefix=settings.secrets_prefix).strip(),
                os.environ["CLINIKO_USER_AGENT"],
                base_url=os.environ["CLINIKO_BASE_URL"], clock=CLOCK,
                retry_policy=RetryPolicy.within(60), timeout=60,
            )
        return CLIENTS[secret_name]

    wiring.bulk_client = bulk_client

    class Context:
        function_name = "CleanupFunction"
        memory_limit_in_mb = 256
        invoked_function_arn = "arn:aws:lambda:eu-west-1:123456789012:function:cleanup"
        aws_request_id = str(uuid.uuid4())
        deadline = time.monotonic() + float(os.environ["BENCH_STEP_SECONDS"])
        def get_remaining_time_in_millis(self):
            return max(0, int((self.deadline - time.monotonic()) * 1000))

    answer = handler.lambda_handler(json.loads(sys.argv[1]), Context())
    with open(sys.argv[2], "w") as out:
        json.dump(answer, out)
    # The step's own peak (VmHWM; ru_maxrss would carry the parent's across fork and exec).
    with open(sys.argv[2] + ".rss", "w") as out:
        out.write(next(l.split()[1] for l in open("/proc/self/status") if l.startswith("VmHWM:")))
    """
)


class StepKilled(Exception):
    pass


class RequestTally:
    """The emulator's request log, read after every step (it keeps the last 10,000 entries):
    archive requests per contact, and every request by method and status. A gap in the log's
    sequence numbers would mean entries were lost: that fails the run."""

    def __init__(self, control: Any) -> None:
        self.control = control
        self.seq = 0
        self.archives: Counter[str] = Counter()
        self.by_status: Counter[int] = Counter()
        self.gets = 0
        self.total = 0

    def read(self) -> None:
        entries = self.control.requests(since=self.seq)
        if entries and entries[0]["seq"] != self.seq + 1:
            raise RuntimeError(f"request log lost entries after seq {self.seq}")
        for entry in entries:
            self.seq = entry["seq"]
            self.total += 1
            self.by_status[entry["status"]] += 1
            if entry["method"] == "GET":
                self.gets += 1
            elif entry["path"].endswith("/archive") and entry["status"] == 204:
                self.archives[entry["path"].split("/")[-2]] += 1


def start_process(args: list[str]) -> tuple[subprocess.Popen[str], dict[str, Any]]:
    process = subprocess.Popen(
        [sys.executable, *args], stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True
    )
    line = process.stdout.readline() if process.stdout else ""
    return process, json.loads(line) if line.startswith("{") else {}


class Dynalite:
    """dynalite (scripts/dynalite's pinned version) in its own Node process, in memory, on
    127.0.0.1 and a free port: its CLI cannot take port 0, so a one-line launcher listens and
    prints the port."""

    LAUNCH = (
        "const server = require(process.argv[1])({createTableMs: 0, deleteTableMs: 0,"
        " updateTableMs: 0});"
        "server.listen(0, '127.0.0.1', () => console.log(JSON.stringify(server.address())));"
    )

    def __init__(self, log: Path | None = None) -> None:
        self.log = log
        self.process: subprocess.Popen[str] | None = None
        self.url = ""

    @staticmethod
    def install() -> Path:
        """`npm ci` of the pinned lock into .tools/dynalite (git-ignored), once. Install
        scripts are skipped: they build LevelDB's native binding, which the in-memory store
        does not use."""
        package = DYNALITE_HOME / "node_modules" / "dynalite"
        lock = DYNALITE_PACKAGE / "package-lock.json"
        installed_lock = DYNALITE_HOME / "package-lock.json"
        if (
            package.is_dir()
            and installed_lock.exists()
            and installed_lock.read_bytes() == lock.read_bytes()
        ):
            return package
        DYNALITE_HOME.mkdir(parents=True, exist_ok=True)
        for name in ("package.json", "package-lock.json"):
            (DYNALITE_HOME / name).write_bytes((DYNALITE_PACKAGE / name).read_bytes())
        subprocess.run(
            [
                "npm",
                "ci",
                "--ignore-scripts",
                "--no-audit",
                "--no-fund",
                "--prefix",
                str(DYNALITE_HOME),
            ],
            check=True,
            stdout=subprocess.DEVNULL,
        )
        return package

    def start(self) -> Dynalite:
        package = self.install()
        with self.log.open("w") if self.log else open(os.devnull, "w") as errors:
            self.process = subprocess.Popen(
                ["node", "-e", self.LAUNCH, str(package)],
                stdout=subprocess.PIPE,
                stderr=errors,
                text=True,
            )
        line = self.process.stdout.readline() if self.process.stdout else ""
        if not line.startswith("{"):
            self.stop()
            raise RuntimeError("dynalite did not start")
        self.url = f"http://127.0.0.1:{json.loads(line)['port']}"
        return self

    def check(self) -> None:
        """Ends the bench (SystemExit, which the loop does not retry) if dynalite has exited:
        its tables were in its memory."""
        code = self.process.poll() if self.process else None
        if code is not None:
            log = self.log.read_text()[-2000:] if self.log and self.log.exists() else ""
            raise SystemExit(f"dynalite exited with {code}:\n{log}")

    def stop(self) -> None:
        from local_run.system import stop_process

        stop_process(self.process)


def seed_ledger(dynamodb: Any, table: str, ids: list[str]) -> None:
    from cliniko_automations.common.ledger import LedgerEntry, ledger_item

    # The items DynamoLedger.record writes, 25 at a time.
    for start in range(0, len(ids), 25):
        entries = [
            LedgerEntry(
                contact_id,
                "bench-clinic",
                "bench",
                f"sub-{contact_id}",
                "2026-01-01T00:00:00+00:00",
            )
            for contact_id in ids[start : start + 25]
        ]
        dynamodb.batch_write_item(
            RequestItems={table: [{"PutRequest": {"Item": ledger_item(e)}} for e in entries]}
        )


def main() -> int:
    cli = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    cli.add_argument("--contacts", type=int, default=100_000)
    cli.add_argument(
        "--others", type=int, default=10_000, help="intake contacts the rule does not match"
    )
    cli.add_argument("--time-scale", type=float, default=60.0)
    cli.add_argument("--kill-rate", type=float, default=0.3)
    cli.add_argument(
        "--steps-per-execution",
        type=int,
        default=3,
        help="continue-as-new after this many steps (deployed: 500); low here to exercise it",
    )
    cli.add_argument("--seed", type=int, default=15)
    cli.add_argument(
        "--dynamodb",
        choices=("moto", "dynalite"),
        default="moto",
        help="where the ledger and runs tables live (moto: as the tests; dynalite: fast "
        "index queries at 100,000 items)",
    )
    cli.add_argument("--out", default=str(RESULTS / "bench_bulk.json"))
    args = cli.parse_args()
    others = args.others
    rng = random.Random(args.seed)
    scale = args.time_scale
    step_seconds = REAL_STEP_SECONDS / scale

    import boto3
    from cliniko_emulator import EmulatorControl
    from local_run.state_machine import run_loop
    from local_run.system import MotoServer

    emulator, started = start_process(["-m", "cliniko_emulator", "--port", "0", "--key", KEY])
    moto = MotoServer().start()
    work = Path(tempfile.mkdtemp(prefix="bench-bulk-"))
    dynalite = Dynalite(work / "dynalite.err").start() if args.dynamodb == "dynalite" else None
    try:
        control = EmulatorControl(started["url"], timeout=600)
        control.set_validation(enabled=False)
        control.set_rate_limit(per_minute=BUDGET_PER_MINUTE, time_scale=scale)
        t0 = time.perf_counter()
        matching = control.seed(
            args.contacts, seed=args.seed, fields={"email": "someone@bulk-test.example.com"}
        )
        not_matching = control.seed(others, seed=args.seed + 1)  # realistic, not matched
        seeded_cliniko = time.perf_counter() - t0

        env = {
            **os.environ,
            "AWS_ENDPOINT_URL": moto.url,
            "AWS_ACCESS_KEY_ID": "local",
            "AWS_SECRET_ACCESS_KEY": "local",
            "AWS_DEFAULT_REGION": "eu-west-1",
        }
        if dynalite is not None:
            env["AWS_ENDPOINT_URL_DYNAMODB"] = dynalite.url
        os.environ.update({k: env[k] for k in env if k.startswith("AWS_")})
        dynamodb = boto3.client("dynamodb")
        sys.path.insert(0, str(ROOT))
        from tests.integration.cleanup.tables import create_table

        ledger = create_table("LedgerTable", "bench-ledger")
        runs = create_table("CleanupRunsTable", "bench-runs")
        for table in (ledger, runs):
            dynamodb.get_waiter("table_exists").wait(
                TableName=table, WaiterConfig={"Delay": 1, "MaxAttempts": 30}
            )
        boto3.client("secretsmanager").create_secret(Name=SECRET, SecretString=KEY)
        t0 = time.perf_counter()
        # The intake created both kinds: the ledger lists every contact of the account.
        seed_ledger(dynamodb, ledger, matching + not_matching)
        seeded_ledger = time.perf_counter() - t0
        from cliniko_automations.common.ledger import DynamoLedger

        t0 = time.perf_counter()
        DynamoLedger(dynamodb, ledger).active_ids("bench-clinic", None, 100)
        # moto's index query reads and sorts every item; dynalite's reads one page.
        ledger_page_seconds = time.perf_counter() - t0
        (work / "rules.yaml").write_text(RULES)
        (work / "accounts.yaml").write_text(ACCOUNTS)
        env.update(
            {
                "LEDGER_TABLE": ledger,
                "CLEANUP_RUNS_TABLE": runs,
                "CLEANUP_DRY_RUN": "false",
                "CLEANUP_RULES_FILE": str(work / "rules.yaml"),
                "CLINIKO_ACCOUNTS_FILE": str(work / "accounts.yaml"),
                "CLINIKO_USER_AGENT": USER_AGENT,
                "CLINIKO_BASE_URL": started["base_url_template"],
                "STOP_MARGIN_SECONDS": str(REAL_MARGIN_SECONDS / scale),
                "STEPS_PER_EXECUTION": str(args.steps_per_execution),
                "BENCH_TIME_SCALE": str(scale),
                "BENCH_STEP_SECONDS": str(step_seconds),
                "POWERTOOLS_METRICS_NAMESPACE": "Bench",
                "POWERTOOLS_LOG_LEVEL": "WARNING",
            }
        )
        control.clear_requests()
        tally = RequestTally(control)
        kills = 0
        step_walls: list[float] = []
        step_peaks_kib: list[int] = []  # each finished step's peak RSS (its Lambda's memory)

        def invoke(event: dict[str, Any]) -> Any:
            nonlocal kills
            if dynalite is not None:
                dynalite.check()  # not a step failure to retry: the tables are gone
            result_file = work / "answer.json"
            result_file.unlink(missing_ok=True)
            errors = work / "step.err"
            with errors.open("w") as stderr:
                process = subprocess.Popen(
                    [sys.executable, "-c", STEP, json.dumps(event), str(result_file)],
                    env=env,
                    stdout=subprocess.DEVNULL,
                    stderr=stderr,
                )
            began = time.perf_counter()
            kill_at = (
                rng.uniform(0, step_seconds)
                if event["action"] == "step" and rng.random() < args.kill_rate
                else None
            )
            try:
                process.wait(timeout=kill_at)
            except subprocess.TimeoutExpired:
                process.send_signal(signal.SIGKILL)
                process.wait()
                kills += 1
                raise StepKilled(f"killed after {kill_at:.1f}s") from None
            finally:
                tally.read()
            step_walls.append(time.perf_counter() - began)
            rss_file = Path(f"{result_file}.rss")
            if rss_file.exists():
                step_peaks_kib.append(int(rss_file.read_text()))
                rss_file.unlink()
            if process.returncode != 0 or not result_file.exists():
                tail = errors.read_text()[-2000:]
                raise RuntimeError(f"step failed ({process.returncode}):\n{tail}")
            return json.loads(result_file.read_text())

        def progress(answer: dict[str, Any]) -> None:
            print(
                f"  step {answer.get('iterations')}: archived {answer.get('archived')} "
                f"next {answer.get('next')} (kills so far {kills})",
                file=sys.stderr,
                flush=True,
            )

        t0 = time.perf_counter()
        result = run_loop(
            invoke,
            {"dry_run": False},
            sleep=lambda seconds: time.sleep(seconds / scale),
            # Each kill is a failed step: repeated at once, as the kills are the point here.
            step_retries=50,
            step_retry_seconds=0,
            on_step=progress,
        )
        wall = time.perf_counter() - t0

        tally.read()
        archives, by_status, finds = tally.archives, tally.by_status, tally.gets
        archived_now = {c["id"] for c in control.contacts() if c["archived_at"]}
        matching_set = set(matching)
        figures = {
            "contacts_matching": args.contacts,
            "contacts_other": others,
            "time_scale": scale,
            "kill_rate": args.kill_rate,
            "status": result.status,
            "steps_completed": result.steps,
            "steps_killed": kills,
            "executions": len(result.executions),
            "waits": result.waits,
            "archived": len(archived_now & matching_set),
            "all_archived": archived_now == matching_set,
            "each_exactly_once": set(archives) == matching_set and set(archives.values()) == {1},
            "archive_requests_max_per_contact": max(archives.values(), default=0),
            "others_untouched": not (archived_now - matching_set),
            "requests_total": tally.total,
            "requests_find": finds,
            "requests_429": by_status.get(429, 0),
            "requests_per_archived_contact": round(tally.total / max(1, len(archived_now)), 4),
            "wall_seconds": round(wall, 1),
            "seeding_seconds": {
                "cliniko": round(seeded_cliniko, 1),
                "ledger": round(seeded_ledger, 1),
            },
            "dynamodb": args.dynamodb,
            "ledger_page_seconds": round(ledger_page_seconds, 3),
            "mean_step_wall_seconds": round(sum(step_walls) / max(1, len(step_walls)), 2),
            "step_peak_rss_mb_max": round(max(step_peaks_kib, default=0) / 1024, 1),
            "real_time_equivalent_hours": round(wall * scale / 3600, 2),
            "budget_bound_hours": round(tally.total * 60 / BUDGET_PER_MINUTE / 3600, 2),
        }
    finally:
        emulator.terminate()
        moto.stop()
        if dynalite is not None:
            dynalite.stop()

    rows = [
        ("matching contacts (+ others)", f"{args.contacts:,} (+{others:,})"),
        ("time scale", f"{scale:g}x (window {60 / scale:g} s, step {step_seconds:g} s)"),
        ("steps completed / killed", f"{figures['steps_completed']} / {kills}"),
        ("executions (continue-as-new)", figures["executions"]),
        ("archived", f"{figures['archived']:,}"),
        (
            "all archived, each exactly once",
            f"{figures['all_archived']}, {figures['each_exactly_once']}",
        ),
        ("others untouched", figures["others_untouched"]),
        (
            "Cliniko requests (finds, 429s)",
            f"{tally.total:,} ({finds:,}, {figures['requests_429']:,})",
        ),
        ("requests per archived contact", figures["requests_per_archived_contact"]),
        ("wall time", f"{wall:,.0f} s"),
        ("a step's peak memory (most of any)", f"{figures['step_peak_rss_mb_max']} MB of 256"),
        ("real-time equivalent (wall x S)", f"{figures['real_time_equivalent_hours']} h"),
        ("at full budget (requests / 200 a min)", f"{figures['budget_bound_hours']} h"),
    ]
    width = max(len(str(label)) for label, _ in rows)
    print(f"\n| {'figure':<{width}} | value |\n|{'-' * (width + 2)}|-------|")
    for label, value in rows:
        print(f"| {label:<{width}} | {value} |")
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(figures, indent=2) + "\n")
    print(f"\nwritten to {out}")
    ok = figures["all_archived"] and figures["each_exactly_once"] and figures["others_untouched"]
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
