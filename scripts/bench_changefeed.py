"""The change feed's lag (change -> publish) and its cost in Cliniko requests, measured.

Starts the emulator and moto in this process (as the tests do), then runs the feed's real core
and adapters (the typed client, DynamoDB, EventBridge) on a poll interval while changes arrive
at a steady rate, and prints per-change lag percentiles from updated_at to the moment the
change's events were accepted by EventBridge. Then it polls a quiet account and counts the
Cliniko requests each poll made.

updated_at has whole seconds, so each lag includes up to 1 s of that rounding; the poll
interval dominates the rest: with the deployed rate(1 minute), expect p50 ~ 30 s and
p95 ~ 57 s plus the processing time this prints.

    python scripts/bench_changefeed.py [--interval 10] [--seconds 60] [--rate 3] [--quiet-polls 5]
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import logging
import os
import threading
import time
import uuid

import boto3
from cliniko_automations.changefeed.bus import EventBridgeSink
from cliniko_automations.changefeed.changes import FieldHasher
from cliniko_automations.changefeed.cliniko_source import ClinikoContactsSource
from cliniko_automations.changefeed.core import ChangeFeed, lag_percentiles
from cliniko_automations.changefeed.events import EventBuilder
from cliniko_automations.changefeed.store import DynamoFeedStore
from cliniko_automations.cliniko import ClinikoClient
from cliniko_emulator import EmulatorControl, EmulatorServer
from moto.server import ThreadedMotoServer

KEY = "MS0xbenchfeedkey-au1"
USER_AGENT = "Change feed benchmark (bench@example.com)"


def aws(endpoint: str, service: str):
    return boto3.client(
        service,
        endpoint_url=endpoint,
        region_name="eu-west-1",
        aws_access_key_id="bench",
        aws_secret_access_key="bench",  # noqa: S106 - moto's fake credentials
    )


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--interval", type=float, default=10.0, help="seconds between polls")
    parser.add_argument("--seconds", type=float, default=60.0, help="how long changes arrive")
    parser.add_argument("--rate", type=float, default=3.0, help="changes per second")
    parser.add_argument("--quiet-polls", type=int, default=5)
    args = parser.parse_args()

    logging.getLogger("werkzeug").setLevel(logging.WARNING)  # moto's request lines
    moto = ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
    moto.start()
    host, port = moto._server.server_address
    endpoint = f"http://{host}:{port}"
    os.environ.setdefault("AWS_DEFAULT_REGION", "eu-west-1")
    emulator = EmulatorServer(port=0).start()
    control = EmulatorControl(emulator.url)
    control.add_key(KEY)
    try:
        dynamodb = aws(endpoint, "dynamodb")
        dynamodb.create_table(
            TableName="feed",
            AttributeDefinitions=[{"AttributeName": "pk", "AttributeType": "S"}],
            KeySchema=[{"AttributeName": "pk", "KeyType": "HASH"}],
            BillingMode="PAY_PER_REQUEST",
        )
        events = aws(endpoint, "events")
        events.create_event_bus(Name="contacts")
        client = ClinikoClient(KEY, USER_AGENT, base_url=emulator.base_url_template)
        control.churn(200, kinds=["create"], at="2026-01-01T00:00:00Z", seed=1)

        def feed() -> ChangeFeed:
            return ChangeFeed(
                source_for_account=lambda _: ClinikoContactsSource(client),
                store=DynamoFeedStore(dynamodb, "feed", state_days=400),
                sink=EventBridgeSink(events, "contacts"),
                hasher=FieldHasher(b"bench-key-" * 4),
                builder=EventBuilder([], {}, time.time),
                overlap=dt.timedelta(seconds=5),
                run_id=str(uuid.uuid4()),
                lease_seconds=120,
            )

        feed().poll("bench")  # the first run: the cursor starts now
        stop = threading.Event()

        def churn() -> None:
            seed = 10
            while not stop.is_set():
                control.churn(1, seed=seed, distinct=True)
                seed += 1
                stop.wait(1 / args.rate)

        thread = threading.Thread(target=churn, daemon=True)
        thread.start()
        lags: list[float] = []
        changes = requests = 0
        deadline = time.monotonic() + args.seconds
        while True:
            next_poll = time.monotonic() + args.interval
            result = feed().poll("bench")
            lags += result.lags
            changes += result.changes
            requests += result.requests
            if time.monotonic() > deadline:
                break
            time.sleep(max(0.0, next_poll - time.monotonic()))
        stop.set()
        thread.join()
        result = feed().poll("bench")  # what arrived during the last poll
        lags += result.lags
        changes += result.changes
        percentiles = lag_percentiles(lags)

        quiet = []
        for _ in range(args.quiet_polls):
            before = control.counters()["total"]
            feed().poll("bench")
            quiet.append(control.counters()["total"] - before)
        summary = {
            "poll_interval_seconds": args.interval,
            "changes_published": changes,
            "lag_p50_seconds": round(percentiles.get("p50", 0.0), 2),
            "lag_p95_seconds": round(percentiles.get("p95", 0.0), 2),
            "lag_max_seconds": round(max(lags), 2) if lags else None,
            "requests_while_changing": requests,
            "requests_per_quiet_poll": quiet,
        }
        print(
            f"interval {args.interval:.0f}s, {changes} changes: lag p50 "
            f"{summary['lag_p50_seconds']}s, p95 {summary['lag_p95_seconds']}s; "
            f"quiet polls cost {quiet} Cliniko requests"
        )
        print(json.dumps(summary))
        client.close()
    finally:
        control.close()
        emulator.stop()
        moto.stop()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
