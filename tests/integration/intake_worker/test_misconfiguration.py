"""A misconfigured deployment, seen by the operator: the worker through its SQS handler (moto,
the Cliniko emulator over HTTP). Each mistake dead-letters the submission at once (no retries
that can only fail alike), with the fix as the dead letter's `fix`, one log line naming the
setting and the fix, and one `Misconfigured` count, the metric template.yaml alarms on."""

from __future__ import annotations

import io
import json

import boto3
import pytest
from aws_lambda_powertools.utilities import parameters
from aws_lambda_powertools.utilities.parameters.exceptions import GetParameterError
from botocore.exceptions import ClientError
from cliniko_automations.intake.submission import ContactDraft, Submission
from cliniko_automations.intake_worker import handler as worker_handler

from tests.fixtures.apigw import LambdaContext
from tests.integration.intake_worker.resources import (
    WORKER_TIMEOUT_MS,
    WorkerStack,
    captured_logs,
    create_worker_stack,
    emf_metrics,
    json_submission,
    load_dead_letters_script,
    poll_once,
    put_secrets,
    worker_environment,
    write_worker_config,
)

SECRET = "tests/cliniko/test-clinic"
WHERE = "cliniko_accounts.yaml accounts.test-clinic.api_key_secret"


def submission() -> Submission:
    return json_submission(
        ContactDraft(first_name="Ana", last_name="Lima", email="ana.lima@example.com")
    )


@pytest.fixture
def stack(aws, cliniko, monkeypatch, tmp_path) -> WorkerStack:
    stack = create_worker_stack()
    worker_environment(monkeypatch, stack, cliniko.base_url_template, write_worker_config(tmp_path))
    return stack


def deliver_once(stack: WorkerStack, sub: Submission) -> list[dict]:
    """Send `sub` and run one delivery; the JSON log lines at ERROR. Fails unless the message
    left the main queue at once (dead-lettered, not handed back for a retry)."""
    stack.enqueue(sub)
    context = LambdaContext(function_name="IntakeWorkerFunction", timeout_ms=WORKER_TIMEOUT_MS)
    with captured_logs("intake") as logs:
        messages, failed = poll_once(stack, worker_handler.lambda_handler, context, visibility=0)
    assert len(messages) == 1
    assert failed == set()
    assert stack.counts(stack.queue_url) == (0, 0)
    lines = [json.loads(line) for line in logs.lines if line.startswith("{")]
    return [line for line in lines if line.get("level") == "ERROR"]


def attempt_once(stack: WorkerStack, capsys) -> tuple[dict, list[dict], dict[str, float]]:
    """One submission, one delivery: its dead letter's attributes, the ERROR log lines and
    the metrics."""
    errors = deliver_once(stack, submission())
    [letter] = stack.drain(stack.dead_letter_queue_url)
    attributes = {k: v["StringValue"] for k, v in letter["MessageAttributes"].items()}
    return attributes, errors, emf_metrics(capsys.readouterr().out)


def assert_told_once(attributes, errors, metrics, *, reason: str, message: str) -> None:
    assert attributes["failure_reason"] == reason
    assert attributes["fix"] == message
    [line] = errors  # one line, and it is the fix
    assert line["message"] == message
    assert line["reason"] == reason
    assert metrics.get("Misconfigured") == 1


def test_key_on_the_wrong_shard(stack, cliniko, capsys) -> None:
    # The account is on au1; the key says uk2, so it is sent to uk2, where Cliniko says 401.
    wrong_shard = cliniko.api_key.rsplit("-", 1)[0] + "-uk2"
    put_secrets({SECRET: wrong_shard})
    attributes, errors, metrics = attempt_once(stack, capsys)
    assert_told_once(
        attributes,
        errors,
        metrics,
        reason="cliniko_unauthorized",
        message=(
            f"misconfigured secret '{SECRET}' ({WHERE}): Cliniko refused the API key on shard "
            "uk2 (401). Fix: the key is wrong or revoked, or belongs to another shard. Paste "
            "the whole key as Cliniko showed it, shard suffix included (the part after the "
            "last '-', e.g. '-au2'; a key without one is sent to au1), into secret "
            f"'{SECRET}'"
        ),
    )
    assert len(cliniko.control.requests()) == 1  # one refused lookup, no retries
    assert wrong_shard not in "".join(map(str, errors))
    assert cliniko.control.contacts() == []


