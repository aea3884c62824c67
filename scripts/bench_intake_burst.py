#!/usr/bin/env python3
"""Form intake under volume: a backlog drained on the shared Cliniko budget, beside the
cleanup and the change feed.

    python scripts/bench_intake_burst.py [--scale 3] [--backlog 300] [--html 100]
        [--csv 1000] [--twice 0.05] [--redeliveries 0.2] [--outside-429 N] [--json]

What a clinic meets, all at once (README "Form intake", "One Cliniko budget per user"):
- a provider redelivering its backlog after its own outage (`--backlog` Typeform deliveries,
  `--redeliveries` of them sent again: the same response token);
- a busy page's form (`--html` browser posts, `--redeliveries` of them double-submitted);
- a clinic's own script importing a CSV through the signed JSON source (`--csv` rows, each
  its own Idempotency-Key; `--twice` of the people in it twice, with another phone);
- all the while the cleanup archives flat out (bulk) and the change feed polls under its
  20-a-minute cap (bulk), on the same Cliniko key.

Everything is as deployed but time, which runs `--scale` times fast for everyone: the
emulator's rate limit (a strict 200 per 60 s window, fixed), the shared budget's period and
queue, the worker's timeout (120 s), its per-request wait (CLINIKO_MAX_WAIT_SECONDS 25),
MIN_REMAINING_SECONDS, RESERVE_SECONDS, the retry backoff, the claim's waits, the submission
queue's visibility timeout (720 s) and the cleanup's and the feed's waits. What cannot scale
is each request's own time (moto, the emulator, the worker's code on this machine's two
shared cores): at scale 3 a submission has 400 ms of real time per worker for its two
Cliniko requests and its DynamoDB and SQS calls, at scale 10 125 ms, which this machine does
not keep up with: a higher scale measures the machine (see "workers in invocations").
The submission queue is moto's, with its real redrive policy (maxReceiveCount 5); the event
source is two worker processes (MaximumConcurrency 2, BatchSize 10), each receiving a batch,
invoking the handler with a Lambda context of the scaled timeout and deleting what it did not
report failed, as Lambda's poller does. A batch that runs past its timeout is counted (Lambda
would have killed it: its records come back after the visibility timeout).

Figures: Cliniko requests per (scaled) minute by caller and 429s; the drain time against the
time the budget implies (intake's requests at the booked 192 a minute); receives per message;
failed attempts by reason; dead letters and parked submissions; contacts per person.
"""

from __future__ import annotations

import argparse
import contextlib
import fcntl
import functools
import json
import os
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from collections import Counter
from collections.abc import Iterator
from datetime import datetime
from pathlib import Path
from types import SimpleNamespace
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))  # the test helpers build the stack and the signed samples

LIMIT = 200
RATE_TABLE = "burst-rate-limit"
USER_AGENT = "Burst benchmark (bench@example.com)"
# template.yaml and the deployed settings, in real seconds (divided by the scale here).
WORKER_TIMEOUT_S = 120
VISIBILITY_S = 720
WORKER_MAX_WAIT_S = 25
CLEANUP_WAIT_S = 60
FEED_CAP = 20
MAX_RECEIVE_COUNT = 5
BATCH_SIZE = 10
PEOPLE_PREFIXES = ("tf.person", "web.person", "csv.person")
CONCURRENCY = 2


def scaled_environment(scale: float) -> dict[str, str]:
    """The worker's time settings, `scale` times shorter (README "Form intake")."""
    return {
        "CLINIKO_MAX_WAIT_SECONDS": f"{WORKER_MAX_WAIT_S / scale:.3f}",
        "MIN_REMAINING_SECONDS": f"{30 / scale:.3f}",
        "RESERVE_SECONDS": f"{10 / scale:.3f}",
        "RETRY_BASE_SECONDS": str(max(1, round(30 / scale))),
        "RETRY_MAX_SECONDS": str(max(1, round(900 / scale))),
        "CLAIM_WAIT_SECONDS": f"{5 / scale:.3f}",
        "CLAIM_TTL_SECONDS": str(max(1, round(120 / scale))),
        "CREATED_SEARCH_SETTLES_SECONDS": f"{3 / scale:.3f}",
        "LOST_CREATE_SETTLES_SECONDS": f"{30 / scale:.3f}",
    }


