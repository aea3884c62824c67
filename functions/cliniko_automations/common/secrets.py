"""Secrets Manager reads, cached for five minutes in the container (Powertools parameters).

A rotated secret is picked up within `SECRET_MAX_AGE` seconds without a cold start, and a warm
container does not call Secrets Manager on every invocation. Values are never logged.
"""

from __future__ import annotations

from aws_lambda_powertools.utilities import parameters
from aws_lambda_powertools.utilities.parameters.exceptions import GetParameterError

from cliniko_automations.common.logs import register_secret

SECRET_MAX_AGE = 300


class SecretUnavailable(RuntimeError):
    """The secret could not be read, or holds nothing usable. The message names the secret,
    never its value."""


def read_secret(name: str) -> str:
    """The SecretString (or UTF-8 SecretBinary) of secret `name`."""
    if not isinstance(name, str) or not name.strip():
        raise SecretUnavailable("a secret name is required")
    try:
        value = parameters.get_secret(name, max_age=SECRET_MAX_AGE)
    except GetParameterError as exc:
        raise SecretUnavailable(f"secret {name!r} could not be read") from exc
    if isinstance(value, bytes):
        try:
            value = value.decode("utf-8")
        except UnicodeDecodeError as exc:
            raise SecretUnavailable(f"secret {name!r} is binary, not text") from exc
    if not isinstance(value, str) or not value.strip():
        raise SecretUnavailable(f"secret {name!r} is empty")
    register_secret(value)  # the logs' redacting filter blanks it from now on
    return value
