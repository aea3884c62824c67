"""The local run serves template.yaml: its routes as API Gateway would, its queues through
consumers, its schedules on demand, over real HTTP, moto and the emulator."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
import warnings
from urllib.parse import urlsplit

import boto3
import httpx
from botocore.auth import SigV4Auth
from botocore.awsrequest import AWSRequest
from botocore.credentials import Credentials
from cliniko_emulator import EmulatorControl
from local_run import defaults, demo
from local_run.__main__ import banner, run_demo
from local_run.template import ROOT, SamApp

APP = SamApp.load()


def contacts(system) -> list[dict]:
    with EmulatorControl(system.emulator_url) as control:
        return control.contacts()


def signed(method: str, url: str, body: bytes = b"") -> dict[str, str]:
    request = AWSRequest(
        method=method, url=url, data=body, headers={"content-type": "application/json"}
    )
    SigV4Auth(Credentials("AKIALOCALTEST", "secret"), "execute-api", "eu-west-1").add_auth(request)
    return dict(request.headers.items())


def test_serves_exactly_the_templates_routes(local_system):
    api = local_system.gateway.url
    assert local_system.status()["routes"] == [r.route_key for r in APP.http_routes()]
    assert httpx.get(f"{api}/forms/partner-json").status_code == 404
    assert httpx.post(f"{api}/nothing-here").json() == {"message": "Not Found"}
    assert httpx.post(f"{api}/forms/no-such-source", content=b"{}").status_code == 404


def test_queues_and_tables_follow_the_template(local_system):
    sqs = local_system.sqs()
    attributes = sqs.get_queue_attributes(
        QueueUrl=local_system.queue_url("SubmissionQueue"), AttributeNames=["All"]
    )["Attributes"]
    props = APP.resources["SubmissionQueue"]["Properties"]
    assert attributes["VisibilityTimeout"] == str(props["VisibilityTimeout"])
    redrive = json.loads(attributes["RedrivePolicy"])
    assert int(redrive["maxReceiveCount"]) == 5
    assert redrive["deadLetterTargetArn"].endswith("SubmissionDeadLetterQueue")
    dynamodb = boto3.client("dynamodb", region_name="eu-west-1")
    audit = dynamodb.describe_table(TableName=local_system.physical["ErasureAuditTable"].ref)
    assert [k["AttributeName"] for k in audit["Table"]["KeySchema"]] == ["request_id", "sk"]


def test_browser_form_post_becomes_a_contact(local_system):
    delivery = demo.html_delivery(
        local_system.site.url, defaults.HTML_SOURCE, local_system.captcha_field
    )
    answer = demo.send(local_system.gateway.url, delivery)
    assert answer.status_code == 303
    assert answer.headers["location"].startswith(f"{local_system.site.url}/thanks")
    assert local_system.drain(30)
    (contact,) = contacts(local_system)
    assert contact["email"] == "mary.jackson@example.com"
    assert contact["first_name"] == "Mary"
    # Form posts arrive base64-encoded, as HTTP APIs deliver non-JSON bodies.
    assert "mary.jackson@example.com" not in local_system.log_text()


def test_signed_json_delivery_and_a_tampered_one(local_system):
    secret = local_system.secrets["cliniko-automations/forms/partner-json/signing-secret"]
    delivery = demo.json_delivery(secret)
    assert demo.send(local_system.gateway.url, delivery).status_code == 202
    tampered = demo.Delivery(
        delivery.label, delivery.source, delivery.body.replace(b"Ada", b"Eve"), delivery.headers
    )
    assert demo.send(local_system.gateway.url, tampered).status_code == 401
    assert local_system.drain(30)
    assert [c["first_name"] for c in contacts(local_system)] == ["Ada"]


def test_demo_submits_from_several_providers(local_system, capsys):
    assert run_demo(local_system) == 0
    emails = sorted(c["email"] for c in contacts(local_system))
    assert len(emails) == len(demo.deliveries(local_system)) >= 5
    assert "Contacts in the emulator (5)" in capsys.readouterr().out


def test_banner_names_urls_and_a_curl_that_works(local_system):
    text = banner(local_system)
    assert local_system.gateway.url in text and local_system.site.url in text
    assert "python -m local_run fire ErasureOverdueFunction" in text
    # A schedule given by a parameter shows the value this run resolved.
    assert "CleanupStateMachine (rate(1 day)): python -m local_run fire CleanupStateMachine" in text
    curl = demo.html_curl(
        local_system.gateway.url,
        local_system.site.url,
        defaults.HTML_SOURCE,
        local_system.captcha_field,
    )
    assert curl in text


def test_iam_routes_need_a_signature_and_get_an_identity(local_system):
    url = f"{local_system.gateway.url}/erasure-requests"
    assert httpx.post(url, json={"request_id": "r-1", "reason": "x"}).status_code == 403
    with EmulatorControl(local_system.emulator_url) as control:
        control.seed(1, shard="au1")
        (seeded,) = [c for c in control.contacts() if c.get("shard") == "au1"]
    body = json.dumps(
        {
            "request_id": "local-req-1",
            "contact_id": seeded["id"],
            "reason": "ticket 42",
            "dry_run": True,
        }
    ).encode()
    answer = httpx.post(url, content=body, headers=signed("POST", url, body))
    assert answer.status_code == 200, answer.text
    assert answer.json()["dry_run"] is True
    get_url = f"{local_system.gateway.url}/erasure-requests/local-req-1"
    answer = httpx.get(get_url, headers=signed("GET", get_url))
    assert answer.status_code == 200, answer.text


def test_cors_preflight_follows_the_templates_configuration(local_system):
    url = f"{local_system.gateway.url}/forms/{defaults.HTML_SOURCE}"
    allowed = local_system.site.url
    ok = httpx.options(
        url,
        headers={
            "Origin": allowed,
            "Access-Control-Request-Method": "POST",
            "Access-Control-Request-Headers": "content-type",
        },
    )
    assert ok.headers["access-control-allow-origin"] == allowed
    assert "POST" in ok.headers["access-control-allow-methods"]
    posted = httpx.post(url, data={"name": "X Y"}, headers={"Origin": allowed})
    assert posted.status_code == 303
    assert posted.headers["access-control-allow-origin"] == allowed
    assert posted.headers.get_list("vary") == ["Origin"]  # the function's and the gateway's: one
    refused = httpx.options(
        url,
        headers={"Origin": "https://elsewhere.example", "Access-Control-Request-Method": "POST"},
    )
    assert "access-control-allow-origin" not in refused.headers
    answer = httpx.post(url, data={"name": "X Y"}, headers={"Origin": "https://elsewhere.example"})
    assert "access-control-allow-origin" not in answer.headers
    assert answer.status_code == 403
    assert contacts(local_system) == []


def test_partial_batch_failures_leave_only_the_failed_message(local_system):
    with EmulatorControl(local_system.emulator_url) as control:
        control.set_faults(error_rate=1.0, statuses=[503])
        delivery = demo.html_delivery(
            local_system.site.url, defaults.HTML_SOURCE, local_system.captcha_field
        )
        assert demo.send(local_system.gateway.url, delivery).status_code == 303
        sqs = local_system.sqs()
        queue = local_system.queue_url("SubmissionQueue")
        (consumer,) = local_system.consumers
        for _ in range(600):  # bounded: up to a minute on a busy machine
            if consumer.failed_items:
                break
            consumer._stop.wait(0.1)
        control.clear_faults()
    assert consumer.failed_items >= 1
    attributes = sqs.get_queue_attributes(
        QueueUrl=queue,
        AttributeNames=["ApproximateNumberOfMessages", "ApproximateNumberOfMessagesNotVisible"],
    )["Attributes"]
    # Reported as failed: not deleted, waiting out its visibility timeout for the next try.
    assert sum(int(v) for v in attributes.values()) == 1
    assert contacts(local_system) == []


def test_fire_a_scheduled_function(local_system):
    assert local_system.fire("ErasureOverdueFunction")["overdue"] == 0
    answer = httpx.post(f"{local_system.site.url}/_local/schedules/ErasureOverdueFunction")
    assert answer.status_code == 200
    assert answer.json()["result"]["overdue"] == 0
    assert httpx.post(f"{local_system.site.url}/_local/schedules/Nope").status_code == 404
    assert "OverdueErasureRequests" in local_system.log_text()


def test_fire_the_cleanup_state_machine_as_a_dry_run(local_system):
    assert run_demo(local_system) == 0
    # The schedule starts the state machine; the local run drives its loop to the end.
    answer = local_system.fire("CleanupStateMachine")
    assert answer["status"] == "finished" and answer["steps"] == 1
    assert answer["last"]["dry_run"] is True  # the template's default
    # The demo's contacts are new: no rule matches them yet, and nothing was archived.
    assert (answer["last"]["matched"], answer["last"]["archived"]) == (0, 0)
    assert contacts(local_system) and not [c for c in contacts(local_system) if c["archived_at"]]
    # The run's report is in the runs table, read by the cleanup CLI as on a stack.
    env = {**os.environ, **local_system.operator_environment()}
    shown = subprocess.run(
        [sys.executable, "scripts/cleanup.py", "--json", "status"],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert shown.returncode == 0, shown.stderr
    report = json.loads(shown.stdout)
    assert report["run_id"] == answer["run_id"] and report["status"] == "finished"
    assert [r["rule"] for r in report["rules"]] == ["form-test-submissions", "stale-form-contacts"]


def print_to_stderr(message, category, filename, lineno, file=None, line=None) -> None:
    """What Python's own warnings.showwarning does: to the sys.stderr of the moment."""
    sys.stderr.write(warnings.formatwarning(message, category, filename, lineno, line))