def scaled_sharing(scale: float) -> Any:
    """SharingPolicy with its time `scale` times shorter (the same requests per period)."""
    from cliniko_automations.cliniko.shared_pacing import SharingPolicy

    return functools.partial(
        SharingPolicy,
        period=60.0 / scale,
        longest_queue=30.0 / scale,
        resume_jitter=1.0 / scale,
        store_retry_after=30.0 / scale,
    )


# The process that started this one (a child's): gone, it writes no stop file.
_PARENT = os.getppid()


def stop_asked(stop_file: str) -> bool:
    """Whether a child is to stop: the parent asked, or died (a test's timeout killed it;
    its children, left running, polled its dead servers for over an hour)."""
    return os.path.exists(stop_file) or os.getppid() != _PARENT


def ready_then_wait(stop_file: str, name: str) -> None:
    """Tell the parent this child is ready (imports done, clients built) and wait for its go:
    the drain is timed from when all start together."""
    Path(f"{stop_file}.ready-{name}").write_text("ready")
    while not os.path.exists(f"{stop_file}.go"):
        if stop_asked(stop_file):
            sys.exit(1)
        time.sleep(0.02)


@contextlib.contextmanager
def queue_lock(path: str) -> Iterator[None]:
    # moto's SQS rebuilds a queue's message list on every delete without a lock, so calls of
    # the two workers at once could bring a deleted message back or drop a received one
    # (tests/integration/intake_worker/resources.py): real SQS does neither.
    with open(path, "a") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


# --- children: one process each, as Lambdas are -----------------------------------------------


def child_worker(index: int, scale: float, stop_file: str, lock_file: str) -> dict[str, Any]:
    """One of the event source's concurrent batches: receive, invoke, delete, until told."""
    import boto3
    from cliniko_automations.common import cliniko_accounts

    cliniko_accounts.SharingPolicy = scaled_sharing(scale)  # type: ignore[misc]
    from cliniko_automations.intake_worker import handler as worker_handler

    from tests.fixtures.apigw import LambdaContext
    from tests.integration.intake_worker.resources import sqs_event

    sqs = boto3.client("sqs")
    queue_url = os.environ["SUBMISSION_QUEUE_URL"]
    queue_arn = sqs.get_queue_attributes(QueueUrl=queue_url, AttributeNames=["QueueArn"])[
        "Attributes"
    ]["QueueArn"]
    timeout_ms = int(WORKER_TIMEOUT_S * 1000 / scale)
    ready_then_wait(stop_file, f"worker{index}")
    batches: list[dict[str, Any]] = []
    receives: dict[str, int] = {}
    while not stop_asked(stop_file):
        asked = time.monotonic()
        with queue_lock(lock_file):
            messages = sqs.receive_message(
                QueueUrl=queue_url,
                MaxNumberOfMessages=BATCH_SIZE,
                WaitTimeSeconds=0,
                AttributeNames=["All"],
                MessageAttributeNames=["All"],
            ).get("Messages", [])
        received = time.monotonic() - asked
        if not messages:
            time.sleep(0.1)
            continue
        for message in messages:
            count = int(message["Attributes"]["ApproximateReceiveCount"])
            receives[message["MessageId"]] = max(receives.get(message["MessageId"], 0), count)
        context = LambdaContext(function_name="IntakeWorkerFunction", timeout_ms=timeout_ms)
        started = time.monotonic()
        answer = worker_handler.lambda_handler(sqs_event(messages, queue_arn), context)
        elapsed = time.monotonic() - started
        failed = {item["itemIdentifier"] for item in answer.get("batchItemFailures", [])}
        overran = elapsed * 1000 > timeout_ms
        # Lambda kills an invocation at its timeout: nothing of the batch is deleted then.
        done = [] if overran else [m for m in messages if m["MessageId"] not in failed]
        for start in range(0, len(done), 10):
            with queue_lock(lock_file):
                sqs.delete_message_batch(
                    QueueUrl=queue_url,
                    Entries=[
                        {"Id": str(i), "ReceiptHandle": m["ReceiptHandle"]}
                        for i, m in enumerate(done[start : start + 10])
                    ],
                )
        batches.append(
            {
                "size": len(messages),
                "failed": len(failed),
                "seconds": elapsed,
                "receive_seconds": received,
                "overran": overran,
                "ended": time.time(),
            }
        )
    return {"worker": index, "batches": batches, "receives": receives}


