"""429s, 5xx, drops and timeouts against the emulator's deterministic faults.

Waiting is checked with an injected clock: the client "sleeps" on it, the test reads how long
and until when, and nothing here depends on how fast the machine is.
"""

from __future__ import annotations

import math
import random
import time
from datetime import datetime

import pytest
from cliniko_automations.cliniko import ClinikoClient, RetryPolicy, errors
from cliniko_automations.cliniko.transport import LONGEST_HOLD_SECONDS, UNKNOWN_RESET_SECONDS

from tests.integration.cliniko.test_contacts import scripted_client
from tests.integration.common.test_http_transport import answer
from tests.unit.cliniko.fake_clock import FakeClock

EMPTY_LIST = b'{"contacts": [], "total_entries": 0, "links": {"self": "x"}}'


def _statuses(cliniko, method: str | None = None) -> list[object]:
    return [
        r["status"] for r in cliniko.control.requests() if method is None or r["method"] == method
    ]


def _settle(cliniko, entries: int) -> list[dict]:
    """Wait (bounded) until the emulator has logged `entries` requests: a request the client
    gave up on (a timeout) is still being answered, and must not spill into the next test."""
    deadline = time.monotonic() + 10
    while True:
        log = cliniko.control.requests()
        if len(log) >= entries or time.monotonic() > deadline:
            return log
        time.sleep(0.05)


def _logged_at(entry: dict) -> float:
    return datetime.fromisoformat(entry["time"].replace("Z", "+00:00")).timestamp()


# -- 429 -------------------------------------------------------------------------------------


def test_429_waits_until_the_reset_then_succeeds(cliniko) -> None:
    (contact_id,) = cliniko.control.seed(1, seed=1)
    clock = FakeClock()
    client = cliniko.client(clock=clock)
    cliniko.control.set_faults(fail_next=[429])

    assert client.get_contact(contact_id).id == contact_id

    log = cliniko.control.requests()
    assert [r["status"] for r in log] == [429, 200]
    # The emulator announced X-RateLimit-Reset = (its second at the 429) + 1.
    reset = math.floor(_logged_at(log[0])) + 1
    # Waited at least from the 429 to the announced reset (in the fake clock's own frame: it
    # started at this machine's time, which a stalled test leaves behind the emulator's).
    assert clock.sleeps[0] >= reset - _logged_at(log[0])
    assert len(clock.sleeps) == 1
    assert 0 < clock.sleeps[0] <= 2 + RetryPolicy().reset_margin


def test_a_create_throttled_by_429_is_sent_again_and_made_once(cliniko) -> None:
    client = cliniko.client(clock=FakeClock())
    cliniko.control.set_faults(fail_next=[429])

    created = client.create_contact({"first_name": "Once"})

    assert _statuses(cliniko, "POST") == [429, 201]
    assert [c["id"] for c in cliniko.control.contacts()] == [created.id]


def test_429_beyond_the_longest_wait_raises_at_once_with_the_reset(cliniko) -> None:
    clock = FakeClock()
    client = cliniko.client(clock=clock)
    cliniko.control.set_faults(throttle_window_s=600)

    with pytest.raises(errors.RateLimited) as caught:
        client.list_contacts()

    # The reset, 10 minutes off, is not believed beyond what a 429 holds the budget: Cliniko's
    # window is a minute.
    assert caught.value.reset_at is not None
    assert caught.value.reset_at - clock.time() == pytest.approx(LONGEST_HOLD_SECONDS)
    assert _statuses(cliniko) == [429]
    assert clock.sleeps == []


def test_429_longer_than_the_longest_single_wait_raises_at_once(cliniko) -> None:
    # Within the total wait (75 s) but past the longest single wait the policy accepts.
    clock = FakeClock()
    client = cliniko.client(clock=clock, retry_policy=RetryPolicy(max_rate_limit_wait=10.0))
    cliniko.control.set_faults(throttle_window_s=30)

    with pytest.raises(errors.RateLimited) as caught:
        client.list_contacts()

    assert caught.value.status_code == 429
    assert clock.sleeps == []
    assert _statuses(cliniko) == [429]


def test_429_waits_are_bounded(cliniko) -> None:
    clock = FakeClock()
    client = cliniko.client(clock=clock, retry_policy=RetryPolicy(max_rate_limit_waits=2))
    cliniko.control.set_faults(fail_next=[429, 429, 429, 429])

    with pytest.raises(errors.RateLimited):
        client.list_contacts()

    assert _statuses(cliniko) == [429, 429, 429]
    assert len(clock.sleeps) == 2


