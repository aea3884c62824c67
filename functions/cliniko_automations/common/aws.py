"""One boto3 session per process, shared by every AWS client and by Powertools' providers.

A boto3 session loads botocore's endpoint and service data; each extra session pays that again
(about 70 ms on a cold start), while another client on the same session costs a few ms, and
the same client again costs nothing. So every adapter takes its clients from here, and
Powertools' Secrets Manager provider is built on the same session
(`secrets._use_shared_session`).
boto3 clients are thread-safe, so one per service and configuration serves the whole process.
A client that a function needs only off its usual path (the worker's SQS client, for retries,
dead letters and parking) is made on its first use (`ClientOnFirstUse`): another client costs
some 24 million instructions, 1.7 % of a minimal handler's cold start.

botocore's defaults wait 60 s to connect and 60 s for an answer, and retry (3 attempts,
DynamoDB 4): one call to a stalled service held a function up to 240 s, past every function's
timeout but the cleanup's (the intake API's 10 s and the erasure API's 29 s end in API
Gateway's own 500, which nobody is told to send again). Every function's client is made with
`FAIL_FAST`, so a stalled service becomes the function's own error within its invocation in a
few seconds: a 503 the sender retries, a fallback, a record handed back, a run's error.
"""

from __future__ import annotations

from functools import cache
from typing import Any

import boto3
import botocore.session
from botocore.client import BaseClient
from botocore.config import Config

# Two attempts of at most 1 s to connect and 2 s to answer: a healthy call takes tens of ms,
# a Scan page of 1 MB or a batch write of 25 items well under 2 s. An answer slower than that
# is asked for again: every write the functions make bears it (README, "Limits and honest
# notes": an AWS write whose answer is lost).
# total_max_attempts: botocore's `max_attempts` counts the retries after the first call, so
# max_attempts 2 made three (a stalled service held a call 6 s of the intake API's 10).
FAIL_FAST = Config(
    connect_timeout=1, read_timeout=2, retries={"mode": "standard", "total_max_attempts": 2}
)


@cache
def botocore_session() -> botocore.session.Session:
    """The botocore session under `session()`, made here because a boto3 session does not
    expose its own: the operating CLIs set its default client configuration through it
    (`operator_cli.bounded_aws_waits`)."""
    return botocore.session.get_session()


@cache
def session() -> boto3.session.Session:
    return boto3.session.Session(botocore_session=botocore_session())


def client(service: str, config: Config | None = None) -> BaseClient:
    """The process's client for `service` (one per distinct `config` object; no config,
    however it is passed, is one)."""
    return _client(service, config)


@cache
def _client(service: str, config: Config | None) -> BaseClient:
    # Keyed on the arguments as given here: a cache on `client` itself would tell
    # `client("sqs")` from `client("sqs", None)` and make two clients.
    return session().client(service, config=config)


class ClientOnFirstUse:
    """Stands for `client(service, config)`, made when one of its methods is first used."""

    def __init__(self, service: str, config: Config | None = None) -> None:
        self._service, self._config = service, config

    def __getattr__(self, name: str) -> Any:
        return getattr(client(self._service, self._config), name)


def queue_url_for(queue_arn: str) -> str:
    """The queue URL an SQS ARN names (arn:PARTITION:sqs:REGION:ACCOUNT:NAME).

    Built rather than asked for (GetQueueUrl): a role then needs no permission for it, and no
    call is spent on it.
    """
    parts = queue_arn.split(":")
    if len(parts) != 6 or parts[0] != "arn" or parts[2] != "sqs" or not all(parts[3:]):
        raise ValueError("not an SQS queue ARN")
    partition, region, account, name = parts[1], parts[3], parts[4], parts[5]
    suffix = "amazonaws.com.cn" if partition == "aws-cn" else "amazonaws.com"
    return f"https://sqs.{region}.{suffix}/{account}/{name}"
