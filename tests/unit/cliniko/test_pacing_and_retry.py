"""The rate budget, backoff computation, 429 header reading and error mapping: pure logic."""

from __future__ import annotations

import email.utils
import json
import random
import threading
import time

import pytest
from cliniko_automations.cliniko import errors
from cliniko_automations.cliniko.pacing import (
    BudgetExhausted,
    RateBudget,
    SystemClock,
    key_fingerprint,
    shared_budget,
)
from cliniko_automations.cliniko.transport import (
    LONGEST_HOLD_SECONDS,
    RetryPolicy,
    error_for_response,
    is_idempotent,
    rate_limit_wait,
)

from tests.unit.cliniko.fake_clock import FakeClock

NOW = 1_700_000_000.0


def test_a_wait_of_under_a_second_is_still_waited() -> None:
    # The window's last half second is as spent as its first: sent early, the fourth request
    # of a budget of three a minute meets Cliniko's 429.
    clock = FakeClock()
    budget = RateBudget(3, 60.0, clock=clock)
    for _ in range(3):
        budget.acquire()
    clock.advance(59.5)
    assert budget.acquire() == pytest.approx(0.5)
    assert clock.sleeps == [pytest.approx(0.5)]


def test_the_system_clock_sleeps_as_long_as_asked_and_tells_the_time() -> None:
    # Every other test paces on a fake clock; a deployed function paces on this one. A wait it
    # skipped (a short one, or all of them) would send a key's requests back to back into
    # Cliniko's 429s with every test still passing.
    clock = SystemClock()
    start = time.monotonic()
    clock.sleep(0.2)
    assert time.monotonic() - start >= 0.2
    clock.sleep(-1.0)  # a wait already over (a reset just past): no sleep, no error
    assert abs(clock.time() - time.time()) < 5.0
    before = time.monotonic()
    assert before <= clock.monotonic() < before + 5.0


def test_budget_lets_a_burst_through_then_waits_for_the_oldest_to_age_out() -> None:
    clock = FakeClock()
    budget = RateBudget(3, 60.0, clock=clock)
    assert [budget.acquire() for _ in range(3)] == [0.0, 0.0, 0.0]
    clock.advance(10)
    assert budget.acquire() == pytest.approx(50.0)  # the first send leaves the window at 60 s
    assert clock.sleeps == [pytest.approx(50.0)]


def test_a_hold_longer_than_the_full_windows_wait_is_waited_out_whole() -> None:
    # A 429 while the window is full: the send waits for Cliniko's reset, not only for the
    # oldest send to age out (sent then, it met another 429).
    clock = FakeClock()
    budget = RateBudget(2, 60.0, clock=clock)
    budget.acquire()
    budget.acquire()
    budget.hold(120)
    assert budget.acquire() == pytest.approx(120.0)
    # And a hold shorter than the full window's wait waits for the window.
    assert budget.acquire() == 0.0
    budget.hold(5)
    assert budget.acquire() == pytest.approx(60.0)


def test_budget_never_allows_more_than_the_limit_in_any_window() -> None:
    clock = FakeClock()
    budget = RateBudget(200, 60.0, clock=clock)
    sends = []
    for _ in range(1000):
        budget.acquire()
        sends.append(clock.monotonic())
        clock.advance(0.01)
    for i, start in enumerate(sends):
        in_window = sum(1 for t in sends[i:] if t < start + 60.0)
        assert in_window <= 200
    # and it is not needlessly slow: 1,000 requests in about four and a bit minutes
    assert sends[-1] - sends[0] < 5 * 60


def test_hold_stops_every_sender_until_it_passes() -> None:
    clock = FakeClock()
    budget = RateBudget(200, 60.0, clock=clock)
    budget.acquire()
    budget.hold(12.5)
    budget.hold(2.0)  # a second 429 with an earlier reset does not shorten the first's hold
    assert budget.acquire() == pytest.approx(12.5)
    assert budget.acquire() == 0.0


