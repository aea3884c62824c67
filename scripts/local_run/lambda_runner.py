"""Run one handler from a built artifact in a fresh interpreter, as a Lambda cold start does.

Standard library only: it runs under the runtime's Python (python3.13) with PYTHONPATH set to
the artifact alone (`python3.13 -S -B lambda_runner.py < spec.json`), so whatever the handler
imports must come from the artifact or the standard library. The spec (JSON on stdin):

    {"handler": "pkg.module.lambda_handler", "event": {...}, "result_file": "/tmp/out.json",
     "function_name": "...", "memory": 256, "timeout": 30, "profile": "/tmp/out.prof",
     "import_only": false}

With "profile", the import and the first invocation run under cProfile and its statistics are
written there (the cold-start benchmark's --profile: where a cold start's time goes). With
"import_only", the handler is imported and not invoked (the benchmark's --instructions counts
such a process to tell the import's share from the first call's). Once the result is written
the runner calls `os.getsid(0)`, a marker for the benchmark's instruction count (callgrind
dumps its count there: the import and first call, then the teardown, from one process).

Writes to result_file: the handler's return value, import and first-invocation times, the
process's peak memory, the top-level packages loaded, any module loaded from outside the
artifact and the standard library (there should be none), and how many dataclass sources were
compiled in the process rather than shipped compiled (none, on a handler's first call; None
when the shipped code was not in use).
"""

from __future__ import annotations

import importlib
import json
import os
import resource
import sys
import sysconfig
import time
import traceback
import uuid


class Context:
    def __init__(self, name: str, memory: int, timeout: int) -> None:
        self.function_name = name
        self.function_version = "$LATEST"
        self.memory_limit_in_mb = memory
        self.aws_request_id = str(uuid.uuid4())
        self.invoked_function_arn = f"arn:aws:lambda:eu-west-1:123456789012:function:{name}"
        self.log_group_name = f"/aws/lambda/{name}"
        self.log_stream_name = "local"
        self._deadline = time.monotonic() + timeout

    def get_remaining_time_in_millis(self) -> int:
        return max(0, int((self._deadline - time.monotonic()) * 1000))


def peak_memory_kib() -> int:
    """Peak resident memory of this process, what Lambda's "Max Memory Used" would show.
    Linux's VmHWM: ru_maxrss would carry the parent's peak over from before the exec."""
    try:
        with open("/proc/self/status") as status:
            for line in status:
                if line.startswith("VmHWM:"):
                    return int(line.split()[1])
    except OSError:
        pass
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss


def main() -> int:
    started = time.perf_counter()
    spec = json.load(sys.stdin)
    out: dict = {"python": sys.version.split()[0]}
    profiler = None
    if spec.get("profile"):
        import cProfile

        profiler = cProfile.Profile()
        profiler.enable()
    try:
        module_name, _, attribute = spec["handler"].rpartition(".")
        module = importlib.import_module(module_name)
        handler = getattr(module, attribute)
        imported = time.perf_counter()
        if spec.get("import_only"):
            out.update(result=None, import_seconds=imported - started, invoke_seconds=0.0)
            return finish(out, profiler, spec)
        context = Context(
            spec.get("function_name", "function"), spec.get("memory", 256), spec.get("timeout", 30)
        )
        result = handler(spec["event"], context)
        invoked = time.perf_counter()
        out.update(
            result=result,
            import_seconds=imported - started,
            invoke_seconds=invoked - imported,
            module_file=module.__file__,
        )
    except BaseException as exc:  # reported to the caller, who decides
        out["error"] = "".join(traceback.format_exception(exc))
    return finish(out, profiler, spec)


def finish(out: dict, profiler, spec: dict) -> int:
    """Write the result file: the figures so far, the modules from outside, the peak memory."""
    if profiler is not None:
        profiler.disable()
        profiler.dump_stats(spec["profile"])
    artifact = [
        os.path.realpath(p) for p in os.environ.get("PYTHONPATH", "").split(os.pathsep) if p
    ]
    stdlib = [os.path.realpath(sysconfig.get_paths()[key]) for key in ("stdlib", "platstdlib")]
    outside = []
    for name, loaded in list(sys.modules.items()):
        path = getattr(loaded, "__file__", None)
        if not path or os.path.realpath(path) == os.path.realpath(__file__):
            continue
        real = os.path.realpath(path)
        if not any(real.startswith(root + os.sep) for root in artifact + stdlib):
            outside.append(f"{name}: {real}")
    out["outside_modules"] = outside
    # Dataclass sources compiled in this process, not shipped compiled by the build (None when
    # the shipped code is not in use at all).
    shipped_code = sys.modules.get("cliniko_automations.common.dataclass_code")
    dataclasses = sys.modules.get("dataclasses")
    in_use = (
        shipped_code is not None
        and dataclasses is not None
        and vars(dataclasses).get("exec") is shipped_code.exec_shipped
    )
    out["dataclass_sources_compiled"] = shipped_code.compiled_here if in_use else None
    out["packages"] = sorted({name.partition(".")[0] for name in sys.modules})
    out["max_rss_kib"] = peak_memory_kib()
    with open(spec["result_file"], "w") as handle:
        json.dump(out, handle, default=str)
    # The answer is written: a marker the benchmark's instruction count splits the process at
    # (callgrind's --dump-before=getsid), the import and first call apart from the teardown.
    # Nothing else in a cold start calls getsid.
    os.getsid(0)
    return 0


if __name__ == "__main__":
    sys.exit(main())
