"""A request ends within the time its invocation leaves it (`time_left`), retries included:
against a slow emulator, a server that trickles its answer, and no time at all. Timing here is
a bound of seconds against a wait of ten or more, not a measurement."""

from __future__ import annotations

import random
import socket
import threading
import time
from collections.abc import Iterator

import pytest
from cliniko_automations.cliniko import ClinikoClient, RetryPolicy, errors

from tests.fixtures.emulator import USER_AGENT
from tests.unit.cliniko.fake_clock import FakeClock


def within(seconds: float):
    deadline = time.monotonic() + seconds
    return lambda: deadline - time.monotonic()


def test_a_slow_cliniko_is_given_up_on_when_the_time_left_runs_out(cliniko):
    # Every answer takes 4 s; the client's own read timeout (10 s) and four tries would wait
    # some 40 s, past a 29 s Lambda. With 3 s left, it stops there.
    cliniko.control.set_faults(latency_ms=4000)
    client = cliniko.client(time_left=within(3.0))
    started = time.monotonic()
    with pytest.raises(errors.ConnectionFailed):
        client.list_contacts()
    assert time.monotonic() - started < 3.9  # not the 4 s answer, nor four of them
    # The emulator still answers the request given up on: let it, before the next test.
    deadline = time.monotonic() + 10
    while not cliniko.control.requests() and time.monotonic() < deadline:
        time.sleep(0.05)


def test_no_attempt_starts_with_less_than_a_second_left(cliniko):
    client = cliniko.client(time_left=lambda: 0.5)
    with pytest.raises(errors.OutOfTime):
        client.create_contact({"first_name": "Ana", "last_name": "Lima"})
    assert cliniko.control.requests() == []  # nothing was sent


def test_no_backoff_starts_that_would_leave_less_than_a_second(cliniko):
    # 1.2 s left and a 503: any backoff over 0.2 s would end with too little left for an
    # attempt (and, on a real clock, past the Lambda's timeout): the error comes at once.
    clock = FakeClock()
    deadline = clock.monotonic() + 1.2
    client = cliniko.client(
        clock=clock,
        rng=random.Random(1),
        retry_policy=RetryPolicy(backoff_base=8.0),
        time_left=lambda: deadline - clock.monotonic(),
    )
    cliniko.control.set_faults(fail_next=[503])
    with pytest.raises(errors.ServerError):
        client.list_contacts()
    assert clock.sleeps == []
    assert len(cliniko.control.requests()) == 1


def test_no_pacing_wait_starts_that_would_leave_less_than_a_second(cliniko):
    # The key's next slot is 2.5 s off with 3 s left: waited for, the request would find 0.5 s
    # and send nothing anyway. Said at once, as a throttle, with nothing slept.
    clock = FakeClock()
    deadline = clock.monotonic() + 600.0
    client = cliniko.client(
        clock=clock, requests_per_minute=2, time_left=lambda: deadline - clock.monotonic()
    )
    client.list_contacts()
    client.list_contacts()
    clock.advance(57.5)
    deadline = clock.monotonic() + 3.0

    with pytest.raises(errors.RateLimited) as caught:
        client.list_contacts()

    assert caught.value.status_code is None  # our own budget said no; Cliniko never saw it
    assert clock.sleeps == []
    assert len(cliniko.control.requests()) == 2


def test_the_pacing_wait_after_a_429_is_bounded_by_the_time_left(cliniko):
    # 45 s left: 20 s waited for the key's slot, a 429 whose reset a second off fits the
    # 25 s left, and then no slot for 40 s more. Slept, the invocation would end mid-wait
    # (OutOfTime at best, on a real clock a Lambda killed): said at once, nothing slept.
    clock = FakeClock()
    deadline = clock.monotonic() + 600.0
    client = cliniko.client(
        clock=clock, requests_per_minute=2, time_left=lambda: deadline - clock.monotonic()
    )
    client.list_contacts()
    clock.advance(40)
    client.list_contacts()
    deadline = clock.monotonic() + 45.0
    cliniko.control.set_faults(fail_next=[429])

    with pytest.raises(errors.RateLimited) as caught:
        client.list_contacts()

    assert caught.value.status_code is None  # our own budget said no to the re-send
    assert clock.sleeps == [pytest.approx(20.0)]
    assert len(cliniko.control.requests()) == 3


def test_a_client_kept_across_invocations_takes_each_one_s_time_left(cliniko):
    client = cliniko.client(time_left=lambda: 0.5)
    client.finish_within(None)
    assert client.list_contacts() == []


@pytest.fixture(params=["body", "headers"])
def trickling_server(request) -> Iterator[str]:
    """An HTTP server on 127.0.0.1 that answers 200 and sends its body (or its status line and
    headers) a byte every 0.2 s: each read comes well inside any read timeout, the whole answer
    in some 20 s."""
    listener = socket.create_server(("127.0.0.1", 0))
    stop = threading.Event()

    def serve() -> None:
        listener.settimeout(0.2)
        while not stop.is_set():
            try:
                conn, _ = listener.accept()
            except TimeoutError:
                continue
            with conn:
                conn.recv(65536)
                body = b'{"contacts": [], "total_entries": 0, "links": {}}' + b" " * 50
                head = (
                    b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\n"
                    b"Content-Length: %d\r\n\r\n" % len(body)
                )
                fast, slow = (head, body) if request.param == "body" else (b"", head + body)
                conn.sendall(fast)
                for byte in slow:
                    if stop.is_set():
                        return
                    try:
                        conn.sendall(bytes([byte]))
                    except OSError:
                        break
                    time.sleep(0.2)

    thread = threading.Thread(target=serve, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{listener.getsockname()[1]}/{{shard}}/v1"
    stop.set()
    thread.join(5)
    listener.close()


def test_an_answer_trickled_a_byte_at_a_time_is_cut_off_when_the_time_left_runs_out(
    trickling_server,
):
    client = ClinikoClient(
        "MS0xtesttrickle-au1",
        USER_AGENT,
        base_url=trickling_server,
        timeout=5.0,
        time_left=within(3.0),
    )
    started = time.monotonic()
    with pytest.raises(errors.ConnectionFailed):
        client.list_contacts()
    assert time.monotonic() - started < 4.0
    client.close()
