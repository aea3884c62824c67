"""A signing secret stored carelessly (the console's Key/value JSON, quoted, a file's byte-order
mark), through the intake API at LogLevel=DEBUG with every logger captured, botocore's
included: neither the value stored nor the value meant is in any line, whatever the answer."""

from __future__ import annotations

import boto3
import pytest

from tests.e2e.test_no_leaks_at_debug import (
    DEBUG_ENV,
    captured_lines,
    everything_at_debug,
    searched_forms,
)
from tests.unit.intake_api import samples

NAME = "cliniko-automations/forms/referral-typeform/signing-secret"


@pytest.mark.parametrize(
    ("stored", "status"),
    [
        (f'{{"signing_secret":"{samples.SECRET}"}}', 503),
        (f'"{samples.SECRET}"', 503),
        (f"\ufeff{samples.SECRET}\r\n", 202),
    ],
    ids=["console-key-value", "quoted", "byte-order-mark"],
)
def test_a_carelessly_stored_signing_secret_is_in_no_log_line_at_debug(
    intake, monkeypatch, capfd, stored, status
):
    for name, value in DEBUG_ENV.items():
        monkeypatch.setenv(name, value)
    manager = boto3.client("secretsmanager")
    manager.delete_secret(SecretId=NAME, ForceDeleteWithoutRecovery=True)
    manager.create_secret(Name=NAME, SecretString=stored)
    body = samples.typeform_body()
    headers = {
        "Content-Type": "application/json",
        "Typeform-Signature": samples.typeform_signature(body),
    }
    capfd.readouterr()

    with everything_at_debug() as (handler, stdout):
        answer = intake.post("referral-typeform", body, headers)
        printed = capfd.readouterr()

    assert answer["statusCode"] == status
    lines = captured_lines(handler, stdout, printed) + intake.logs.getvalue().splitlines()
    assert any(NAME in line for line in lines) == (status == 503)  # the line naming it
    text = "\n".join(lines)
    found = [f for f in searched_forms([samples.SECRET, stored]) if f in text]
    assert found == [], f"found in the logs: {[f[:4] + '...' for f in found]}"
