"""Runs `lambda_runner.py` and records every AWS call and Cliniko request its handler makes.

Standard library only, like the runner it wraps, which is its last argument (run_cold's
`wrapper`: `python3.13 -S -B call_tracer.py python3.13 -S -B lambda_runner.py`,
PYTHONPATH the artifact alone). botocore's and httpx's send methods are wrapped as soon as
their modules have loaded (the handler imports them, lazily or not), and each call is written
to the JSON file `CALL_TRACE_FILE` as the process exits: what it was (service and
operation, or method and path), when it started (ms from the process's start), how long it
took, on which thread, and the resource it named (a table, index, secret or queue name, as
the deployment names them; a transaction's parts as `Put:table;Update:table`). No other
parameter, no body and no header is written.
"""

from __future__ import annotations

import atexit
import builtins
import json
import os
import runpy
import sys
import threading
import time

STARTED = time.perf_counter()
_calls: list[dict[str, object]] = []
_wrapped: set[str] = set()
_import = builtins.__import__


def _record(kind: str, what: str, began: float, resource: str | None = None) -> None:
    _calls.append(
        {
            "kind": kind,
            "what": what,
            "resource": resource,
            "at_ms": round((began - STARTED) * 1000, 1),
            "ms": round((time.perf_counter() - began) * 1000, 1),
            "thread": threading.current_thread().name,
        }
    )


def _resource(params) -> str | None:
    items = params.get("TransactItems")
    if isinstance(items, list):  # IAM authorises each part: "Put:table;Update:table"
        return ";".join(
            f"{kind}:{part.get('TableName')}"
            for item in items
            if isinstance(item, dict)
            for kind, part in item.items()
            if isinstance(part, dict)
        )
    if isinstance(params.get("TableName"), str) and isinstance(params.get("IndexName"), str):
        return f"{params['TableName']}/index/{params['IndexName']}"  # as IAM names an index
    for key in ("TableName", "SecretId", "EventBusName"):
        if isinstance(params.get(key), str):
            return params[key]
    queue = params.get("QueueUrl")
    return queue.rsplit("/", 1)[-1] if isinstance(queue, str) else None


def _wrap_botocore(module) -> None:
    send = module.BaseClient._make_api_call

    def traced(self, operation, params):
        began = time.perf_counter()
        try:
            return send(self, operation, params)
        finally:
            _record(
                "aws",
                f"{self.meta.service_model.service_name}.{operation}",
                began,
                _resource(params),
            )

    module.BaseClient._make_api_call = traced


def _wrap_httpx(module) -> None:
    send = module.Client.send

    def traced(self, request, **kwargs):
        began = time.perf_counter()
        try:
            return send(self, request, **kwargs)
        finally:
            _record("cliniko", f"{request.method} {request.url.path}", began)

    module.Client.send = traced


def _importing(name, *args, **kwargs):
    module = _import(name, *args, **kwargs)
    if len(_wrapped) < 2:
        for key, attribute, wrap in (
            ("botocore.client", "BaseClient", _wrap_botocore),
            ("httpx", "Client", _wrap_httpx),
        ):
            loaded = sys.modules.get(key)
            # Wrapped once the module has finished loading (a partial one lacks the class).
            if key not in _wrapped and loaded is not None and hasattr(loaded, attribute):
                _wrapped.add(key)
                wrap(loaded)
    return module


def _write() -> None:
    with open(os.environ["CALL_TRACE_FILE"], "w") as out:
        json.dump(_calls, out)


def main() -> None:
    runner = sys.argv[-1]  # after the interpreter and flags run_cold puts before it
    builtins.__import__ = _importing
    atexit.register(_write)
    sys.argv = [runner]
    runpy.run_path(runner, run_name="__main__")


if __name__ == "__main__":
    main()