def test_what_a_function_writes_to_stderr_goes_to_its_log(local_system, capfd):
    # As in Lambda, where stderr is the function's log too. A warning Powertools prints at a
    # cleanup begin (no metrics to publish) landed amid the local run's banner instead.
    with warnings.catch_warnings():
        # Printed to sys.stderr as outside pytest (which records warnings instead).
        warnings.simplefilter("always")
        warnings.showwarning = print_to_stderr
        assert local_system.fire("CleanupStateMachine")["status"] == "finished"
    assert "No application metrics to publish" in local_system.log_text()
    assert "No application metrics" not in capfd.readouterr().err


def test_what_a_functions_own_threads_write_goes_to_its_log(local_system, capfd):
    # As in Lambda, where every thread of the process writes to its log. The change feed polls
    # its accounts in threads of its own: each refused key's Misconfigured metric (and its
    # "misconfigured ..." line) went to the terminal, and the local run's log had none.
    with EmulatorControl(local_system.emulator_url) as control:
        for key in local_system.account_keys.values():
            control.revoke_key(key)
    answer = local_system.fire("ChangeFeedFunction")
    assert len(answer["accounts"]) == 2  # polled in two threads
    assert {a["error"] for a in answer["accounts"]} == {"cliniko_Unauthorized"}
    printed = [json.loads(line) for line in local_system.log_text().splitlines()]
    reported = [m["setting"] for m in printed if m.get("Misconfigured") == [1.0]]
    assert sorted(reported) == [
        f"secret 'cliniko-automations/accounts/{a}/api-key' "
        f"(cliniko_accounts.yaml accounts.{a}.api_key_secret)"
        for a in ("main-clinic", "north-clinic")
    ]
    assert "Misconfigured" not in capfd.readouterr().out


