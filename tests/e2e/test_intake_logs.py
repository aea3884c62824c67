"""Nothing personal in the logs, across the whole intake path and its unhappy branches.

Every provider's sample goes through the API handler and the worker (twice: a provider
retry), one submission is parked (two contacts share its email), one meets Cliniko failing
until its retries run out and is then replayed from the dead-letter queue, one meets a
dropped connection after Cliniko's create. Every log record (the intake's Powertools loggers
and anything propagating to the root logger, at INFO), everything printed (metrics in EMF)
and the dead-letter script's output are searched for the submitted name, email and phone.
"""

from __future__ import annotations

import io

from cliniko_automations.intake_worker.find_or_create import phone_digits

from tests.integration.intake_worker.e2e_world import (
    PERSONAL,
    PROVIDER_SOURCES,
    build_intake_path,
    delivery,
)
from tests.integration.intake_worker.resources import (
    MAX_RECEIVE_COUNT,
    captured_logs,
    load_dead_letters_script,
)
from tests.unit.intake_api import samples

PARKED_EMAIL = "marguerite.parked@example.org"
FAILING_EMAIL = "marguerite.failing@example.org"
DROPPED_EMAIL = "marguerite.dropped@example.org"


def test_no_log_line_carries_a_submitted_value(aws, cliniko, monkeypatch, tmp_path, capsys):
    path = build_intake_path(cliniko, monkeypatch, tmp_path)
    client = cliniko.client()
    for _ in range(2):
        client.create_contact({"first_name": samples.FIRST, "email": PARKED_EMAIL})
    script_output = io.StringIO()

    with captured_logs("intake") as logs:
        for provider in PROVIDER_SOURCES:
            path.post(delivery(provider))
            path.post(delivery(provider))  # the provider retries
        path.work(rounds=20)

        path.post(delivery("json", email=PARKED_EMAIL))
        path.post(delivery("typeform", email=PARKED_EMAIL))
        path.work()

        cliniko.control.set_faults(fail_next=["drop"], after_effect=True, methods=["POST"])
        path.post(delivery("formspree", email=DROPPED_EMAIL))
        path.work()

        cliniko.control.set_faults(error_rate=1.0, statuses=[500])
        path.post(delivery("html", email=FAILING_EMAIL))
        path.work(rounds=MAX_RECEIVE_COUNT + 2)
        cliniko.control.clear_faults()
        dead_letters = load_dead_letters_script()
        monkeypatch.setenv("DEAD_LETTER_QUEUE_URL", path.stack.dead_letter_queue_url)
        assert dead_letters.main(["list"], out=script_output) == 0
        assert dead_letters.main(["show", "--", _first_dead(path)], out=script_output) == 0
        assert dead_letters.main(["replay", "--all"], out=script_output) == 0
        path.work()

    # The path really ran: one contact per email, the parked one untouched.
    emails = sorted(c["email"].lower() for c in cliniko.control.contacts())
    assert emails == sorted(
        [samples.EMAIL, PARKED_EMAIL, PARKED_EMAIL, DROPPED_EMAIL, FAILING_EMAIL]
    )
    assert len(path.stack.drain(path.stack.parked_queue_url)) == 2
    assert any("cliniko_server_error" in line for line in logs.lines)
    assert len(logs.json("Submission accepted")) >= 2 * len(PROVIDER_SOURCES)  # the API's
    assert logs.json("submission processed"), "the worker's logs were not captured"

    printed = capsys.readouterr()
    text = "\n".join(logs.lines) + printed.out + printed.err + script_output.getvalue()
    personal = [*PERSONAL, PARKED_EMAIL, FAILING_EMAIL, DROPPED_EMAIL]
    personal += [e.split("@")[0] for e in (PARKED_EMAIL, FAILING_EMAIL, DROPPED_EMAIL)]
    personal.append(phone_digits(samples.PHONE))
    leaked = [value for value in personal if value.lower() in text.lower()]
    assert leaked == [], f"submitted values in the logs: {[v[:4] + '...' for v in leaked]}"


def _first_dead(path) -> str:
    [letter] = path.stack.receive(path.stack.dead_letter_queue_url, visibility=0)
    return letter["MessageId"]
