"""Rate limiting per key and injected faults, over real HTTP."""

from __future__ import annotations

import math
import time
from datetime import UTC, datetime

import httpx
import pytest

from tests.fixtures.emulator import USER_AGENT


def test_rate_limit_per_key_with_reset_header(http: httpx.Client, cliniko) -> None:
    cliniko.control.set_rate_limit(per_minute=5)
    statuses = [http.get("/contacts").status_code for _ in range(7)]
    assert statuses == [200] * 5 + [429] * 2
    throttled = http.get("/contacts")
    reset = int(throttled.headers["X-RateLimit-Reset"])
    assert time.time() < reset <= math.ceil(time.time() + 60)
    # Another key (another Cliniko user) has its own budget.
    cliniko.control.add_key("MS0xsecondkey-au1")
    other = httpx.get(
        f"{cliniko.base_url()}/contacts",
        auth=("MS0xsecondkey-au1", ""),
        headers={"User-Agent": USER_AGENT},
    )
    assert other.status_code == 200
    counters = cliniko.control.counters()
    assert counters["by_status"]["429"] == 3


def test_time_scale_shrinks_the_minute(http: httpx.Client, cliniko) -> None:
    cliniko.control.set_rate_limit(per_minute=2, time_scale=60)  # a one-second "minute"
    statuses = []
    while 429 not in statuses and len(statuses) < 100:  # no assumption on this machine's speed
        statuses.append(http.get("/contacts").status_code)
    assert statuses[-1] == 429 and statuses[:2] == [200, 200]
    reset = int(http.get("/contacts").headers["X-RateLimit-Reset"])
    assert reset <= math.ceil(time.time() + 1)
    while time.time() < reset:  # the header is the window end in real UNIX seconds
        time.sleep(0.05)
    assert http.get("/contacts").status_code == 200


def test_rate_limit_disabled(http: httpx.Client, cliniko) -> None:
    cliniko.control.set_rate_limit(per_minute=0)
    assert {http.get("/contacts").status_code for _ in range(250)} == {200}
    assert cliniko.control.rate_limit() == {"per_minute": 0, "time_scale": 1.0}


def test_default_rate_limit_is_200_a_minute(http: httpx.Client, cliniko) -> None:
    assert cliniko.control.rate_limit() == {"per_minute": 200, "time_scale": 1.0}
    statuses = [http.get("/contacts/1").status_code for _ in range(201)]
    assert statuses.count(404) == 200 and statuses[-1] == 429


def test_error_rate_is_seeded_and_reproducible(http: httpx.Client, cliniko) -> None:
    def run() -> list[int]:
        cliniko.control.set_faults(error_rate=0.5, statuses=[500, 502, 504], seed=7)
        return [http.get("/contacts").status_code for _ in range(40)]

    first = run()
    assert first == run()
    assert set(first) == {200, 500, 502, 504}
    cliniko.control.clear_faults()
    assert {http.get("/contacts").status_code for _ in range(10)} == {200}


def test_injected_errors_are_not_always_json(http: httpx.Client, cliniko) -> None:
    cliniko.control.set_faults(fail_next=[502, 504, 500])
    bad_gateway = http.get("/contacts")
    assert bad_gateway.status_code == 502 and bad_gateway.text.startswith("<html>")
    assert http.get("/contacts").status_code == 504
    assert http.get("/contacts").json()["message"]
    assert http.get("/contacts").status_code == 200


def test_dropped_connection_has_no_answer(http: httpx.Client, cliniko) -> None:
    cliniko.control.set_faults(fail_next=["drop"])
    with pytest.raises(httpx.RemoteProtocolError):
        http.get("/contacts")
    assert http.get("/contacts").status_code == 200
    log = cliniko.control.requests()
    assert [e["status"] for e in log] == ["dropped", 200]
    assert cliniko.control.counters()["by_status"]["dropped"] == 1


def test_drop_rate(http: httpx.Client, cliniko) -> None:
    cliniko.control.set_faults(drop_rate=1.0)
    with pytest.raises(httpx.RemoteProtocolError):
        http.get("/contacts")