def test_pacing_waits_before_sending_over_the_budget(cliniko) -> None:
    """The emulator allows 20 a minute; a client with the same budget sends 20, then waits a
    full window before the 21st instead of meeting a 429 first."""
    cliniko.control.set_rate_limit(per_minute=20)
    clock = FakeClock()
    client = cliniko.client(
        clock=clock,
        requests_per_minute=20,
        retry_policy=RetryPolicy(max_rate_limit_waits=0),
    )
    for _ in range(20):
        client.list_contacts()
    assert clock.sleeps == []
    assert set(_statuses(cliniko)) == {200}

    # The fake clock moves the client's minute on; the emulator's real minute has not passed,
    # so the emulator still answers 429, which proves the client waited *before* sending.
    with pytest.raises(errors.RateLimited):
        client.list_contacts()
    assert clock.sleeps == [pytest.approx(60.0)]
    assert _statuses(cliniko)[-1] == 429


# -- 5xx, drops, timeouts ------------------------------------------------------------------


def test_get_is_retried_on_502_and_504_with_jittered_backoff(cliniko) -> None:
    cliniko.control.seed(3, seed=2)
    clock = FakeClock()
    policy = RetryPolicy(backoff_base=0.5, backoff_cap=8.0)
    client = cliniko.client(clock=clock, rng=random.Random(3), retry_policy=policy)
    cliniko.control.set_faults(fail_next=[502, 504, 503])

    assert len(client.list_contacts()) == 3

    assert _statuses(cliniko) == [502, 504, 503, 200]
    assert client.request_count == 4
    assert len(clock.sleeps) == 3
    for retry, delay in enumerate(clock.sleeps, start=1):
        assert 0 <= delay <= 0.5 * 2 ** (retry - 1)


def test_server_errors_escape_after_the_bounded_attempts(cliniko) -> None:
    client = cliniko.client(clock=FakeClock(), retry_policy=RetryPolicy(max_attempts=3))
    cliniko.control.set_faults(fail_next=[502, 502, 502, 502])

    with pytest.raises(errors.ServerError) as caught:
        client.list_contacts()

    assert caught.value.status_code == 502
    assert _statuses(cliniko) == [502, 502, 502]


def test_a_500_on_a_safe_request_is_retried(cliniko) -> None:
    # Cliniko's 500 is server trouble like its 502 and 504: a one-off one answered the request
    # as a failure (a cleanup rule rested 30 s, a submission went back through the queue).
    cliniko.control.seed(2, seed=3)
    client = cliniko.client(clock=FakeClock())
    cliniko.control.set_faults(fail_next=[500])

    assert len(client.list_contacts()) == 2
    assert _statuses(cliniko) == [500, 200]


def test_a_500_every_time_escapes_after_the_bounded_attempts(cliniko) -> None:
    client = cliniko.client(clock=FakeClock(), retry_policy=RetryPolicy(max_attempts=3))
    cliniko.control.set_faults(fail_next=[500, 500, 500, 500])

    with pytest.raises(errors.ServerError) as caught:
        client.list_contacts()

    assert caught.value.status_code == 500
    assert _statuses(cliniko) == [500, 500, 500]


def test_a_refusal_of_a_safe_request_is_asked_once(cliniko) -> None:
    # A 404 (a contact gone) says the same however often it is asked: asked again, it would
    # only spend the key's budget and the backoff's seconds before the same error.
    clock = FakeClock()
    client = cliniko.client(clock=clock)
    with pytest.raises(errors.NotFound):
        client.get_contact("999999")
    assert _statuses(cliniko) == [404]
    assert clock.sleeps == []


def test_a_dropped_connection_on_get_is_retried(cliniko) -> None:
    cliniko.control.seed(2, seed=3)
    client = cliniko.client(clock=FakeClock())
    cliniko.control.set_faults(fail_next=["drop"])

    assert len(client.list_contacts()) == 2
    assert _statuses(cliniko) == ["dropped", 200]


@pytest.mark.parametrize("fault", [502, 503, 504, 500, "drop"])
def test_a_create_is_never_retried_blindly(cliniko, fault: object) -> None:
    client = cliniko.client(clock=FakeClock())
    cliniko.control.set_faults(fail_next=[fault])

    with pytest.raises(errors.CreateOutcomeUnknown):
        client.create_contact({"first_name": "Maybe"})

    assert len(_statuses(cliniko, "POST")) == 1
    assert client.request_count == 1