def test_a_user_without_the_permission(stack, cliniko, capsys) -> None:
    read_only = cliniko.api_key.rsplit("-", 1)[0] + "ro-au1"
    cliniko.control.add_key(read_only, read_only=True)
    put_secrets({SECRET: read_only})
    attributes, errors, metrics = attempt_once(stack, capsys)
    assert_told_once(
        attributes,
        errors,
        metrics,
        reason="cliniko_forbidden",
        message=(
            f"misconfigured secret '{SECRET}' ({WHERE}): Cliniko refused the request (403). "
            "Fix: the Cliniko user who owns the API key lacks the permission. Use the key of a "
            f"user whose role may view, create, edit and archive contacts, into secret '{SECRET}'"
        ),
    )


def test_a_missing_secret(stack, capsys) -> None:
    attributes, errors, metrics = attempt_once(stack, capsys)
    assert_told_once(
        attributes,
        errors,
        metrics,
        reason="secret_missing",
        message=(
            f"misconfigured secret '{SECRET}' ({WHERE}): no such secret. Fix: create it in "
            f"this account and region (aws secretsmanager create-secret --name {SECRET} "
            "--secret-string file://value.txt), or correct the name"
        ),
    )


def test_a_secret_scheduled_for_deletion(stack, cliniko, capsys) -> None:
    # `delete-secret` keeps it recoverable for 7 to 30 days, and Secrets Manager answers
    # InvalidRequestException meanwhile: retried as a moment's outage before, with no fix.
    put_secrets({SECRET: cliniko.api_key})
    boto3.client("secretsmanager").delete_secret(SecretId=SECRET, RecoveryWindowInDays=7)
    attributes, errors, metrics = attempt_once(stack, capsys)
    assert_told_once(
        attributes,
        errors,
        metrics,
        reason="secret_deleted",
        message=(
            f"misconfigured secret '{SECRET}' ({WHERE}): the secret is scheduled for deletion. "
            f"Fix: restore it (aws secretsmanager restore-secret --secret-id {SECRET}) before "
            "its recovery window ends, or name another secret"
        ),
    )


def test_a_secret_its_kms_key_will_not_decrypt(stack, cliniko, monkeypatch, capsys) -> None:
    # Its KMS key disabled or scheduled for deletion: Secrets Manager answers DecryptionFailure
    # until someone acts. Retried as a moment's outage before, with no fix to make.
    put_secrets({SECRET: cliniko.api_key})
    read = parameters.get_secret

    def undecryptable(name: str, **kwargs):
        if name != SECRET:
            return read(name, **kwargs)
        try:
            raise ClientError(
                {"Error": {"Code": "DecryptionFailure", "Message": "cannot decrypt"}},
                "GetSecretValue",
            )
        except ClientError as exc:  # as Powertools raises it: the AWS error its context
            raise GetParameterError(str(exc)) from exc

    monkeypatch.setattr(parameters, "get_secret", undecryptable)
    attributes, errors, metrics = attempt_once(stack, capsys)
    assert_told_once(
        attributes,
        errors,
        metrics,
        reason="secret_not_decryptable",
        message=(
            f"misconfigured secret '{SECRET}' ({WHERE}): the secret cannot be decrypted. Fix: "
            "its KMS key will not decrypt it: enable the key (aws kms enable-key --key-id KEY), "
            "or cancel its deletion (aws kms cancel-key-deletion --key-id KEY), KEY being the "
            f"KmsKeyId that aws secretsmanager describe-secret --secret-id {SECRET} shows"
        ),
    )


def test_a_key_stored_with_the_console_s_key_value_tab(stack, cliniko, capsys) -> None:
    # {"<key>":"<value>"}: told as what it is, before any request, the key never quoted.
    put_secrets({SECRET: json.dumps({"api_key": cliniko.api_key})})
    attributes, errors, metrics = attempt_once(stack, capsys)
    assert_told_once(
        attributes,
        errors,
        metrics,
        reason="secret_not_plain_text",
        message=(
            f"misconfigured secret '{SECRET}' ({WHERE}): the secret holds a JSON object. Fix: "
            "store the value alone as plain text: in the console, Edit the secret's value on "
            "its Plaintext tab (the Key/value tab stores a JSON object); with the CLI, aws "
            f"secretsmanager put-secret-value --secret-id {SECRET} --secret-string "
            "file://value.txt holding the value without quotes"
        ),
    )
    assert cliniko.control.requests() == []
    assert cliniko.api_key not in json.dumps([attributes, errors])


