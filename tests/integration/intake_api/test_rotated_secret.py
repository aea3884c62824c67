"""A form's signing secret (or token) rotated: in Secrets Manager first, then in the provider's
settings. A provider does not deliver again after a 401 (Typeform retries only 408, 423, 429
and 503), so a delivery refused while a container's cached value was the other one was lost."""

from __future__ import annotations

import time
import uuid
from datetime import datetime, timedelta

import boto3
from aws_lambda_powertools.utilities.parameters import base as powertools_parameters
from cliniko_automations.common import aws, logs, secrets

from tests.unit.intake_api import samples

TYPEFORM_SECRET = "cliniko-automations/forms/referral-typeform/signing-secret"
JOTFORM_TOKEN = "cliniko-automations/forms/intake-jotform/token"
ROTATED = "whsec_rotated_fedcba9876543210"


def typeform(intake, secret: str, response: str) -> int:
    body = samples.typeform_body(response_token=response)
    headers = {
        "Content-Type": "application/json",
        "Typeform-Signature": samples.typeform_signature(body, secret=secret),
    }
    return intake.post("referral-typeform", body, headers)["statusCode"]


def jotform(intake, token: str) -> int:
    body, content_type = samples.jotform_body()
    answer = intake.post(
        "intake-jotform", body, {"Content-Type": content_type}, base64=True, query={"token": token}
    )
    return answer["statusCode"]


def rotate(name: str, value: str) -> None:
    boto3.client("secretsmanager").put_secret_value(SecretId=name, SecretString=value)


def test_a_delivery_signed_with_the_new_secret_is_accepted_by_a_warm_container(intake):
    assert typeform(intake, samples.SECRET, "before") == 202  # the old secret is cached now
    rotate(TYPEFORM_SECRET, ROTATED)
    assert typeform(intake, ROTATED, "after") == 202
    assert typeform(intake, ROTATED, "after, again") == 202
    assert typeform(intake, "whsec_forged_0123456789abcdef", "forged") == 401


def test_a_value_read_is_blanked_from_the_logs_from_then_on(intake):
    # logs.py: the redacting filter blanks "every secret value this container has read".
    fresh = f"whsec_{uuid.uuid4().hex}"
    rotate(TYPEFORM_SECRET, fresh)  # a cold container: its one read is of this value
    assert typeform(intake, fresh, "signed with the value read") == 202
    assert logs.redact(f"secret={fresh}") == "secret=[secret]"


def test_a_token_rotated_is_accepted_by_a_warm_container(intake):
    assert jotform(intake, samples.TOKEN) == 202
    rotate(JOTFORM_TOKEN, "jotform-token-rotated-0123456789")
    assert jotform(intake, "jotform-token-rotated-0123456789") == 202


def test_a_secret_rotated_to_a_binary_value_is_read_as_its_text(intake):
    assert typeform(intake, samples.SECRET, "before") == 202
    boto3.client("secretsmanager").put_secret_value(
        SecretId=TYPEFORM_SECRET, SecretBinary=ROTATED.encode()
    )
    assert typeform(intake, ROTATED, "after") == 202


def test_a_delivery_signed_with_the_old_secret_is_accepted_until_the_provider_is_changed(intake):
    rotate(TYPEFORM_SECRET, ROTATED)  # a cold container: it reads the new secret
    assert typeform(intake, samples.SECRET, "provider not changed yet") == 202
    assert typeform(intake, ROTATED, "provider changed") == 202


def test_the_old_secret_is_refused_once_the_rotation_is_past_its_grace(intake, monkeypatch):
    monkeypatch.setattr(secrets, "ROTATION_GRACE_SECONDS", 0)
    rotate(TYPEFORM_SECRET, ROTATED)
    assert typeform(intake, samples.SECRET, "long after the rotation") == 401
    assert typeform(intake, ROTATED, "signed as it should be") == 202


