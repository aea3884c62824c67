#!/usr/bin/env python3
"""Benchmark the form intake end to end, in process, against moto and the Cliniko emulator.

    python scripts/bench_intake.py [--submissions 150] [--redeliveries 0.1] [--json]

Prints:
- intake API handler time per request (median, p95), a genuine HTTP API v2 event in, the
  SQS write included (moto on 127.0.0.1, so network time is near zero);
- worker handler time per message (median, p95 over batches of ten);
- Cliniko requests per created contact (the floor is 2: one lookup, one create), and per
  submission when a share of the deliveries are provider redeliveries (answered from the
  idempotency record, no Cliniko request);
- peak memory of each function: the process's peak RSS (what Lambda reports as "Max Memory
  Used" includes the interpreter and imports) and the peak of Python allocations during one
  invocation (tracemalloc).

Each function runs in its own fresh Python process (like a Lambda container), so one's
imports and allocations do not count against the other; moto and the emulator run in this
process. Nothing leaves 127.0.0.1.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import logging
import os
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path
from types import SimpleNamespace
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))  # the test helpers build the stack and the signed samples

PROVIDERS = ("typeform", "json", "formspree", "html")  # their sample ids follow the email
MEMORY_SAMPLES = 20


def percentile(values: list[float], share: float) -> float:
    ordered = sorted(values)
    index = min(len(ordered) - 1, max(0, round(share * len(ordered)) - 1))
    return ordered[index]


def summary(values: list[float]) -> dict[str, float]:
    return {
        "median_ms": round(statistics.median(values) * 1000, 2),
        "p95_ms": round(percentile(values, 0.95) * 1000, 2),
        "n": len(values),
    }


# --- children: one function each, in a fresh interpreter -------------------------------------


def _peak_rss_mb() -> float:
    # VmHWM is this process's own high-water mark. ru_maxrss is not: Linux carries the
    # parent's peak (here moto and the emulator) across fork and exec into the child.
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return round(int(line.split()[1]) / 1024, 1)  # in kB
    raise RuntimeError("/proc/self/status has no VmHWM (Linux only)")


def child_api(events_file: str) -> dict[str, Any]:
    import tracemalloc

    started = time.perf_counter()
    from cliniko_automations.intake_api import handler as api_handler

    from tests.fixtures.apigw import LambdaContext

    import_s = time.perf_counter() - started
    events = json.loads(Path(events_file).read_text())
    timed, traced = events[:-MEMORY_SAMPLES], events[-MEMORY_SAMPLES:]
    times, statuses = [], []
    for event in timed:
        context = LambdaContext(function_name="IntakeApiFunction")
        t0 = time.perf_counter()
        answer = api_handler.lambda_handler(event, context)
        times.append(time.perf_counter() - t0)
        statuses.append(answer["statusCode"])
    tracemalloc.start()
    peak = 0
    for event in traced:
        tracemalloc.reset_peak()
        answer = api_handler.lambda_handler(event, LambdaContext(function_name="IntakeApiFunction"))
        statuses.append(answer["statusCode"])
        peak = max(peak, tracemalloc.get_traced_memory()[1])
    tracemalloc.stop()
    return {
        "import_s": import_s,
        "first_s": times[0],
        "times": times[1:],
        "statuses": statuses,
        "peak_rss_mb": _peak_rss_mb(),
        "peak_traced_mb": round(peak / 2**20, 2),
    }


def child_worker(_unused: str) -> dict[str, Any]:
    import tracemalloc

    started = time.perf_counter()
    from cliniko_automations.intake_worker import handler as worker_handler

    from tests.fixtures.apigw import LambdaContext
    from tests.integration.intake_worker.resources import WORKER_TIMEOUT_MS, poll_once

    import_s = time.perf_counter() - started
    stack = _existing_stack()
    per_message, batches, messages_seen = [], 0, 0
    first_s = None
    traced_batches = 0
    peak = 0
    while True:
        trace = batches % 5 == 4 and traced_batches < MEMORY_SAMPLES
        if trace:
            tracemalloc.start()
        t0 = time.perf_counter()
        context = LambdaContext(function_name="IntakeWorkerFunction", timeout_ms=WORKER_TIMEOUT_MS)
        messages, failed = poll_once(stack, worker_handler.lambda_handler, context)
        elapsed = time.perf_counter() - t0
        if trace:
            peak = max(peak, tracemalloc.get_traced_memory()[1])
            tracemalloc.stop()
            traced_batches += 1
        if not messages:
            if stack.counts(stack.queue_url) == (0, 0):
                break
            time.sleep(0.2)
            continue
        if failed:
            raise SystemExit(f"{len(failed)} messages failed: the bench expects a healthy Cliniko")
        batches += 1
        messages_seen += len(messages)
        if first_s is None:
            first_s = elapsed / len(messages)
        elif not trace:
            per_message += [elapsed / len(messages)] * len(messages)
    return {
        "import_s": import_s,
        "first_s": first_s,
        "times": per_message,
        "messages": messages_seen,
        "peak_rss_mb": _peak_rss_mb(),
        "peak_traced_mb": round(peak / 2**20, 2),
    }


def _existing_stack():
    import boto3

    from tests.integration.intake_worker.resources import WorkerStack

    sqs, dynamodb = boto3.client("sqs"), boto3.client("dynamodb")
    queue_url = os.environ["SUBMISSION_QUEUE_URL"]
    arn = sqs.get_queue_attributes(QueueUrl=queue_url, AttributeNames=["QueueArn"])
    return WorkerStack(
        idempotency_table=os.environ["IDEMPOTENCY_TABLE"],
        ledger_table=os.environ["LEDGER_TABLE"],
        queue_url=queue_url,
        queue_arn=arn["Attributes"]["QueueArn"],
        dead_letter_queue_url=os.environ.get("DEAD_LETTER_QUEUE_URL", ""),
        parked_queue_url=os.environ["PARKED_QUEUE_URL"],
        submission_table=os.environ["SUBMISSION_TABLE"],
        sqs=sqs,
        dynamodb=dynamodb,
    )


def run_child(kind: str, argument: str) -> dict[str, Any]:
    answer = subprocess.run(
        [sys.executable, __file__, "--child", kind, argument],
        cwd=ROOT,
        env=os.environ.copy(),
        capture_output=True,
        text=True,
        check=False,
    )
    if answer.returncode != 0:
        sys.stderr.write(answer.stderr[-4000:])
        raise SystemExit(f"the {kind} run failed")
    # The handlers log JSON to stdout; the result is the last line.
    return json.loads(answer.stdout.strip().splitlines()[-1])


# --- the parent: servers, stack, workload, figures -------------------------------------------


class RealEnvironment:
    """The two monkeypatch methods the test helpers use, on the real environment."""

    def setenv(self, name: str, value: str) -> None:
        os.environ[name] = value

    def delenv(self, name: str, raising: bool = True) -> None:
        os.environ.pop(name, None)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="Benchmark the form intake in process.")
    # The client paces itself to Cliniko's 200 requests a minute per key (two clinics here):
    # more submissions than that budget allows would measure the pacing, not the code.
    parser.add_argument("--submissions", type=int, default=150)
    parser.add_argument(
        "--redeliveries", type=float, default=0.1, help="share of deliveries sent twice"
    )
    parser.add_argument("--json", action="store_true", help="print the figures as JSON")
    parser.add_argument("--child", nargs=2, metavar=("KIND", "ARG"), help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.child:
        kind, argument = args.child
        result = child_api(argument) if kind == "api" else child_worker(argument)
        print(json.dumps(result))
        return 0

    with local_servers() as (control, emulator):
        key = "MS0xbenchkey000000000000000-au1"
        control.add_key(key)
        control.set_rate_limit(per_minute=None)  # Cliniko's pacing is not what is measured
        return _bench(args, control, emulator, key)


@contextlib.contextmanager
def local_servers(**emulator_options: Any) -> Iterator[tuple[Any, Any]]:
    """A moto server on 127.0.0.1 that AWS_ENDPOINT_URL names (bench credentials and region in
    the environment) and the Cliniko emulator (`emulator_options` its own), as (control,
    emulator), stopped as the block ends; their request logs silenced."""
    os.environ.update(
        {
            "AWS_DEFAULT_REGION": "eu-west-1",
            "AWS_ACCESS_KEY_ID": "bench",
            "AWS_SECRET_ACCESS_KEY": "bench",
            "POWERTOOLS_METRICS_NAMESPACE": "ClinikoAutomationsBench",
            # The figures are about the code, not about logging throughput.
            "POWERTOOLS_LOG_LEVEL": "WARNING",
        }
    )
    os.environ.pop("AWS_PROFILE", None)
    from cliniko_emulator import EmulatorControl, EmulatorServer
    from moto.server import ThreadedMotoServer

    moto = ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
    moto.start()
    host, port = moto.get_host_and_port()
    os.environ["AWS_ENDPOINT_URL"] = f"http://{host}:{port}"
    emulator = EmulatorServer(port=0, **emulator_options).start()
    control = EmulatorControl(emulator.url)
    # The stand-in servers log each request they serve; those lines are not the figures.
    werkzeug_log = logging.getLogger("werkzeug")
    werkzeug_log.setLevel(logging.ERROR)
    werkzeug_log.handlers.clear()
    try:
        yield control, emulator
    finally:
        control.close()
        emulator.stop()
        moto.stop()


def _bench(args: argparse.Namespace, control: Any, emulator: Any, key: str) -> int:
    import boto3
    from cliniko_automations.common.accounts import load_accounts

    from tests.integration.intake_worker.e2e_world import build_intake_path, delivery

    cliniko = SimpleNamespace(api_key=key, base_url_template=emulator.base_url_template)
    with tempfile.TemporaryDirectory() as tmp:
        path = build_intake_path(cliniko, RealEnvironment(), Path(tmp))
        # One key per clinic, as deployed: each has its own 200-a-minute budget.
        secrets = boto3.client("secretsmanager")
        accounts = load_accounts(os.environ["CLINIKO_ACCOUNTS_FILE"])
        for n, (_where, secret) in enumerate(accounts.secret_references()):
            own_key = f"MS0xbenchkey{n:02d}0000000000000-au1"
            control.add_key(own_key)
            secrets.put_secret_value(SecretId=secret, SecretString=own_key)
        os.environ["DEAD_LETTER_QUEUE_URL"] = path.stack.dead_letter_queue_url
        os.environ["SUBMISSION_QUEUE_URL"] = path.stack.queue_url
        total = args.submissions + MEMORY_SAMPLES
        events = []
        for n in range(total):
            email = f"bench.person{n}@example.org"
            events.append(delivery(PROVIDERS[n % len(PROVIDERS)], email=email))
        redelivered = int(args.submissions * args.redeliveries)
        # Redeliveries go first in the timed part, so every one is a real duplicate later on.
        events = events[:redelivered] + events[: args.submissions] + events[args.submissions :]
        events_file = Path(tmp) / "events.json"
        events_file.write_text(json.dumps(events))

        api = run_child("api", str(events_file))
        accepted = sum(1 for s in api["statuses"] if s in (202, 303))
        before = control.counters()
        worker = run_child("worker", "-")
        after = control.counters()

    contacts = len(control.contacts())
    requests = after["total"] - before["total"]
    by_method = {
        method: after["by_method"].get(method, 0) - before["by_method"].get(method, 0)
        for method in after["by_method"]
    }
    figures = {
        "deliveries": len(events),
        "accepted": accepted,
        "unique_submissions": total,
        "intake_api_handler": summary(api["times"])
        | {"first_call_ms": round(api["first_s"] * 1000, 2)},
        "worker_handler_per_message": summary(worker["times"])
        | {"first_call_ms": round(worker["first_s"] * 1000, 2)},
        "contacts_created": contacts,
        "cliniko_requests": requests,
        "cliniko_requests_by_method": by_method,
        "cliniko_requests_per_created_contact": round(requests / contacts, 3) if contacts else None,
        "cliniko_requests_per_delivery": round(requests / worker["messages"], 3),
        "peak_memory": {
            "intake_api": {
                "process_peak_rss_mb": api["peak_rss_mb"],
                "invocation_peak_python_mb": api["peak_traced_mb"],
                "import_s": round(api["import_s"], 3),
            },
            "worker": {
                "process_peak_rss_mb": worker["peak_rss_mb"],
                "invocation_peak_python_mb": worker["peak_traced_mb"],
                "import_s": round(worker["import_s"], 3),
            },
        },
    }
    if args.json:
        print(json.dumps(figures, indent=2))
        return 0
    api_t, worker_t = figures["intake_api_handler"], figures["worker_handler_per_message"]
    memory = figures["peak_memory"]
    print(f"deliveries: {len(events)} ({redelivered} redelivered), accepted {accepted}")
    print(
        f"intake API handler: median {api_t['median_ms']} ms, p95 {api_t['p95_ms']} ms "
        f"(n={api_t['n']}; first call {api_t['first_call_ms']} ms)"
    )
    print(
        f"worker handler per message: median {worker_t['median_ms']} ms, p95 "
        f"{worker_t['p95_ms']} ms (n={worker_t['n']}; first {worker_t['first_call_ms']} ms)"
    )
    print(
        f"Cliniko requests: {requests} for {contacts} created contacts = "
        f"{figures['cliniko_requests_per_created_contact']} per created contact (floor 2); "
        f"{figures['cliniko_requests_per_delivery']} per delivery; by method {by_method}"
    )
    for name, values in memory.items():
        print(
            f"peak memory {name}: process RSS {values['process_peak_rss_mb']} MB, "
            f"one invocation {values['invocation_peak_python_mb']} MB of Python allocations "
            f"(imports {values['import_s']} s)"
        )
    return 0


if __name__ == "__main__":
    sys.exit(main())
