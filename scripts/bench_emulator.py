"""How many requests per second the Cliniko emulator serves on this machine.

Starts the emulator in its own process (rate limit off, `--per-minute 0`), seeds contacts,
then for a fixed time per phase sends requests from a few threads over keep-alive
httpx connections: one page of the list (50 contacts), single contacts and creates, with
the openapi.yaml validation on (what tests run with) and off. Prints one line per phase
and a JSON summary.

    python scripts/bench_emulator.py [--seconds 3] [--threads 4] [--contacts 200]
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import threading
import time
from collections.abc import Callable

import httpx
from cliniko_emulator import EmulatorControl

KEY = "MS0xbenchkey-au1"
USER_AGENT = "Emulator benchmark (bench@example.com)"


def start_emulator(validate: bool) -> tuple[subprocess.Popen, str, str]:
    command = [sys.executable, "-m", "cliniko_emulator", "--port", "0", "--key", KEY]
    command += ["--per-minute", "0"]
    if not validate:
        command.append("--no-validate")
    process = subprocess.Popen(command, stdout=subprocess.PIPE, text=True)
    assert process.stdout is not None
    started = json.loads(process.stdout.readline())
    return process, started["url"], started["base_url_template"].format(shard="au1")


def run_phase(
    base: str,
    seconds: float,
    threads: int,
    path_for: Callable[[int], str],
    method: str = "GET",
) -> tuple[float, int, int]:
    """(requests per second, requests, answers not 200/201) over `seconds` from `threads`."""
    stop_at = time.monotonic() + seconds
    counts = [0] * threads
    failures = [0] * threads

    def worker(index: int) -> None:
        with httpx.Client(
            base_url=base, auth=(KEY, ""), headers={"User-Agent": USER_AGENT}, timeout=30
        ) as client:
            n = 0
            while time.monotonic() < stop_at:
                if method == "POST":
                    body = {"first_name": "Bench", "email": f"b{index}.{n}@example.com"}
                    response = client.post(path_for(n), json=body)
                else:
                    response = client.get(path_for(index * 100_000 + n))
                n += 1
                if response.status_code not in (200, 201):
                    failures[index] += 1
            counts[index] = n

    started = time.monotonic()
    pool = [threading.Thread(target=worker, args=(i,)) for i in range(threads)]
    for thread in pool:
        thread.start()
    for thread in pool:
        thread.join()
    elapsed = time.monotonic() - started
    total = sum(counts)
    return total / elapsed, total, sum(failures)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, default=3.0, help="per phase (6 phases)")
    parser.add_argument("--threads", type=int, default=4)
    parser.add_argument("--contacts", type=int, default=200)
    args = parser.parse_args(argv)

    summary: dict[str, float] = {}
    for validate in (True, False):
        process, url, base = start_emulator(validate)
        try:
            with EmulatorControl(url) as control:
                ids = control.seed(args.contacts, seed=1)
            phases = {
                "list": ("GET", lambda n: "/contacts?per_page=50"),
                "get": ("GET", lambda n, ids=ids: f"/contacts/{ids[n % len(ids)]}"),
                "create": ("POST", lambda n: "/contacts"),
            }
            for name, (method, path_for) in phases.items():
                rps, total, failed = run_phase(base, args.seconds, args.threads, path_for, method)
                label = f"{name}_{'validated' if validate else 'unvalidated'}"
                summary[label] = round(rps, 1)
                print(
                    f"{label:22} {rps:8.1f} req/s  ({total} requests, {failed} failed, "
                    f"{args.threads} threads, {args.seconds:g} s)",
                    flush=True,
                )
        finally:
            process.terminate()
            process.wait(timeout=10)
    print(json.dumps({"emulator_requests_per_second": summary}))
    return 0


if __name__ == "__main__":
    sys.exit(main())