def test_create_outcome_unknown_when_the_contact_was_in_fact_made(cliniko) -> None:
    """A gateway 504 after Cliniko made the contact: retrying would make a second one."""
    client = cliniko.client(clock=FakeClock())
    cliniko.control.set_faults(fail_next=[504], after_effect=True)

    with pytest.raises(errors.CreateOutcomeUnknown) as caught:
        client.create_contact({"first_name": "Made"})

    assert isinstance(caught.value, errors.ServerError)
    assert [c["first_name"] for c in cliniko.control.contacts()] == ["Made"]


def test_update_and_archive_are_retried_as_idempotent(cliniko) -> None:
    (contact_id,) = cliniko.control.seed(1, seed=4)
    client = cliniko.client(clock=FakeClock())

    cliniko.control.set_faults(fail_next=[502], after_effect=True)
    assert client.update_contact(contact_id, {"last_name": "Twice"}).last_name == "Twice"
    cliniko.control.set_faults(fail_next=["drop"], after_effect=True)
    client.archive_contact(contact_id)

    assert _statuses(cliniko, "PATCH") == [502, 200]
    assert _statuses(cliniko, "POST") == ["dropped", 204]
    (stored,) = cliniko.control.contacts()
    assert stored["last_name"] == "Twice"
    assert stored["archived_at"]


def test_read_timeouts_are_retried_then_reported(cliniko) -> None:
    client = cliniko.client(
        clock=FakeClock(), timeout=0.05, retry_policy=RetryPolicy(max_attempts=2)
    )
    cliniko.control.set_faults(latency_ms=300, methods=["GET"])

    with pytest.raises(errors.ConnectionFailed) as caught:
        client.list_contacts()

    assert caught.value.status_code is None
    assert client.request_count == 2
    assert [r["status"] for r in _settle(cliniko, 2)] == [200, 200]  # answered too late


def test_a_create_that_times_out_is_an_unknown_outcome(cliniko) -> None:
    client = cliniko.client(clock=FakeClock(), timeout=0.05)
    cliniko.control.set_faults(latency_ms=300, methods=["POST"])

    with pytest.raises(errors.CreateOutcomeUnknown):
        client.create_contact({"first_name": "Slow"})

    assert client.request_count == 1
    # Cliniko made it all the same: exactly why the client must not send it again.
    assert [r["status"] for r in _settle(cliniko, 1)] == [201]
    assert [c["first_name"] for c in cliniko.control.contacts()] == ["Slow"]


def test_nothing_listening_is_a_connection_failure(cliniko) -> None:
    dead = ClinikoClient(
        cliniko.api_key,
        cliniko.user_agent,
        base_url="http://127.0.0.1:9/{shard}/v1",  # the discard port: nothing listens
        clock=FakeClock(),
        retry_policy=RetryPolicy(max_attempts=2),
    )
    try:
        with pytest.raises(errors.ConnectionFailed):
            dead.list_contacts()
        # A connect error means nothing was sent, so even a create may be retried safely.
        with pytest.raises(errors.ConnectionFailed):
            dead.create_contact({"first_name": "Never sent"})
        assert dead.request_count == 4
    finally:
        dead.close()


# -- the total wait bound (a Lambda with a short timeout) ------------------------------------


def test_a_short_wait_budget_turns_a_long_reset_into_an_immediate_error(cliniko) -> None:
    clock = FakeClock()
    client = cliniko.client(clock=clock, retry_policy=RetryPolicy.within(5))
    cliniko.control.set_faults(throttle_window_s=30)

    with pytest.raises(errors.RateLimited) as caught:
        client.list_contacts()

    assert caught.value.reset_at is not None
    assert clock.sleeps == []
    assert _statuses(cliniko) == [429]


def test_a_429_beyond_the_wait_budget_still_holds_the_budget(cliniko) -> None:
    # The window is spent for every sender of the key: a request that gives up must not leave
    # its process sending into it (issue 15: 50-75 % 429s at the worker's 25 s limit).
    clock = FakeClock()
    client = cliniko.client(clock=clock, retry_policy=RetryPolicy.within(5))
    cliniko.control.set_faults(throttle_window_s=30)
    with pytest.raises(errors.RateLimited):
        client.list_contacts()

    with pytest.raises(errors.RateLimited) as caught:
        client.list_contacts()

    assert caught.value.status_code is None  # held by our own budget: not sent
    assert _statuses(cliniko) == [429]
    cliniko.control.clear_faults()
    clock.advance(31)  # past the reset: sending resumes
    assert client.list_contacts() == []
    assert _statuses(cliniko) == [429, 200]


def test_a_short_wait_budget_still_waits_out_a_near_reset(cliniko) -> None:
    clock = FakeClock()
    client = cliniko.client(clock=clock, retry_policy=RetryPolicy.within(5))
    cliniko.control.set_faults(fail_next=[429])

    assert client.list_contacts() == []
    assert _statuses(cliniko) == [429, 200]
    assert 0 < sum(clock.sleeps) <= 5


