"""`python -m cliniko_emulator --port 8080 [--state-file f.json] [--key KEY ...]`."""

from __future__ import annotations

import argparse
import contextlib
import json
import signal
import sys

from .faults import FaultSettings
from .server import EmulatorServer


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="python -m cliniko_emulator",
        description="Cliniko contacts API emulator on 127.0.0.1 (inspection API at /_emulator/).",
    )
    parser.add_argument("--port", type=int, default=8080, help="0 picks a free port")
    parser.add_argument(
        "--state-file", help="JSON file that keeps contacts and keys across restarts"
    )
    parser.add_argument("--key", action="append", default=[], help="API key to accept (repeatable)")
    parser.add_argument("--per-minute", type=int, default=200, help="rate limit per key; 0: none")
    parser.add_argument(
        "--time-scale", type=float, default=1.0, help="60 makes a minute one second"
    )
    parser.add_argument(
        "--error-rate", type=float, default=0.0, help="share of 500/502/504 answers"
    )
    parser.add_argument("--error-statuses", default="500,502,504", help="comma-separated statuses")
    parser.add_argument("--latency-ms", type=int, default=0, help="added to every Cliniko answer")
    parser.add_argument("--drop-rate", type=float, default=0.0, help="share of dropped connections")
    parser.add_argument(
        "--throttle-window-s", type=float, default=0.0, help="429 everything for this long"
    )
    parser.add_argument("--fault-seed", type=int, default=None, help="seed of the fault RNG")
    parser.add_argument(
        "--fault-after-effect", action="store_true", help="faults after the write took effect"
    )
    parser.add_argument("--no-validate", action="store_true", help="skip openapi.yaml validation")
    parser.add_argument(
        "--strict", action="store_true", help="answer 500 when a response violates the spec"
    )
    parser.add_argument(
        "--spec", help="openapi.yaml to validate against (default: the repository's)"
    )
    parser.add_argument(
        "--archived-get",
        choices=("visible", "hidden"),
        default="visible",
        help="GET of an archived contact: 200 with archived_at (default) or 404",
    )
    parser.add_argument("--verbose", action="store_true", help="log every request to stderr")
    return parser.parse_args(argv)


def _interrupt(*_: object) -> None:
    raise KeyboardInterrupt


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    server = EmulatorServer(
        port=args.port,
        verbose=args.verbose,
        keys=args.key,
        state_file=args.state_file,
        per_minute=args.per_minute,
        time_scale=args.time_scale,
        validate=not args.no_validate,
        strict=args.strict,
        spec_path=args.spec,
        archived_get=args.archived_get,
    )
    faults = FaultSettings(
        error_rate=args.error_rate,
        statuses=[int(s) for s in args.error_statuses.split(",") if s.strip()],
        latency_ms=args.latency_ms,
        drop_rate=args.drop_rate,
        throttle_window_s=args.throttle_window_s,
        after_effect=args.fault_after_effect,
        seed=args.fault_seed,
    )
    try:
        server.app.faults.configure(faults.__dict__)
    except ValueError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    # serve_forever runs in this thread, so stop by unwinding it (shutdown() would deadlock).
    signal.signal(signal.SIGTERM, _interrupt)
    print(
        json.dumps({"url": server.url, "base_url_template": server.base_url_template}),
        flush=True,
    )
    with contextlib.suppress(KeyboardInterrupt):
        server.serve_forever()
    server.close()
    return 0


if __name__ == "__main__":
    sys.exit(main())