def child_bulk(kind: str, scale: float, stop_file: str, key: str, ids: list[str]) -> dict:
    """The cleanup (archives in a loop) or the change feed (polls under its cap), at bulk
    priority on the same key's shared budget, as bench_pacing.py's roles."""
    import boto3
    from cliniko_automations.cliniko import ClinikoClient, RetryPolicy, errors
    from cliniko_automations.cliniko.filters import StringFilter
    from cliniko_automations.common.aws import FAIL_FAST
    from cliniko_automations.common.rate_limit_table import DynamoBudgetStore

    store = DynamoBudgetStore(boto3.client("dynamodb", config=FAIL_FAST), RATE_TABLE)
    client = ClinikoClient(
        key,
        USER_AGENT,
        base_url=os.environ["CLINIKO_BASE_URL"],
        retry_policy=RetryPolicy.within(CLEANUP_WAIT_S / scale),
        budget_store=store,
        priority="bulk",
        sharing=scaled_sharing(scale)(),
        **({"requests_per_minute": FEED_CAP, "caller": "changefeed"} if kind == "feed" else {}),
    )
    outcomes: Counter[str] = Counter()
    n = 0
    ready_then_wait(stop_file, kind)
    while not stop_asked(stop_file):
        try:
            if kind == "cleanup":
                client.archive_contact(ids[n % len(ids)])
            else:
                client.list_contacts([StringFilter("email").eq("nobody-feed@example.com")])
            outcomes["ok"] += 1
        except errors.RateLimited as exc:
            # The cleanup gives up a step and goes on later; the feed polls again later.
            outcomes["rate_limited"] += 1
            time.sleep(max(0.0, min((exc.reset_at or 0) - time.time(), 60 / scale)) + 1 / scale)
        except errors.ClinikoError as exc:
            outcomes[type(exc).__name__] += 1
        n += 1
    client.close()
    return {"kind": kind, "outcomes": dict(outcomes)}


def start_child(args: list[str], log: Path) -> subprocess.Popen[bytes]:
    return subprocess.Popen(
        [sys.executable, __file__, "--child", *args],
        cwd=ROOT,
        env=os.environ.copy(),
        stdout=log.open("wb"),
        stderr=subprocess.STDOUT,
    )


def child_result(log: Path) -> dict[str, Any]:
    # The handlers log JSON lines to stdout too; the result is the last line.
    return json.loads(log.read_text().strip().splitlines()[-1])


# --- the parent: servers, stack, deliveries, figures ------------------------------------------