def test_pacing_beyond_the_wait_budget_sends_nothing(cliniko) -> None:
    clock = FakeClock()
    client = cliniko.client(clock=clock, requests_per_minute=2, retry_policy=RetryPolicy.within(5))
    client.list_contacts()
    client.list_contacts()

    with pytest.raises(errors.RateLimited) as caught:
        client.list_contacts()

    assert caught.value.status_code is None  # our own budget said no; Cliniko never saw it
    assert caught.value.reset_at - clock.time() == pytest.approx(60.0)
    assert client.request_count == 2
    assert _statuses(cliniko) == [200, 200]


def test_the_pacing_wait_after_a_429_is_bounded_by_what_is_left_of_the_wait_budget(
    cliniko,
) -> None:
    # Two sends a minute: the request waits 20 s for its slot, meets a 429 (a reset a second
    # off, within the budget), and then the key's window has no room for 40 s more. 20 + 40
    # is past its 50 s: nothing more is slept or sent, where bounding that wait by the whole
    # budget, not what is left of it, slept 60 s of a 50 s budget and sent again.
    clock = FakeClock()
    client = cliniko.client(
        clock=clock, requests_per_minute=2, retry_policy=RetryPolicy(max_total_wait=50.0)
    )
    client.list_contacts()
    clock.advance(40)
    client.list_contacts()
    cliniko.control.set_faults(fail_next=[429])

    with pytest.raises(errors.RateLimited) as caught:
        client.list_contacts()

    assert caught.value.status_code is None  # our own budget said no to the re-send
    assert clock.sleeps == [pytest.approx(20.0)]
    assert _statuses(cliniko) == [200, 200, 429]


def test_backoff_stops_when_the_wait_budget_is_spent(cliniko) -> None:
    clock = FakeClock()
    client = cliniko.client(
        clock=clock, retry_policy=RetryPolicy(max_attempts=10, max_total_wait=0.0)
    )
    cliniko.control.set_faults(fail_next=[503, 503])

    with pytest.raises(errors.ServerError):
        client.list_contacts()

    assert _statuses(cliniko) == [503]
    assert clock.sleeps == []


class ClockAhead:
    """This machine's clock, `seconds` ahead of Cliniko's (the emulator's): real waits."""

    def __init__(self, seconds: float) -> None:
        self.seconds = seconds

    def monotonic(self) -> float:
        return time.monotonic()

    def time(self) -> float:
        return time.time() + self.seconds

    def sleep(self, seconds: float) -> None:
        time.sleep(seconds)


def test_a_429_s_reset_is_read_on_cliniko_s_clock_not_this_machine_s(cliniko) -> None:
    # A Lambda whose clock runs 5 s ahead of Cliniko's took a reset 2 s away for one already
    # past: it sent again at once into the spent window, 429 after 429 (an audit's stand-in
    # lost 30% of its requests so with 2 s of skew). The answer's Date is Cliniko's clock.
    client = cliniko.client(clock=ClockAhead(5.0))
    cliniko.control.set_faults(throttle_window_s=2)

    assert client.list_contacts() == []
    assert _statuses(cliniko) == [429, 200]


def test_a_reset_beyond_a_minute_holds_the_budget_a_minute_at_most(cliniko) -> None:
    # Cliniko's window is a minute: a reset ten minutes off is a header or a clock gone wrong,
    # and must not freeze the key for every process that long.
    clock = FakeClock()
    client = cliniko.client(clock=clock)
    cliniko.control.set_faults(throttle_window_s=600)
    with pytest.raises(errors.RateLimited):
        client.list_contacts()
    assert clock.sleeps == []

    with pytest.raises(errors.RateLimited) as sent:
        client.list_contacts()  # waits out the hold, a minute, then asks again
    assert sent.value.status_code == 429
    assert 60 <= sum(clock.sleeps) <= 66
    assert _statuses(cliniko) == [429, 429]


def test_a_429_that_tells_no_reset_waits_a_whole_window_not_a_short_backoff() -> None:
    # A short backoff without the reset met 429 after 429 (16 in 7 s from four threads).
    answers = iter([answer(b"{}", status="429 Too Many Requests"), answer(EMPTY_LIST)])
    clock = FakeClock()
    client, server = scripted_client(
        lambda connection, request: next(answers)(connection, request), clock
    )
    try:
        assert client.list_contacts() == []
    finally:
        server.stop()
    assert len(server.requests) == 2
    assert clock.sleeps == [UNKNOWN_RESET_SECONDS + RetryPolicy().reset_margin]