def test_a_key_rotated_within_the_cache_is_used_once_cliniko_refuses_the_old_one(
    stack, cliniko, capsys
) -> None:
    # README "Secrets": the new key put in the secret, then the old one archived in Cliniko,
    # within the five minutes a warm worker keeps the old one: a 401, but no misconfiguration.
    put_secrets({SECRET: cliniko.api_key})
    context = LambdaContext(function_name="IntakeWorkerFunction", timeout_ms=WORKER_TIMEOUT_MS)
    stack.enqueue(submission())
    poll_once(stack, worker_handler.lambda_handler, context, visibility=0)
    new_key = cliniko.api_key.rsplit("-", 1)[0] + "new-au1"
    cliniko.control.add_key(new_key)
    boto3.client("secretsmanager").put_secret_value(SecretId=SECRET, SecretString=new_key)
    cliniko.control.revoke_key(cliniko.api_key)  # archived in Cliniko

    stack.enqueue(submission())
    _, failed = poll_once(stack, worker_handler.lambda_handler, context, visibility=0)
    assert len(failed) == 1  # handed back to be tried again, not dead-lettered
    assert stack.drain(stack.dead_letter_queue_url) == []
    assert "Misconfigured" not in emf_metrics(capsys.readouterr().out)
    poll_once(stack, worker_handler.lambda_handler, context, visibility=0)
    assert stack.counts(stack.queue_url) == (0, 0)
    assert cliniko.control.requests()[-1]["status"] < 300


def test_a_secret_outside_the_prefix(stack, cliniko, monkeypatch, capsys) -> None:
    put_secrets({SECRET: cliniko.api_key})
    monkeypatch.setenv("SECRETS_PREFIX", "cliniko-automations/")
    attributes, errors, metrics = attempt_once(stack, capsys)
    assert_told_once(
        attributes,
        errors,
        metrics,
        reason="secret_outside_prefix",
        message=(
            f"misconfigured secret '{SECRET}' ({WHERE}): outside SecretsPrefix. Fix: the "
            "function may read only secrets whose names start with SecretsPrefix "
            "'cliniko-automations/': create the secret under it and name that one in "
            f"{WHERE}, or redeploy with a SecretsPrefix the name starts with"
        ),
    )
    assert cliniko.control.requests() == []


@pytest.mark.parametrize(
    "user_agent",
    [
        "Clinique \u00c9lan (it@clinique.fr)",
        "Clinic automations (it@localhost)",
        "Clinic  automations (it@example.com)",
    ],
)
def test_a_user_agent_the_runtime_refuses(stack, cliniko, monkeypatch, capsys, user_agent) -> None:
    put_secrets({SECRET: cliniko.api_key})
    monkeypatch.setenv("CLINIKO_USER_AGENT", user_agent)
    attributes, errors, metrics = attempt_once(stack, capsys)
    assert_told_once(
        attributes,
        errors,
        metrics,
        reason="cliniko_user_agent_invalid",
        message=(
            "misconfigured ClinikoUserAgent: Cliniko settings are invalid: CLINIKO_USER_AGENT: "
            "the User-Agent must read 'Name (email)': ASCII only (HTTP headers are ASCII, so no "
            "accented letters), single spaces, an e-mail whose domain has a dot, e.g. 'Acme "
            "Clinic Intake (it@acme.example)'. Fix: redeploy with the stack parameter "
            "ClinikoUserAgent set to such a value, quoted in samconfig.toml's "
            'parameter_overrides: ClinikoUserAgent="Acme Clinic (it@acme.example)"'
        ),
    )
    assert cliniko.control.requests() == []


def test_once_fixed_a_replay_creates_the_contact(stack, cliniko, monkeypatch) -> None:
    put_secrets({SECRET: cliniko.api_key.rsplit("-", 1)[0] + "-uk2"})
    sub = submission()
    deliver_once(stack, sub)
    monkeypatch.setenv("DEAD_LETTER_QUEUE_URL", stack.dead_letter_queue_url)
    dead_letters = load_dead_letters_script()
    out = io.StringIO()
    assert dead_letters.main(["show", sub.submission_id], out=out) == 0
    assert "cliniko_unauthorized" in out.getvalue()
    assert "fix:" in out.getvalue() and "shard uk2" in out.getvalue()

    boto3.client("secretsmanager").put_secret_value(SecretId=SECRET, SecretString=cliniko.api_key)
    parameters.clear_caches()  # what the five-minute secret cache does in a deployment
    assert dead_letters.main(["replay", "--all"], out=io.StringIO()) == 0
    context = LambdaContext(function_name="IntakeWorkerFunction", timeout_ms=WORKER_TIMEOUT_MS)
    poll_once(stack, worker_handler.lambda_handler, context, visibility=0)
    [contact] = cliniko.control.contacts()
    assert contact["email"] == "ana.lima@example.com"
