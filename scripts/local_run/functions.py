"""Runs the template's functions in this process, each with its own environment.

A Lambda function sees only its own environment variables. Here all functions share one
process, so an invocation takes a lock, swaps `os.environ` to that function's environment
(the template's variables resolved, plus the runtime's own and the local endpoints) and
restores it afterwards. Invocations are therefore one at a time, which a local run can afford.
"""

from __future__ import annotations

import contextlib
import importlib
import os
import sys
import threading
import time
import uuid
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field
from typing import Any, TextIO

from .template import FunctionSpec, Resolver

_LOCK = threading.RLock()


class _ThreadRoutedStream:
    """sys.stdout for the local run: a thread that is running a function writes to that
    function's log; every other thread writes to the real stdout. (contextlib.redirect_stdout
    swaps the stream for every thread, which would send the banner into the log.)"""

    def __init__(self, default: TextIO) -> None:
        self.default = default
        self.local = threading.local()

    def _target(self) -> TextIO:
        return getattr(self.local, "target", None) or self.default

    def write(self, text: str) -> int:
        return self._target().write(text)

    def flush(self) -> None:
        self._target().flush()

    def __getattr__(self, name: str) -> Any:
        return getattr(self._target(), name)


_THREADS_ROUTED = False


def _routed_stdout() -> _ThreadRoutedStream:
    if not isinstance(sys.stdout, _ThreadRoutedStream):
        sys.stdout = _ThreadRoutedStream(sys.stdout)
    _threads_write_where_their_starter_does()
    return sys.stdout


def _threads_write_where_their_starter_does() -> None:
    """A thread a function starts (the change feed polls its accounts in a pool of its own)
    writes to that function's log, as every thread of a Lambda process writes to its log:
    routed by the starting thread's target, a refused key's "misconfigured ..." line and its
    Misconfigured metric went to the terminal, not to the log. Threads the local run starts
    itself (gateway, consumers) start with none and keep writing to the real streams."""
    global _THREADS_ROUTED
    if _THREADS_ROUTED:
        return
    _THREADS_ROUTED = True
    start = threading.Thread.start

    def start_routed(thread: threading.Thread) -> None:
        streams = [s for s in (sys.stdout, sys.stderr) if isinstance(s, _ThreadRoutedStream)]
        targets = [(s, getattr(s.local, "target", None)) for s in streams]
        if any(target is not None for _, target in targets):
            run = thread.run

            def run_routed() -> None:
                for stream, target in targets:
                    stream.local.target = target
                run()

            thread.run = run_routed  # type: ignore[method-assign]
        start(thread)

    threading.Thread.start = start_routed  # type: ignore[method-assign]


def _routed_stderr() -> _ThreadRoutedStream:
    """The same for stderr, which Lambda sends to the function's log too (a Python warning a
    library prints while the function runs)."""
    if not isinstance(sys.stderr, _ThreadRoutedStream):
        sys.stderr = _ThreadRoutedStream(sys.stderr)
    return sys.stderr


@dataclass
class LambdaContext:
    """The context object Lambda passes to a handler (the attributes Powertools reads)."""

    function_name: str
    memory_limit_in_mb: int
    timeout_ms: int
    region: str
    account: str
    function_version: str = "$LATEST"
    aws_request_id: str = field(default_factory=lambda: str(uuid.uuid4()))
    _started: float = field(default_factory=time.monotonic)

    @property
    def invoked_function_arn(self) -> str:
        return f"arn:aws:lambda:{self.region}:{self.account}:function:{self.function_name}"

    @property
    def log_group_name(self) -> str:
        return f"/aws/lambda/{self.function_name}"

    @property
    def log_stream_name(self) -> str:
        return time.strftime("%Y/%m/%d") + "/[$LATEST]local"

    def get_remaining_time_in_millis(self) -> int:
        return max(0, self.timeout_ms - int((time.monotonic() - self._started) * 1000))


class FunctionRuntime:
    """One template function: its handler, loaded lazily, and its resolved environment."""

    def __init__(
        self,
        spec: FunctionSpec,
        physical_name: str,
        resolver: Resolver,
        local_environment: Mapping[str, str],
        *,
        log: TextIO,
        region: str,
        account: str,
    ) -> None:
        self.spec = spec
        self.name = physical_name
        self.region = region
        self.account = account
        self.log = log
        resolved = resolver.resolve(spec.environment)
        self.template_environment = {key: str(value) for key, value in resolved.items()}
        self.environment = {
            **self.template_environment,
            # What Lambda's runtime sets for every function.
            "AWS_REGION": region,
            "AWS_DEFAULT_REGION": region,
            "AWS_LAMBDA_FUNCTION_NAME": physical_name,
            "AWS_LAMBDA_FUNCTION_MEMORY_SIZE": str(spec.memory),
            "AWS_LAMBDA_FUNCTION_VERSION": "$LATEST",
            "AWS_EXECUTION_ENV": "AWS_Lambda_python3.13",
            "_HANDLER": spec.handler,
            # Local only: where AWS and Cliniko are (moto, the emulator).
            **local_environment,
        }
        self._handler: Callable[[Any, Any], Any] | None = None
        self.invocations = 0
        # Called after each invocation (the local run records its state for `status`).
        self.on_invoked: Callable[[], None] | None = None

    @contextlib.contextmanager
    def _as_lambda(self) -> Iterator[None]:
        with _LOCK:
            saved = dict(os.environ)
            os.environ.clear()
            os.environ.update({k: v for k, v in saved.items() if not _function_variable(k)})
            os.environ.update(self.environment)
            # Function output (JSON logs, EMF metrics, warnings) goes to the local run's log
            # file.
            streams = (_routed_stdout(), _routed_stderr())
            for stream in streams:
                stream.local.target = self.log
            try:
                yield
            finally:
                for stream in streams:
                    stream.local.target = None
                os.environ.clear()
                os.environ.update(saved)
                self.log.flush()

    def handler(self) -> Callable[[Any, Any], Any]:
        if self._handler is None:
            module_name, _, attribute = self.spec.handler.rpartition(".")
            with self._as_lambda():
                module = importlib.import_module(module_name)
            self._handler = getattr(module, attribute)
        return self._handler

    def invoke(self, event: Any) -> Any:
        handler = self.handler()
        try:
            with self._as_lambda():
                self.invocations += 1
                context = LambdaContext(
                    function_name=self.name,
                    memory_limit_in_mb=self.spec.memory,
                    timeout_ms=self.spec.timeout * 1000,
                    region=self.region,
                    account=self.account,
                )
                return handler(event, context)
        finally:
            if self.on_invoked:
                self.on_invoked()


_OTHER_FUNCTIONS_VARIABLES: set[str] = set()


def _function_variable(name: str) -> bool:
    return name in _OTHER_FUNCTIONS_VARIABLES


def register_variables(runtimes: Mapping[str, FunctionRuntime]) -> None:
    """Every template variable is cleared before an invocation, so a function never sees one
    that only another function declares (as in Lambda)."""
    for runtime in runtimes.values():
        _OTHER_FUNCTIONS_VARIABLES.update(runtime.template_environment)