def test_a_secret_rotated_because_it_leaked_stops_working_once_the_cache_ages(intake, monkeypatch):
    # secrets.py: a rotated secret is picked up within SECRET_MAX_AGE (5 minutes) without a
    # cold start; past the grace, the leaked value then signs nothing.
    assert typeform(intake, samples.SECRET, "before") == 202  # a warm container caches it
    monkeypatch.setattr(secrets, "ROTATION_GRACE_SECONDS", 0)
    rotate(TYPEFORM_SECRET, ROTATED)
    later = datetime.now() + timedelta(minutes=5, seconds=1)

    class Later(datetime):
        @classmethod
        def now(cls, tz=None):
            return later

    monkeypatch.setattr(powertools_parameters, "datetime", Later)  # the cache's clock
    assert typeform(intake, samples.SECRET, "signed with the leaked value") == 401
    assert typeform(intake, ROTATED, "signed as it should be") == 202


class Thawed:
    """`time` as secrets.py reads it in a Lambda thawed after an hour's freeze, whose monotonic
    clock did not run meanwhile (Firecracker does not promise it does)."""

    @staticmethod
    def monotonic() -> float:
        return time.monotonic()

    @staticmethod
    def time() -> float:
        return time.time() + 3600


def test_values_read_past_the_cache_before_a_freeze_are_not_used_after_it(intake, monkeypatch):
    assert typeform(intake, samples.SECRET, "before") == 202  # cached
    rotate(TYPEFORM_SECRET, ROTATED)
    # Read past the cache: the new value and, new as it is, the previous one.
    assert typeform(intake, ROTATED, "after the rotation") == 202
    # Frozen for an hour, during which the secret is rotated again: the first value is two
    # rotations and an hour old, past any grace.
    rotate(TYPEFORM_SECRET, "whsec_rotated_again_0123456789")
    later = datetime.now() + timedelta(hours=1)

    class Later(datetime):
        @classmethod
        def now(cls, tz=None):
            return later.astimezone(tz) if tz else later

    monkeypatch.setattr(powertools_parameters, "datetime", Later)  # the cache's clock
    monkeypatch.setattr(secrets, "time", Thawed)
    assert typeform(intake, "whsec_rotated_again_0123456789", "after the thaw") == 202
    assert typeform(intake, samples.SECRET, "signed with the value of two rotations ago") == 401
    assert typeform(intake, ROTATED, "signed with the previous value") == 202


def test_forged_deliveries_read_the_secret_past_the_cache_once_a_period(intake):
    reads: list[str] = []

    def read(params, **_) -> None:
        reads.append(params.get("VersionStage", "AWSCURRENT"))

    events = aws.client("secretsmanager", config=aws.FAIL_FAST).meta.events  # the functions'
    events.register("before-parameter-build.secrets-manager.GetSecretValue", read)
    try:
        assert typeform(intake, "whsec_forged_0123456789abcdef", "forged") == 401
        # The cache's read, then the current value past it and (it is new) the previous one.
        assert reads == ["AWSCURRENT", "AWSCURRENT", "AWSPREVIOUS"]
        for attempt in range(4):
            assert typeform(intake, "whsec_forged_0123456789abcdef", f"forged {attempt}") == 401
        assert len(reads) == 3
    finally:
        events.unregister("before-parameter-build.secrets-manager.GetSecretValue", read)


def test_a_secret_that_cannot_be_read_again_asks_the_provider_to_retry(intake):
    assert typeform(intake, samples.SECRET, "cached") == 202
    boto3.client("secretsmanager").delete_secret(
        SecretId=TYPEFORM_SECRET, ForceDeleteWithoutRecovery=True
    )
    assert typeform(intake, ROTATED, "signed with a secret that cannot be read") == 503


def test_a_secret_that_cannot_be_read_again_is_asked_for_once_a_period(intake):
    assert typeform(intake, samples.SECRET, "cached") == 202
    boto3.client("secretsmanager").delete_secret(
        SecretId=TYPEFORM_SECRET, ForceDeleteWithoutRecovery=True
    )
    reads: list[str] = []

    def read(params, **_) -> None:
        reads.append(params["SecretId"])

    events = aws.client("secretsmanager", config=aws.FAIL_FAST).meta.events
    events.register("before-parameter-build.secrets-manager.GetSecretValue", read)
    try:
        for attempt in range(4):
            assert typeform(intake, "whsec_forged_0123456789abcdef", f"forged {attempt}") == 503
    finally:
        events.unregister("before-parameter-build.secrets-manager.GetSecretValue", read)
    assert reads == [TYPEFORM_SECRET]
