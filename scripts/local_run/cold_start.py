"""One cold start of a handler from a built artifact, as Lambda would run it: a fresh
interpreter of the runtime's Python with only the artifact on its path (`lambda_runner.py`).
The packaging smoke test and the cold-start benchmark both run handlers this way.
"""

from __future__ import annotations

import json
import os
import subprocess
import tempfile
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from local_run import defaults
from local_run.template import FunctionSpec

RUNNER = Path(__file__).with_name("lambda_runner.py")


class ColdStartFailed(RuntimeError):
    """The runner process itself failed (a handler's exception is in the result instead)."""


def run_cold(
    python: str,
    artifact: Path,
    spec: FunctionSpec,
    event: Any,
    environment: Mapping[str, str],
    aws_endpoint: str,
    *,
    profile: Path | None = None,
    import_only: bool = False,
    wrapper: Sequence[str] = (),
) -> dict[str, Any]:
    """The runner's result: the handler's return value (or `error`), import and first-call
    times, the module's file, and any module loaded from outside the artifact. With `profile`,
    cProfile's statistics of the import and the first call are written there; with
    `import_only`, the handler is imported and not invoked. `wrapper` is a command the
    interpreter runs under (valgrind, for the benchmark's instruction counts)."""
    env = {
        "PATH": os.environ["PATH"],
        "PYTHONPATH": str(artifact),
        "PYTHONDONTWRITEBYTECODE": "1",
        "AWS_ENDPOINT_URL": aws_endpoint,
        "AWS_REGION": defaults.REGION,
        "AWS_DEFAULT_REGION": defaults.REGION,
        "AWS_ACCESS_KEY_ID": "local",
        "AWS_SECRET_ACCESS_KEY": "local",
        "AWS_SESSION_TOKEN": "local",
        "AWS_LAMBDA_FUNCTION_NAME": spec.logical_id,
        **environment,
    }
    with tempfile.TemporaryDirectory() as tmp:
        result_file = Path(tmp) / "result.json"
        completed = subprocess.run(
            [*wrapper, python, "-S", "-B", str(RUNNER)],
            input=json.dumps(
                {
                    "handler": spec.handler,
                    "event": event,
                    "result_file": str(result_file),
                    "function_name": spec.logical_id,
                    "memory": spec.memory,
                    "timeout": spec.timeout,
                    "profile": str(profile) if profile else None,
                    "import_only": import_only,
                }
            ),
            env=env,
            capture_output=True,
            text=True,
            # Under valgrind a cold start runs some 50 times slower.
            timeout=1800 if wrapper else 120,
        )
        if completed.returncode != 0 or not result_file.exists():
            raise ColdStartFailed(
                f"{spec.logical_id}: runner exited {completed.returncode}\n{completed.stderr}"
            )
        return json.loads(result_file.read_text())
