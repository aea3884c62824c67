"""One person whose name a form and staff spell with other code points for the same letters:
composed or as a letter and its accent, full width from an IME, a zero-width space staff
pasted, Turkish typed in capitals. The whole path (the intake API, the worker,
scripts/erasure.py and scripts/dead_letters.py, moto, the emulator over HTTP): the worker
finds staff's contact, and an erasure read from staff's contact purges the form's stored
submission, so a replay of it brings nobody back.
"""

from __future__ import annotations

import io
import json
import unicodedata
from typing import Any

import boto3
import pytest

from tests.e2e.test_erasure_cli import load_cli
from tests.fixtures.apigw import form_post_event
from tests.integration.erasure import stack as erasure
from tests.integration.intake_worker.e2e_world import build_intake_path
from tests.integration.intake_worker.resources import (
    MAX_RECEIVE_COUNT,
    captured_logs,
    load_dead_letters_script,
)
from tests.unit.intake_api import samples

erasure_stack = erasure.erasure_stack  # the fixture

COMPOSED = ("José", "Núñez")
DECOMPOSED = tuple(unicodedata.normalize("NFD", name) for name in COMPOSED)
# (staff's spelling, the form's)
SPELLINGS = {
    "decomposed": (COMPOSED, DECOMPOSED),
    "full-width": (("John", "Smith"), ("Ｊｏｈｎ", "Ｓｍｉｔｈ")),
    "turkish-capitals": (("Ayşe", "IŞIK"), ("Ayşe", "Işık")),
}
STAFF_PHONE = "0412 987 654"  # the form sends samples.PHONE, "+61 412 987 654"


@pytest.fixture
def world(erasure_stack, cliniko, monkeypatch, tmp_path):
    path = build_intake_path(cliniko, monkeypatch, tmp_path)
    monkeypatch.setenv("DEAD_LETTER_QUEUE_URL", path.stack.dead_letter_queue_url)
    return path


def post(path: Any, first: str, last: str, key: str, email: str | None = None) -> str:
    body = samples.json_body(first_name=first, last_name=last, email=email, mobile=samples.PHONE)
    headers = {
        "Content-Type": "application/json",
        "X-Signature": samples.t_v1_signature(body),
        "Idempotency-Key": key,
    }
    answer = path.post(form_post_event("partner-json", body, headers))
    assert answer["statusCode"] == 202, answer
    return str(json.loads(answer["body"])["submission_id"])


def seed_staffs(erasure_stack: Any, first: str, last: str, email: str = "") -> str:
    return str(
        erasure_stack.seed(
            first_name=first,
            last_name=last,
            email=email,
            phone_numbers=[{"number": STAFF_PHONE, "phone_type": "Mobile"}],
        )
    )


def active(cliniko: Any) -> list[dict[str, Any]]:
    return [c for c in cliniko.control.contacts() if not c["archived_at"]]


def stored_ids(table: str) -> set[str]:
    pages = boto3.client("dynamodb").get_paginator("scan").paginate(TableName=table)
    return {item["id"]["S"] for page in pages for item in page["Items"]}


def held_back(path: Any, cliniko: Any, first: str, last: str, key: str, **fields: Any) -> str:
    """A submission whose creates Cliniko fails until it is dead-lettered, its body kept."""
    cliniko.control.set_faults(error_rate=1.0, statuses=[500], methods=["POST"])
    submission_id = post(path, first, last, key, **fields)
    path.work(rounds=MAX_RECEIVE_COUNT + 3)
    cliniko.control.clear_faults()
    assert path.stack.counts(path.stack.dead_letter_queue_url) == (1, 0)
    assert active(cliniko) == []
    return submission_id


def found_alone(world: Any, cliniko: Any, name: tuple[str, ...], key: str) -> str:
    """The contact a submission of `name` (no email) was found as, left unchanged, and the
    only active one."""
    post(world, *name, key=key)
    with captured_logs("intake") as logs:
        world.work()
    [processed] = logs.json("submission processed")
    assert processed["action"] == "unchanged", processed
    assert [c["id"] for c in active(cliniko)] == [processed["contact_id"]]
    return str(processed["contact_id"])


def test_a_name_sent_as_letters_and_accents_is_created_composed_and_finds_staffs_contact(
    world, erasure_stack, cliniko
):
    # Cliniko's name filter compares code points: the decomposed name listed nobody, and the
    # submission made a second José Núñez beside staff's.
    staffs = seed_staffs(erasure_stack, *COMPOSED)
    assert found_alone(world, cliniko, DECOMPOSED, "decomposed-beside-staffs") == staffs

    post(world, *DECOMPOSED, key="decomposed-alone", email="jose@example.org")
    world.work()
    [created] = [c for c in active(cliniko) if c["id"] != staffs]
    assert (created["first_name"], created["last_name"]) == COMPOSED


def test_a_contact_made_decomposed_before_is_still_found(world, erasure_stack, cliniko):
    # Before the intake composed names, a phone's decomposed "José" went to Cliniko so: the
    # lookup asks for that spelling too, last, once the composed ones list nobody.
    made_before = seed_staffs(erasure_stack, *DECOMPOSED)
    assert found_alone(world, cliniko, COMPOSED, "composed-beside-decomposed") == made_before


@pytest.mark.parametrize("spelling", sorted(SPELLINGS))
def test_an_erasure_read_from_staffs_contact_purges_the_forms_submission(
    world, erasure_stack, cliniko, capsys, spelling
):
    staff, form = SPELLINGS[spelling]
    theirs = held_back(world, cliniko, *form, key=f"held-{spelling}")
    contact_id = seed_staffs(erasure_stack, *staff)

    code = load_cli().main(
        [
            *("request", "--contact-id", contact_id),
            *("--reason", "GDPR art. 17, ticket 77", "--request-id", f"erase-{spelling}"),
        ]
    )
    out = capsys.readouterr().out
    assert code == 0, out
    assert "submission#" + theirs not in stored_ids(world.stack.submission_table)

    # The dead letter is not replayed (its body is gone), and the provider's redelivery is
    # dropped: nobody is created again.
    assert load_dead_letters_script().main(["replay", "--all"], out=io.StringIO()) == 1
    assert "its body is gone (erased or expired)" in capsys.readouterr().err
    with captured_logs("intake") as logs:
        post(world, *form, key=f"held-{spelling}")
        world.work()
    assert [r["reason"] for r in logs.json("submission dropped")] == ["erased"]
    assert active(cliniko) == []


def test_an_erasure_by_an_email_in_turkish_capitals_finds_the_person(
    world, erasure_stack, cliniko, capsys
):
    # "i".upper() is "İ" in a Turkish locale, and "İ".lower() "i" and a combining dot: searched
    # so, the address found nobody, and the request completed as "no record found".
    theirs = held_back(
        world, cliniko, "İlker", "Işık", key="held-tr", email="ilker.isik@example.org"
    )
    contact_id = seed_staffs(erasure_stack, "İlker", "Işık", email="ilker.isik@example.org")
    code = load_cli().main(
        [
            *("request", "--email", "İLKER.ISIK@EXAMPLE.ORG"),
            *("--reason", "GDPR art. 17, ticket 78", "--request-id", "erase-tr"),
        ]
    )
    out = capsys.readouterr().out
    assert code == 0, out
    assert "no_record_found" not in out
    assert "submission#" + theirs not in stored_ids(world.stack.submission_table)
    [erased] = [c for c in cliniko.control.contacts() if str(c["id"]) == contact_id]
    assert erased["archived_at"] and not erased["email"]