def test_budget_is_thread_safe() -> None:
    clock = FakeClock()
    budget = RateBudget(50, 60.0, clock=clock)

    def spend() -> None:
        for _ in range(25):
            budget.acquire()

    threads = [threading.Thread(target=spend) for _ in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    # 100 sends under a 50 budget: at least one window's worth of waiting happened.
    assert sum(clock.sleeps) >= 60.0 - 1e-6


def test_budget_is_shared_per_key_and_budget_and_keyed_by_hash() -> None:
    key = "MS0xshared0000000000-au3"
    key_id = key_fingerprint(key)
    assert shared_budget(key_id, 200) is shared_budget(key_id, 200)
    assert shared_budget(key_id, 200) is not shared_budget(key_fingerprint("MS0xother-au3"), 200)
    assert shared_budget(key_id, 200) is not shared_budget(key_id, 100)
    # A slot comes back a second after Cliniko's minute: reused at exactly 60 s, it could
    # reach Cliniko inside the window of the send it replaces.
    assert shared_budget(key_id, 200).period == 61.0
    assert key not in key_id
    assert len(key_fingerprint(key)) == 16


def test_budget_refuses_nonsense() -> None:
    with pytest.raises(ValueError):
        RateBudget(0)
    with pytest.raises(ValueError):
        RateBudget(10, 0)


def test_backoff_is_jittered_exponential_and_capped() -> None:
    policy = RetryPolicy(backoff_base=0.5, backoff_cap=4.0)
    rng = random.Random(7)
    for retry, ceiling in [(1, 0.5), (2, 1.0), (3, 2.0), (4, 4.0), (5, 4.0), (9, 4.0)]:
        delays = [policy.backoff(retry, rng) for _ in range(200)]
        assert all(0.0 <= d <= ceiling for d in delays)
        assert max(delays) > ceiling * 0.8  # jitter spreads over the whole range
        assert len(set(delays)) > 150  # and is not a constant


def test_retry_policy_refuses_nonsense() -> None:
    with pytest.raises(ValueError):
        RetryPolicy(max_attempts=0)
    with pytest.raises(ValueError):
        RetryPolicy(backoff_base=-1)


@pytest.mark.parametrize(
    ("method", "path", "safe"),
    [
        ("GET", "/au1/v1/contacts", True),
        ("GET", "/au1/v1/contacts/1", True),
        ("PUT", "/au1/v1/contacts/1", True),
        ("PATCH", "/au1/v1/contacts/1", True),
        ("DELETE", "/au1/v1/contacts/1", True),
        ("POST", "/au1/v1/contacts/1/archive", True),
        ("POST", "/au1/v1/contacts", False),
        ("post", "/au1/v1/contacts/", False),
    ],
)
def test_which_requests_are_idempotent(method: str, path: str, safe: bool) -> None:
    assert is_idempotent(method, path) is safe


def test_reset_header_gives_the_wait() -> None:
    assert rate_limit_wait({"x-ratelimit-reset": str(int(NOW + 42))}, NOW) == (42.0, NOW + 42)


def test_a_reset_further_than_a_window_is_waited_what_the_budget_holds_at_most() -> None:
    # Cliniko's window is a minute: ten minutes off is its clock and ours apart (its Date not
    # believed), or a stand-in's header. Every wait on a 429 is read here: the budget's hold,
    # the worker's message on its queue, the cleanup's wait.
    ten_minutes = {"x-ratelimit-reset": str(int(NOW + 600))}
    assert rate_limit_wait(ten_minutes, NOW) == (LONGEST_HOLD_SECONDS, NOW + LONGEST_HOLD_SECONDS)
    assert rate_limit_wait({"retry-after": "1800"}, NOW) == (65.0, NOW + 65)


def test_retry_after_seconds_is_honoured_and_the_later_moment_wins() -> None:
    assert rate_limit_wait({"retry-after": "7"}, NOW) == (7.0, NOW + 7)
    both = {"retry-after": "7", "x-ratelimit-reset": str(int(NOW + 30))}
    assert rate_limit_wait(both, NOW) == (30.0, NOW + 30)
    both = {"retry-after": "45", "x-ratelimit-reset": str(int(NOW + 30))}
    assert rate_limit_wait(both, NOW) == (45.0, NOW + 45)


def test_retry_after_http_date_is_honoured() -> None:
    date = email.utils.formatdate(NOW + 20, usegmt=True)
    wait, until = rate_limit_wait({"retry-after": date}, NOW)
    assert wait == pytest.approx(20.0)
    assert until - NOW == pytest.approx(20)


def test_a_reset_just_past_waits_a_second_and_one_long_past_or_garbage_a_whole_window() -> None:
    # The window ending within this second (a reset rounded down, clocks a little apart): the
    # next second, not no wait (every process sent again at once, 429 after 429) and not a
    # whole window.
    assert rate_limit_wait({"x-ratelimit-reset": str(int(NOW))}, NOW) == (1.0, NOW + 1)
    assert rate_limit_wait({"x-ratelimit-reset": str(int(NOW - 5))}, NOW) == (1.0, NOW + 1)
    assert rate_limit_wait({"retry-after": "0"}, NOW) == (1.0, NOW + 1)
    # Nothing believable of the reset: the rest of the window is not known, so all of it is
    # waited, not a short backoff that meets 429 after 429. A reset long past contradicts the
    # 429 that says the window is spent now.
    whole_window = (60.0, NOW + 60.0)  # Cliniko's window: a minute
    assert rate_limit_wait({"x-ratelimit-reset": str(int(NOW - 6))}, NOW) == whole_window
    assert rate_limit_wait({"x-ratelimit-reset": "soon"}, NOW) == whole_window
    assert rate_limit_wait({"x-ratelimit-reset": "2026-12-03T10:00:00Z"}, NOW) == whole_window
    assert rate_limit_wait({}, NOW) == whole_window
    # Milliseconds where seconds are documented: 56,000 years off, not believed.
    assert rate_limit_wait({"x-ratelimit-reset": str(int(NOW * 1000))}, NOW) == whole_window


def test_the_reset_is_read_against_the_answer_s_date_cliniko_s_clock() -> None:
    # This machine 5 s ahead of Cliniko: the reset, 2 s away on Cliniko's clock, is 2 s away.
    cliniko_now = int(NOW) - 5
    headers = {
        "x-ratelimit-reset": str(cliniko_now + 2),
        "date": email.utils.formatdate(cliniko_now, usegmt=True),
    }
    assert rate_limit_wait(headers, NOW) == (2.0, NOW + 2)
    # A Date that cannot be read, or that is an hour out: this machine's clock, on which the
    # reset is 3 s past: the next second.
    for date in ("yesterday", email.utils.formatdate(NOW - 3600, usegmt=True)):
        headers["date"] = date
        assert rate_limit_wait(headers, NOW) == (1.0, NOW + 1)


@pytest.fixture
def machine_in_sydney(monkeypatch):
    """This process's local zone is Sydney's (a laptop running the operating CLIs)."""
    monkeypatch.setenv("TZ", "Australia/Sydney")
    time.tzset()
    yield
    monkeypatch.undo()
    time.tzset()


def test_a_date_in_utc_written_minus_0000_is_utc_on_a_machine_in_any_zone(machine_in_sydney):
    # RFC 5322 writes UTC as `-0000` too; Python reads it as a time without a zone, which
    # `.timestamp()` took for the machine's local time: 11 hours out, not believed, and the
    # reset read against this machine's clock, 5 s ahead: the window's end taken for past.
    cliniko_now = int(NOW) - 5
    for date in (
        email.utils.formatdate(cliniko_now, usegmt=True),
        email.utils.formatdate(cliniko_now).replace("+0000", "-0000"),
    ):
        headers = {"x-ratelimit-reset": str(cliniko_now + 2), "date": date}
        assert rate_limit_wait(headers, NOW) == (2.0, NOW + 2)
        headers = {
            "retry-after": email.utils.formatdate(cliniko_now + 20).replace("+0000", "-0000")
        }
        headers["date"] = date
        assert rate_limit_wait(headers, NOW) == (20.0, NOW + 20)


def _error(status: int, body: object = None, headers: dict[str, str] | None = None):
    content = body if isinstance(body, bytes) else json.dumps(body).encode()
    return error_for_response(
        status,
        content,
        headers or {},
        shard="au2",
        method="GET",
        path="/au2/v1/contacts/7",
        now=NOW,
    )


def test_error_mapping() -> None:
    bad = _error(400, {"message": "notes is not filterable"})
    assert isinstance(bad, errors.BadRequest)
    assert "notes is not filterable" in str(bad)

    unauthorized = _error(401, b"HTTP Basic: Access denied.\n")
    assert isinstance(unauthorized, errors.Unauthorized)
    assert unauthorized.shard == "au2"
    assert "another shard" in str(unauthorized)

    assert isinstance(_error(403, b"<html>no</html>"), errors.Forbidden)
    assert not isinstance(_error(403, b"<html>no</html>"), errors.UserAgentRefused)
    # Cliniko's block of a client that names no app: the User-Agent to fix, not the key.
    for status, body in [
        (403, b"Requires a user agent"),
        (400, {"message": "Requires a User Agent"}),
    ]:
        refused = _error(status, body)
        assert isinstance(refused, errors.UserAgentRefused) and refused.status_code == status
        assert "ClinikoUserAgent" in (errors.access_hint(refused) or "")
    assert isinstance(_error(404, {"message": "Not found"}), errors.NotFound)

    invalid = _error(
        422,
        {"message": "Validation Failed", "errors": {"first_name": "can’t be blank", "email": None}},
    )
    assert isinstance(invalid, errors.ValidationFailed)
    assert invalid.errors == {"first_name": "can’t be blank", "email": None}
    assert invalid.status_code == 422

    limited = _error(429, b"", {"x-ratelimit-reset": str(int(NOW + 9))})
    assert isinstance(limited, errors.RateLimited)
    assert limited.reset_at == NOW + 9

    for status in (500, 502, 503, 504):
        server = _error(status, b"<html>Bad Gateway</html>")
        assert isinstance(server, errors.ServerError)
        assert server.status_code == status

    assert isinstance(_error(418, b""), errors.UnexpectedResponse)


def test_error_messages_are_short_and_carry_no_body_but_the_message() -> None:
    long = _error(400, {"message": "x" * 5000, "secret": "s3cr3t"})
    assert len(str(long)) < 400
    assert "s3cr3t" not in str(long)


def test_a_megabyte_message_is_read_no_further_than_it_is_kept() -> None:
    # Masked whole first, a run without spaces took time quadratic in its length (a 60,000
    # character message 12 s, so a megabyte's: most of an hour): the bound is against a hang,
    # not a speed measurement.
    started = time.monotonic()
    for run in ("a" * 1_000_000, "%40" * 300_000, "1-" * 500_000):
        assert len(str(_error(404, {"message": run}))) < 400
    assert time.monotonic() - started < 60


def test_a_validation_failure_s_field_texts_carry_no_email() -> None:
    failed = _error(
        422,
        {
            "message": "Validation Failed",
            "errors": {
                "email": "jo.bloggs@example.net has already been taken",
                "phone_numbers": ["ann@example.org is not a number", "x" * 5000],
            },
        },
    )
    assert isinstance(failed, errors.ValidationFailed)
    assert "@" not in str(failed) and "example" not in str(failed)
    assert failed.errors["email"] == "<email> has already been taken"
    assert len(str(failed)) < 800


def test_a_validation_failure_s_names_and_texts_carry_no_control_character() -> None:
    # Kept in a dead letter's reason (SQS refuses ESC and BEL in an attribute), the audit
    # trail and a cleanup run, and read out on an operator's terminal.
    hostile = "\x1b]8;;http://evil.example/\x07x\x1b[2J\u202e"
    failed = _error(422, {"message": f"Failed{hostile}", "errors": {hostile: f"bad{hostile}"}})
    assert isinstance(failed, errors.ValidationFailed)
    assert [name.isprintable() and text.isprintable() for name, text in failed.errors.items()] == [
        True
    ]
    assert str(failed).isprintable()
    assert "\\x1b[2J" in next(iter(failed.errors.values()))
    assert list(failed.errors) == ["other"]  # no field of a contact's


def test_a_validation_failure_names_only_a_contact_s_fields() -> None:
    # The keys are free text to whoever answers: keyed by a value, they put it in every log
    # line, dead letter and trail record that names the fields refused.
    failed = _error(
        422,
        {
            "errors": {
                "Zebedee Quigglesworth": "is already a patient",
                "email": "is invalid",
                "phone_numbers[0].number": "is invalid",
                "base": "contact is locked",
                "zebedee_quigglesworth": "is taken",
                "email.zebedee.quigglesworth": "is taken",  # after the field: free text too
            }
        },
    )
    assert isinstance(failed, errors.ValidationFailed)
    assert set(failed.errors) == {"other", "email", "phone_numbers", "base"}
    kind = errors.error_kind(failed)
    assert "ebedee" not in kind and kind.startswith("cliniko_ValidationFailed: ")


def test_budget_refuses_a_wait_longer_than_allowed_and_records_nothing() -> None:
    clock = FakeClock()
    budget = RateBudget(2, 60.0, clock=clock)
    budget.acquire()
    budget.acquire()
    with pytest.raises(BudgetExhausted) as caught:
        budget.acquire(max_wait=10.0)
    assert caught.value.wait == pytest.approx(60.0)
    assert clock.sleeps == []
    assert budget.in_window() == 2
    assert budget.acquire(max_wait=60.0) == pytest.approx(60.0)


def test_policy_within_bounds_every_wait() -> None:
    policy = RetryPolicy.within(10)
    assert policy.max_total_wait == 10
    assert policy.max_rate_limit_wait == 10
    assert RetryPolicy.within(600).max_rate_limit_wait == 65.0


def test_an_address_the_cut_goes_through_is_left_out_not_half_shown() -> None:
    cut = _error(404, {"message": " " * 788 + "jane.citizen@example.com"})
    assert "jane" not in str(cut) and "citizen" not in str(cut)
    kept = _error(404, {"message": "contact" + " " * 793 + "jane.citizen@example.com"})
    assert "contact" in str(kept) and "jane" not in str(kept)