def deliveries(args: argparse.Namespace) -> tuple[list[dict[str, Any]], dict[str, str]]:
    """The HTTP API events of the three scenarios, interleaved as they would arrive, and the
    mobile each person's last row gave (the CSV's second rows carry another)."""
    from tests.fixtures.apigw import form_post_event
    from tests.integration.intake_worker.e2e_world import delivery
    from tests.unit.intake_api import samples

    def again(items: list[Any], share: float, offset: int) -> list[Any]:
        # Each of the first `share` sent again `offset` deliveries later: with two batches of
        # ten received at once, in this batch, the other one or the next.
        out = list(items)
        for n in range(int(len(items) * share)):
            out.insert(min(len(out), 2 * n + offset), items[n])
        return out

    backlog = [delivery("typeform", email=f"tf.person{n}@example.org") for n in range(args.backlog)]
    backlog = again(backlog, args.redeliveries, 3)  # the provider sends them again
    page = [delivery("html", email=f"web.person{n}@example.org") for n in range(args.html)]
    page = again(page, args.redeliveries, 1)  # a double click
    rows = [(n, f"csv.person{n}@example.org", "0412 000 001") for n in range(args.csv)]
    # The same people again, a few rows later, with another phone and their own row key.
    twice = [
        (args.csv + n, f"csv.person{n}@example.org", "0412 000 002")
        for n in range(int(args.csv * args.twice))
    ]
    for n, row in enumerate(twice):
        rows.insert(min(len(rows), 2 * n + 7), row)
    csv = []
    for n, email, mobile in rows:
        body = samples.json_body(email=email, mobile=mobile)
        headers = {
            "Content-Type": "application/json",
            "X-Signature": samples.t_v1_signature(body),
            "Idempotency-Key": f"csv-import-row-{n}",
        }
        csv.append(form_post_event("partner-json", body, headers))
    events: list[dict[str, Any]] = []
    streams = [backlog, page, csv]
    while any(streams):
        for stream in streams:
            if stream:
                events.append(stream.pop(0))
    return events, {}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--scale", type=float, default=3.0, help="time runs this much faster")
    parser.add_argument("--backlog", type=int, default=300)
    parser.add_argument("--html", type=int, default=100)
    parser.add_argument("--csv", type=int, default=1000)
    parser.add_argument("--twice", type=float, default=0.05, help="share of CSV people twice")
    parser.add_argument("--redeliveries", type=float, default=0.2)
    parser.add_argument(
        "--outside-429",
        type=int,
        default=0,
        help="windows of 429s (a whole scaled minute each, two minutes apart) during the drain,"
        " as when something outside the shared budget spends the key's window",
    )
    parser.add_argument(
        "--first-429-after", type=float, default=2.0, help="scaled minutes before the first"
    )
    parser.add_argument(
        "--hourly-ceiling",
        type=int,
        default=0,
        help="each source's hourly ceiling (the template's IntakeSourceHourlyCeiling); 0: none",
    )
    parser.add_argument("--out", type=Path, help="also write the figures there, as JSON")
    parser.add_argument("--no-bulk", action="store_true", help="no cleanup and no change feed")
    parser.add_argument("--json", action="store_true", help="print the figures as JSON")
    parser.add_argument("--child", nargs="+", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.child:
        kind, *rest = args.child
        if kind == "worker":
            result = child_worker(int(rest[0]), float(rest[1]), rest[2], rest[3])
        else:
            ids = json.loads(Path(rest[3]).read_text())
            result = child_bulk(kind, float(rest[0]), rest[1], rest[2], ids)
        print(json.dumps(result))
        return 0
    figures = run(args)
    if args.out:
        args.out.write_text(json.dumps(figures, indent=2))
    if args.json:
        print(json.dumps(figures, indent=2))
    else:
        print_figures(figures)
    return 0 if figures["promises_kept"] else 1


def run(args: argparse.Namespace) -> dict[str, Any]:
    from bench_intake import local_servers

    emulator_options = {"per_minute": LIMIT, "time_scale": args.scale, "log_limit": 1_000_000}
    with (
        local_servers(**emulator_options) as (control, emulator),
        tempfile.TemporaryDirectory() as tmp,
    ):
        return _run(args, control, emulator, Path(tmp))


def _run(args: argparse.Namespace, control: Any, emulator: Any, tmp: Path) -> dict[str, Any]:
    import boto3
    from bench_intake import RealEnvironment
    from cliniko_automations.intake_api import handler as api_handler

    from tests.fixtures.apigw import LambdaContext
    from tests.integration.intake_worker.e2e_world import build_intake_path

    scale = args.scale
    key = "MS0xburstkey0000000000000000-au1"
    control.add_key(key)
    path = build_intake_path(
        SimpleNamespace(api_key=key, base_url_template=emulator.base_url_template),
        RealEnvironment(),
        tmp,
    )
    stack = path.stack
    os.environ.update(scaled_environment(scale))
    os.environ["DEAD_LETTER_QUEUE_URL"] = stack.dead_letter_queue_url
    os.environ["SUBMISSION_QUEUE_URL"] = stack.queue_url
    os.environ["CLINIKO_RATE_LIMIT_TABLE"] = RATE_TABLE
    # The import's source sets `hourly_ceiling: 0` (README "Form intake"); --hourly-ceiling
    # puts every source under one, as a flood meets it.
    os.environ["SOURCE_HOURLY_CEILING"] = str(args.hourly_ceiling)
    boto3.client("dynamodb").create_table(
        TableName=RATE_TABLE,
        AttributeDefinitions=[{"AttributeName": "key_id", "AttributeType": "S"}],
        KeySchema=[{"AttributeName": "key_id", "KeyType": "HASH"}],
        BillingMode="PAY_PER_REQUEST",
    )
    stack.sqs.set_queue_attributes(
        QueueUrl=stack.queue_url,
        Attributes={"VisibilityTimeout": str(max(1, round(VISIBILITY_S / scale)))},
    )
    ids = control.seed(3000, seed=7)
    ids_file = tmp / "cleanup_ids.json"
    ids_file.write_text(json.dumps(ids))
    events, _ = deliveries(args)
    # The deliveries arrive first (in a real minute they outrun the budget by far; here the
    # API's own time, some 80 ms each, would stretch them over many scaled minutes), then the
    # event source and the bulk callers start together: the drain is timed from there.
    statuses: Counter[int] = Counter()
    arriving = time.time()
    with contextlib.redirect_stdout(open(os.devnull, "w")):  # the API's metric lines
        for event in events:
            context = LambdaContext(function_name="IntakeApiFunction")
            statuses[api_handler.lambda_handler(event, context)["statusCode"]] += 1
    arrived = time.time() - arriving
    stop_file, lock_file = str(tmp / "stop"), str(tmp / "queue.lock")
    since = max((entry["seq"] for entry in control.requests()), default=0)
    children: list[tuple[str, Path, subprocess.Popen[bytes]]] = []
    for n in range(CONCURRENCY):
        log = tmp / f"worker{n}.log"
        children.append(
            ("worker", log, start_child(["worker", str(n), str(scale), stop_file, lock_file], log))
        )
    if not args.no_bulk:
        for kind in ("cleanup", "feed"):
            log = tmp / f"{kind}.log"
            child = start_child([kind, str(scale), stop_file, key, str(ids_file)], log)
            children.append((kind, log, child))
    names = [f"worker{n}" for n in range(CONCURRENCY)] + (
        [] if args.no_bulk else ["cleanup", "feed"]
    )
    while not all(os.path.exists(f"{stop_file}.ready-{name}") for name in names):
        time.sleep(0.05)
    started = time.time()
    Path(f"{stop_file}.go").write_text("go")
    if args.outside_429:
        threading.Thread(target=outside_429s, args=(control, args), daemon=True).start()
    # Drained: nothing visible or in flight for a moment (a backed-off message is in flight).
    deadline = started + 3600
    empty_since = None
    while time.time() < deadline:
        if stack.counts(stack.queue_url) == (0, 0):
            empty_since = empty_since or time.time()
            if time.time() - empty_since > 2.0:
                break
        else:
            empty_since = None
        time.sleep(0.2)
    drained = (empty_since or time.time()) - started
    Path(stop_file).write_text("stop")
    results = []
    for kind, log, child in children:
        child.wait(timeout=120)
        results.append((kind, log, child_result(log)))
    log = control.requests(since)
    return figures_of(args, path, stack, control, statuses, events, arrived, drained, results, log)


def outside_429s(control: Any, args: argparse.Namespace) -> None:
    minute = 60.0 / args.scale
    time.sleep(args.first_429_after * minute)
    for n in range(args.outside_429):
        if n:
            time.sleep(2 * minute)
        control.set_faults(throttle_window_s=minute)


def _caller(entry: dict[str, Any]) -> str:
    if entry["path"].endswith("/archive"):
        return "cleanup"
    if "nobody-feed" in entry.get("query_string", ""):
        return "feed"
    return "intake"


def _logged_at(entry: dict[str, Any]) -> float:
    return datetime.fromisoformat(entry["time"].replace("Z", "+00:00")).timestamp()


def _attempt_reasons(log: Path) -> Counter[str]:
    reasons: Counter[str] = Counter()
    for line in log.read_text().splitlines():
        if line.startswith("{") and '"submission attempt failed"' in line:
            reasons[json.loads(line).get("reason", "?")] += 1
    return reasons


def figures_of(
    args: argparse.Namespace,
    path: Any,
    stack: Any,
    control: Any,
    statuses: Counter[int],
    events: list[Any],
    arrived: float,
    drained: float,
    results: list[tuple[str, Path, dict[str, Any]]],
    log: list[dict[str, Any]],
) -> dict[str, Any]:
    from cliniko_automations.cliniko.shared_pacing import SharingPolicy

    scale = args.scale
    minute = 60.0 / scale
    accepted = statuses[202] + statuses[303]
    # Requests per scaled minute, by caller, answered and 429.
    first = min((_logged_at(e) for e in log), default=0.0)
    per_minute: dict[int, Counter[str]] = {}
    for entry in log:
        bucket = int((_logged_at(entry) - first) // minute)
        kind = "429" if entry["status"] == 429 else _caller(entry)
        per_minute.setdefault(bucket, Counter())[kind] += 1
    full_minutes = [per_minute[m] for m in sorted(per_minute)][:-1] or list(per_minute.values())
    throttled = sum(1 for e in log if e["status"] == 429)
    intake_requests = sum(1 for e in log if e["status"] != 429 and _caller(e) == "intake")
    rate = SharingPolicy().rate  # booked a minute
    implied_minutes = intake_requests / rate
    workers = [r for kind, _, r in results if kind == "worker"]
    batches = [b for r in workers for b in r["batches"]]
    most: dict[str, int] = {}
    for r in workers:
        for message_id, count in r["receives"].items():
            most[message_id] = max(most.get(message_id, 0), count)
    receives = Counter(most.values())
    reasons: Counter[str] = Counter()
    for kind, child_log, _ in results:
        if kind == "worker":
            reasons += _attempt_reasons(child_log)
    dead = stack.drain(stack.dead_letter_queue_url)
    parked = stack.drain(stack.parked_queue_url)
    dead_reasons = Counter(
        m.get("MessageAttributes", {}).get("failure_reason", {}).get("StringValue", "redrive")
        for m in dead
    )
    contacts = [c for c in control.contacts(include_archived=False) if c.get("email")]
    by_email = Counter(
        c["email"].lower() for c in contacts if c["email"].lower().startswith(PEOPLE_PREFIXES)
    )
    people = args.backlog + args.html + args.csv
    # The CSV's people sent twice: their contact carries the second row's phone too.
    second_phone = "0412000002"
    twice = {f"csv.person{n}@example.org" for n in range(int(args.csv * args.twice))}
    updated = sum(
        1
        for c in contacts
        if c["email"].lower() in twice
        and any(
            "".join(ch for ch in p.get("number", "") if ch.isdigit()) == second_phone
            for p in c.get("patient_phone_numbers") or c.get("phone_numbers") or []
        )
    )
    duplicated = sum(1 for n in by_email.values() if n > 1)
    missing = people - len(by_email)
    bulk = {r["kind"]: r["outcomes"] for kind, _, r in results if kind != "worker"}
    figures = {
        "scale": scale,
        "deliveries": len(events),
        "accepted": accepted,
        "statuses": dict(statuses),
        "people": people,
        "arrival_seconds_scaled": round(arrived * scale, 1),
        "drain_minutes": round(drained * scale / 60, 2),
        "implied_minutes": round(implied_minutes, 2),
        "drain_vs_implied": round(drained * scale / 60 / implied_minutes, 3)
        if implied_minutes
        else None,
        "requests_per_minute": [dict(c) for c in full_minutes],
        "intake_per_minute_median": statistics.median([c["intake"] for c in full_minutes])
        if full_minutes
        else 0,
        "all_per_minute_median": statistics.median(
            [sum(v for k, v in c.items() if k != "429") for c in full_minutes]
        )
        if full_minutes
        else 0,
        "intake_requests": intake_requests,
        "intake_requests_per_person": round(intake_requests / people, 3),
        "throttled_429": throttled,
        "batches": len(batches),
        "batch_seconds_scaled_p50": round(
            statistics.median(b["seconds"] for b in batches) * scale, 1
        )
        if batches
        else None,
        "batch_seconds_scaled_max": round(max(b["seconds"] for b in batches) * scale, 1)
        if batches
        else None,
        "batches_past_timeout": sum(1 for b in batches if b["overran"]),
        # How much of the drain the two workers spent in invocations (the rest: moto's
        # ReceiveMessage, slow with a thousand messages queued, which real SQS is not).
        "workers_busy_share": round(sum(b["seconds"] for b in batches) / (drained * CONCURRENCY), 3)
        if drained
        else None,
        "receive_seconds_scaled_p50": round(
            statistics.median(b["receive_seconds"] for b in batches) * scale, 2
        )
        if batches
        else None,
        "receives_per_message": dict(sorted(receives.items())),
        "failed_attempts": dict(reasons),
        "dead_letters": dict(dead_reasons),
        "parked": len(parked),
        "contacts_for_people": len(by_email),
        "people_missing": missing,
        "people_duplicated": duplicated,
        "sent_twice": len(twice),
        "sent_twice_with_second_phone": updated,
        "bulk_outcomes": bulk,
    }
    figures["promises_kept"] = (
        accepted == len(events)
        and not dead
        and not parked
        and missing == 0
        and duplicated == 0
        # Each process meets a window of 429s spent outside the budget once at most.
        and throttled <= args.outside_429 * (CONCURRENCY + 2)
        and figures["batches_past_timeout"] == 0
    )
    return figures


def print_figures(f: dict[str, Any]) -> None:
    print(
        f"scale {f['scale']}x; {f['deliveries']} deliveries ({f['people']} people), "
        f"{f['accepted']} accepted {f['statuses']}, arrived in {f['arrival_seconds_scaled']} s"
    )
    print(
        f"drained in {f['drain_minutes']} min; the budget implies {f['implied_minutes']} min "
        f"({f['intake_requests']} intake requests at 192 a minute; "
        f"{f['intake_requests_per_person']} a person): x{f['drain_vs_implied']}"
    )
    print(
        f"requests a minute (median of full minutes): intake {f['intake_per_minute_median']}, "
        f"all callers {f['all_per_minute_median']}; 429s: {f['throttled_429']}"
    )
    for n, minute in enumerate(f["requests_per_minute"]):
        print(f"  minute {n:>3}: {dict(minute)}")
    print(
        f"batches: {f['batches']}, p50 {f['batch_seconds_scaled_p50']} s, max "
        f"{f['batch_seconds_scaled_max']} s (timeout {WORKER_TIMEOUT_S} s), past the timeout: "
        f"{f['batches_past_timeout']}"
    )
    print(
        f"workers in invocations {f['workers_busy_share']:.0%} of the drain; a receive took "
        f"{f['receive_seconds_scaled_p50']} s (p50, scaled)"
    )
    print(f"receives per message: {f['receives_per_message']}")
    print(f"failed attempts by reason: {f['failed_attempts']}")
    print(f"dead letters: {f['dead_letters']}; parked: {f['parked']}")
    print(
        f"contacts: {f['contacts_for_people']} for {f['people']} people; missing "
        f"{f['people_missing']}, duplicated {f['people_duplicated']}; of {f['sent_twice']} "
        f"people sent twice, {f['sent_twice_with_second_phone']} carry the second row's "
        "phone (partner-json updates by fill_blanks: a mobile already there is kept)"
    )
    print(f"cleanup and feed: {f['bulk_outcomes']}")
    print("promises kept" if f["promises_kept"] else "PROMISES BROKEN")


if __name__ == "__main__":
    sys.exit(main())
