"""Record the code of every dataclass an artifact's modules make, and ship it in the artifact.

Run by scripts/build.py in the runtime's Python, with the artifact alone on the path:

    python3.13 -S -B scripts/record_dataclass_code.py ARTIFACT

Imports each module of the artifact whose source mentions a dataclass (never a `__main__`),
with `dataclasses`' compiles recorded (cliniko_automations/common/dataclass_code.py says why),
and writes what was compiled where that module reads it. Outside a Lambda our modules do
nothing on import. A module that cannot be imported here is left out, and its dataclasses are
compiled at their cold start as before: a library's optional extra. (Native code built for
another architecture than this machine's, pydantic_core in an arm64 artifact, is put first on
the path as this machine's build of it: scripts/build.py.)
"""

from __future__ import annotations

import importlib
import os
import sys


def modules_making_dataclasses(artifact: str) -> list[str]:
    found = []
    for folder, subfolders, files in os.walk(artifact):
        subfolders[:] = sorted(s for s in subfolders if s.isidentifier())
        for name in sorted(files):
            if not name.endswith(".py") or name == "__main__.py":
                continue
            path = os.path.join(folder, name)
            with open(path, "rb") as source:
                if b"dataclass" not in source.read():
                    continue
            parts = os.path.relpath(path, artifact)[: -len(".py")].split(os.sep)
            if parts[-1] == "__init__":
                parts.pop()
            if parts and all(part.isidentifier() for part in parts):
                found.append(".".join(parts))
    return found


def main(artifact: str) -> int:
    from cliniko_automations.common import dataclass_code

    # Over an earlier build's shipped code, which the package's import may have put in place.
    sources: dict[str, bytes] = {}
    stop = dataclass_code.record_sources(sources)
    failed = []
    modules = modules_making_dataclasses(artifact)
    for module in modules:
        try:
            importlib.import_module(module)
        except Exception as error:  # left out, compiled at its cold start
            failed.append(f"{module} ({type(error).__name__})")
    stop()
    dataclass_code.write_shipped(sources)
    print(
        f"dataclass code: {len(sources)} sources from {len(modules) - len(failed)} modules;"
        f" {len(failed)} modules not importable here"
        + (f", e.g. {', '.join(failed[:3])}" if failed else "")
    )
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1]))
