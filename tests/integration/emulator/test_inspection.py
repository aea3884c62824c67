"""The inspection API, spec validation and the state file."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import httpx
from cliniko_emulator import EmulatorControl, EmulatorServer

from tests.fixtures.emulator import USER_AGENT


def test_request_log_and_counters(http: httpx.Client, cliniko) -> None:
    http.post("/contacts", json={"first_name": "A", "email": "a+b@example.com"})
    http.get("/contacts", params=[("q[]", "email:=a+b@example.com"), ("per_page", "5")])
    http.get("/contacts/1")
    log = cliniko.control.requests()
    assert [(e["method"], e["path"], e["status"]) for e in log] == [
        ("POST", "/au1/v1/contacts", 201),
        ("GET", "/au1/v1/contacts", 200),
        ("GET", "/au1/v1/contacts/1", 404),
    ]
    assert log[0]["body"] == {"first_name": "A", "email": "a+b@example.com"}
    assert log[1]["query"] == {"q[]": ["email:=a+b@example.com"], "per_page": ["5"]}
    assert log[0]["key_shard"] == "au1" and log[0]["user_agent"] == USER_AGENT
    assert cliniko.api_key not in json.dumps(log)  # never the key
    assert cliniko.control.requests(since=log[1]["seq"])[0]["path"] == "/au1/v1/contacts/1"
    assert cliniko.control.counters() == {
        "total": 3,
        "by_method": {"POST": 1, "GET": 2},
        "by_status": {"201": 1, "200": 1, "404": 1},
        "by_method_status": {"POST 201": 1, "GET 200": 1, "GET 404": 1},
    }
    cliniko.control.clear_requests()
    assert cliniko.control.requests() == [] and cliniko.control.counters()["total"] == 0


def test_reset_empties_everything(http: httpx.Client, cliniko) -> None:
    cliniko.control.seed(5)
    cliniko.control.set_faults(latency_ms=1)
    cliniko.control.set_rate_limit(per_minute=3)
    http.get("/contacts")
    cliniko.control.reset()
    assert cliniko.control.contacts() == []
    assert cliniko.control.requests() == []
    assert cliniko.control.faults()["latency_ms"] == 0
    assert cliniko.control.rate_limit()["per_minute"] == 200
    assert http.get("/contacts").status_code == 401  # keys added after start-up are gone
    cliniko.control.add_key(cliniko.api_key)


def test_seed_makes_realistic_contacts(http: httpx.Client, cliniko) -> None:
    ids = cliniko.control.seed(40, seed=3, archived=4)
    assert len(ids) == 40 and len(set(ids)) == 40
    listed = http.get("/contacts", params={"per_page": 100}).json()
    assert listed["total_entries"] == 36
    contacts = listed["contacts"]
    assert all(c["first_name"] and c["country"] for c in contacts)
    assert any(c["type"] == "Doctor" and c["doctor_type"] for c in contacts)
    assert any(c["phone_numbers"] for c in contacts)
    assert len(cliniko.control.contacts(include_archived=False)) == 36
    assert all(c["shard"] == "au1" for c in cliniko.control.contacts())


def test_seed_refuses_bad_input(cliniko) -> None:
    for body in (
        {"count": -1},
        {"count": "x"},
        {"shard": "nowhere"},
        {"contacts": [{"first_name": ""}]},
    ):
        response = httpx.post(f"{cliniko.url}/_emulator/seed", json=body)
        assert response.status_code == 400, body
    assert httpx.post(f"{cliniko.url}/_emulator/seed", content=b"[").status_code == 400
    mixed = {"contacts": [{"first_name": "ok"}, {"first_name": "bad", "email": "nope"}]}
    response = httpx.post(f"{cliniko.url}/_emulator/seed", json=mixed)
    assert response.status_code == 400
    assert response.json()["detail"] == {"contacts[1].email": "is invalid"}
    assert cliniko.control.contacts() == []  # all or nothing
    assert httpx.get(f"{cliniko.url}/_emulator/nothing").status_code == 404


def test_response_violations_are_recorded_and_strict_mode_answers_500(tmp_path: Path) -> None:
    # A spec whose Contact demands a field the emulator never sends: every 200 breaks it.
    from cliniko_emulator.validation import spec_path

    broken = (
        spec_path()
        .read_text()
        .replace(
            "required: [id, created_at, updated_at]",
            "required: [id, created_at, updated_at, shoe_size]",
        )
    )
    assert "shoe_size" in broken
    spec = tmp_path / "openapi.yaml"
    spec.write_text(broken)
    with EmulatorServer(port=0, keys=["k-au1"], spec_path=str(spec)) as server:
        control = EmulatorControl(server.url)
        with httpx.Client(
            base_url=server.base_url_template.format(shard="au1"),
            auth=("k-au1", ""),
            headers={"User-Agent": USER_AGENT},
        ) as http:
            created = http.post("/contacts", json={"first_name": "A"})
            assert created.status_code == 201
            report = control.violations()
            assert report["spec_loaded"] and len(report["response"]) == 1
            assert "shoe_size" in "\n".join(report["response"][0]["errors"])
            control.set_validation(strict=True)
            strict = http.get(f"/contacts/{created.json()['id']}")
            assert strict.status_code == 500
            assert "shoe_size" in json.dumps(strict.json()["errors"])
        control.close()


def test_request_violations_are_recorded(http: httpx.Client, cliniko) -> None:
    cliniko.allow_invalid_requests()
    http.get("/contacts", params={"per_page": 500})
    report = cliniko.violations()
    assert report["response"] == []
    assert len(report["request"]) == 1 and "per_page" in "\n".join(report["request"][0]["errors"])


def test_state_file_keeps_contacts_and_keys(tmp_path: Path) -> None:
    state = tmp_path / "state.json"
    with EmulatorServer(port=0, state_file=str(state)) as server:
        control = EmulatorControl(server.url)
        control.add_key("MS0xlocal-au2")
        ids = control.seed(3, shard="au2", seed=1)
        control.close()
    with EmulatorServer(port=0, state_file=str(state)) as server:
        response = httpx.get(
            f"{server.base_url_template.format(shard='au2')}/contacts",
            auth=("MS0xlocal-au2", ""),
            headers={"User-Agent": USER_AGENT},
        )
        assert [c["id"] for c in response.json()["contacts"]] == ids


def test_command_line_server(tmp_path: Path) -> None:
    env = {**os.environ, "PYTHONUNBUFFERED": "1"}
    process = subprocess.Popen(  # noqa: S603 - our own module, fixed arguments
        [sys.executable, "-m", "cliniko_emulator", "--port", "0", "--key", "MS0xcli-au1",
         "--state-file", str(tmp_path / "s.json"), "--error-rate", "0"],
        stdout=subprocess.PIPE,
        env=env,
        text=True,
    )  # fmt: skip
    try:
        assert process.stdout is not None
        started = json.loads(process.stdout.readline())
        base = started["base_url_template"].format(shard="au1")
        response = httpx.post(
            f"{base}/contacts",
            json={"first_name": "A"},
            auth=("MS0xcli-au1", ""),
            headers={"User-Agent": USER_AGENT},
        )
        assert response.status_code == 201
        with EmulatorControl(started["url"]) as control:
            assert control.health()
    finally:
        process.terminate()
        assert process.wait(timeout=10) == 0
        assert process.stdout is not None
        process.stdout.close()


def test_command_line_refuses_bad_faults() -> None:
    result = subprocess.run(
        [sys.executable, "-m", "cliniko_emulator", "--port", "0", "--error-rate", "3"],
        capture_output=True,
        text=True,
        timeout=30,
    )
    assert result.returncode == 2 and "error_rate" in result.stderr