def test_error_after_effect_still_creates(http: httpx.Client, cliniko) -> None:
    cliniko.control.set_faults(fail_next=[504], after_effect=True)
    response = http.post("/contacts", json={"first_name": "Ghost"})
    assert response.status_code == 504
    assert [c["first_name"] for c in cliniko.control.contacts()] == ["Ghost"]
    cliniko.control.set_faults(fail_next=[502])
    assert http.post("/contacts", json={"first_name": "Never"}).status_code == 502
    assert len(cliniko.control.contacts()) == 1


def test_commit_then_drop_and_a_share_of_faults_after_effect(http: httpx.Client, cliniko) -> None:
    cliniko.control.set_faults(fail_next=["drop_after", "drop"], methods=["POST"])
    for name in ("Committed", "Refused"):
        with pytest.raises(httpx.RemoteProtocolError):
            http.post("/contacts", json={"first_name": name})
    assert [c["first_name"] for c in cliniko.control.contacts()] == ["Committed"]
    # Half of the random faults after the write, half before; the log says which.
    cliniko.control.set_faults(error_rate=1.0, statuses=[500], after_effect_rate=0.5, seed=7)
    answers = [http.post("/contacts", json={"first_name": f"N{n}"}) for n in range(40)]
    assert {a.status_code for a in answers} == {500}
    faults = [e["fault"] for e in cliniko.control.requests()[2:]]
    committed = faults.count("error 500 after effect")
    assert committed + faults.count("error 500") == 40 and 10 <= committed <= 30
    assert len(cliniko.control.contacts()) == 1 + committed
    assert [e["fault"] for e in cliniko.control.requests()[:2]] == ["drop after effect", "drop"]


def test_the_clock_moves_creation_times_forward(http: httpx.Client, cliniko) -> None:
    def days_ahead() -> float:
        created = http.post("/contacts", json={"first_name": "Later"}).json()["created_at"]
        moment = datetime.fromisoformat(created.replace("Z", "+00:00"))
        return (moment - datetime.now(UTC)).total_seconds() / 86400

    assert cliniko.control.set_clock(3 * 86400) == 3 * 86400
    assert 2.99 < days_ahead() < 3.01
    cliniko.control.reset()  # back to the real time
    cliniko.control.add_key(cliniko.api_key)
    assert abs(days_ahead()) < 0.01


def test_a_throttled_request_never_takes_effect(http: httpx.Client, cliniko) -> None:
    cliniko.control.set_faults(fail_next=[429], after_effect=True)
    response = http.post("/contacts", json={"first_name": "Refused"})
    assert response.status_code == 429
    assert cliniko.control.contacts() == []


def test_faults_only_for_chosen_methods(http: httpx.Client, cliniko) -> None:
    cliniko.control.set_faults(error_rate=1.0, statuses=[503], methods=["POST"])
    assert http.get("/contacts").status_code == 200
    assert http.post("/contacts", json={"first_name": "A"}).status_code == 503


def test_throttle_window(http: httpx.Client, cliniko) -> None:
    cliniko.control.set_faults(throttle_window_s=30)
    for _ in range(3):
        response = http.get("/contacts")
        assert response.status_code == 429
        reset = int(response.headers["X-RateLimit-Reset"])
        assert time.time() < reset <= math.ceil(time.time() + 31)
    cliniko.control.clear_faults()  # new settings end the window
    assert http.get("/contacts").status_code == 200


def test_latency_is_added(http: httpx.Client, cliniko) -> None:
    cliniko.control.set_faults(latency_ms=150)
    started = time.monotonic()
    http.get("/contacts")
    assert time.monotonic() - started >= 0.15  # a lower bound only: never flaky


def test_faults_never_touch_the_inspection_api(http: httpx.Client, cliniko) -> None:
    cliniko.control.set_faults(error_rate=1.0, drop_rate=0.0, throttle_window_s=60)
    for _ in range(5):
        assert cliniko.control.counters()["total"] == 0
        assert cliniko.control.contacts() == []
    cliniko.control.set_rate_limit(per_minute=1)
    for _ in range(5):
        cliniko.control.requests()


def test_bad_fault_settings_are_refused(cliniko) -> None:
    with pytest.raises(RuntimeError, match="400"):
        cliniko.control.set_faults(error_rate=1.5)
    with pytest.raises(RuntimeError, match="400"):
        cliniko.control.set_faults(statuses=[404])