def test_sample_page_embeds_the_form_snippet(local_system):
    page = httpx.get(f"{local_system.site.url}/").text
    action = f"{local_system.gateway.url}/forms/{defaults.HTML_SOURCE}"
    assert f'action="{action}"' in page
    assert 'name="website"' in page  # the honeypot
    assert urlsplit(local_system.site.url).hostname == "127.0.0.1"


def test_operating_clis_work_on_the_local_run(local_system):
    # A malformed message is a permanent failure: the worker sends it to the dead letters.
    local_system.sqs().send_message(
        QueueUrl=local_system.queue_url("SubmissionQueue"), MessageBody='{"not": "a submission"}'
    )
    assert local_system.drain(60)
    env = {**os.environ, **local_system.operator_environment()}
    # The cleanup's local steps publish metrics: without the template's namespace (the tests
    # set one of their own) `cleanup.py plan --local` failed in a local_run shell.
    assert local_system.operator_environment()["POWERTOOLS_METRICS_NAMESPACE"] == (
        "ClinikoAutomations/cliniko-automations-local"
    )
    for name in ("DEAD_LETTER_QUEUE_URL", "SUBMISSION_QUEUE_URL", "IDEMPOTENCY_TABLE"):
        assert env[name].startswith(("http://127.0.0.1", "cliniko-automations-local-")), name
    listed = subprocess.run(
        [sys.executable, "scripts/dead_letters.py", "list", "--json"],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert listed.returncode == 0, listed.stderr
    (letter,) = [json.loads(line) for line in listed.stdout.splitlines()]
    assert letter["reason"]


def test_the_forms_captcha_is_checked_by_the_local_siteverify(local_system):
    field = local_system.captcha_field
    assert field == "cf-turnstile-response"  # form_sources.yaml's html source uses Turnstile
    url = f"{local_system.gateway.url}/forms/{defaults.HTML_SOURCE}"
    origin = {"Origin": local_system.site.url}
    person = {"name": "Ada Lovelace", "email": "ada@example.com"}
    for token in (None, "forged-token"):
        data = dict(person, **({field: token} if token else {}))
        answer = httpx.post(url, data=data, headers=origin)
        assert answer.status_code == 303
        assert answer.headers["location"].startswith(f"{local_system.site.url}/problem")
    answer = httpx.post(url, data={**person, field: defaults.CAPTCHA_TEST_TOKEN}, headers=origin)
    assert answer.headers["location"].startswith(f"{local_system.site.url}/thanks")
    assert local_system.site.captcha_checks == 2  # a missing token is refused without a call
    assert local_system.drain(30)
    assert [c["email"] for c in contacts(local_system)] == ["ada@example.com"]


def test_fire_the_change_feed_shows_events_on_the_bus_and_signed_webhooks(local_system):
    # The feed starts from the local run's start: what was posted before its first fire shows,
    # even longer before it than the feed's overlap (5 s) reads back.
    assert run_demo(local_system) == 0
    time.sleep(6)
    answer = local_system.fire("ChangeFeedFunction")
    assert {a["account"] for a in answer["accounts"]} == {"main-clinic", "north-clinic"}
    created = sum(a["by_type"].get("contact.created", 0) for a in answer["accounts"])
    assert created == len(contacts(local_system))
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        seen = httpx.get(f"{local_system.site.url}/_local/events").json()
        if len(seen["bus"]) >= created and len(seen["webhooks"]) >= created:
            break
        time.sleep(0.5)
    assert {e["detail-type"] for e in seen["bus"]} == {"contact.created"}
    assert len(seen["webhooks"]) == created
    assert all(w["verified"] for w in seen["webhooks"]), seen["webhooks"]
    # Nobody was erased: no event tells a receiver to delete what it holds.
    assert {e["erased"] for e in seen["bus"]} == {w["erased"] for w in seen["webhooks"]} == {False}
    # The bus shows ids and field names; nothing of the people the demo submitted.
    names = {c["email"] for c in contacts(local_system)}
    assert not [n for n in names if n and n in json.dumps(seen)]
