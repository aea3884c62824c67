"""moto's server made to answer in a time that does not grow with what it holds.

moto 5 spends most of a busy test's CPU on work whose answer never changes:
- every request lists moto's own package directory (about 200 `isdir` calls), holding the
  dispatcher's lock, to learn whether the request's host names a service;
- SQS's receive reads the queue's every attribute, once for each message it hands out, to
  learn the retention period: each read counts the queue's messages, visible, in flight and
  delayed, asking the clock twice a message through two datetime conversions.

A queue of a few hundred messages made each receive cost milliseconds, and the tests share
two cores. The answers are the same: the directory is read once, the retention period is the
queue's own, and the clock is `time.time()`, which moto's datetime arithmetic works out to.
For the tests' moto server and the local run's, as `moto_atomic` is.
"""

from __future__ import annotations

import functools
import time
from typing import Any

import moto.backends
import moto.sqs.models
from moto.core.utils import unix_time as moto_unix_time
from moto.sqs.models import SQSBackend

_list_of_moto_modules = moto.backends.list_of_moto_modules


@functools.cache
def _moto_modules_read_once() -> tuple[str, ...]:
    return tuple(_list_of_moto_modules())


def _unix_time(dt: Any = None) -> float:
    return time.time() if dt is None else moto_unix_time(dt)


def _unix_time_millis(dt: Any = None) -> float:
    return _unix_time(dt) * 1000.0


def _within_retention(self: Any, queue_name: str, message: Any) -> bool:
    retention = self.get_queue(queue_name).message_retention_period
    return bool(int(retention) + message.sent_timestamp / 1000 > time.time())


def moto_answers_quickly() -> None:
    """Patch moto (once per process, idempotent) as the module's docstring says."""
    moto.backends.list_of_moto_modules = _moto_modules_read_once
    moto.sqs.models.unix_time = _unix_time
    moto.sqs.models.unix_time_millis = _unix_time_millis
    SQSBackend.is_message_valid_based_on_retention_period = _within_retention  # type: ignore[method-assign]
