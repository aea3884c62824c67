"""Wiring shared by the Lambda handler and the CLI's local mode: settings -> Eraser."""

from __future__ import annotations

import boto3

from cliniko_automations.common.cliniko_accounts import client_for_secret
from cliniko_automations.common.secrets import SecretUnavailable, read_secret
from cliniko_automations.common.submission_store import DynamoSubmissionStore
from cliniko_automations.erasure.audit import DynamoAuditLog
from cliniko_automations.erasure.core import Eraser
from cliniko_automations.erasure.settings import ErasureSettings


def build_eraser(settings: ErasureSettings) -> Eraser:
    # client_for_secret reads CLINIKO_USER_AGENT / CLINIKO_BASE_URL itself; the settings model
    # has already checked they are present and well-formed.
    client = client_for_secret(settings.cliniko_api_key_secret_name)
    pepper = read_secret(settings.pepper_secret_name)
    submissions = DynamoSubmissionStore(boto3.client("dynamodb"), settings.submission_table)
    try:
        return Eraser(client, DynamoAuditLog(settings.audit_table), pepper, submissions=submissions)
    except ValueError as error:  # a pepper too short to hide emails: the secret is unusable
        raise SecretUnavailable(f"secret {settings.pepper_secret_name!r}: {error}") from None
