"""The Lambda runtime's Python (3.13) on this machine, for the build, the packaging test and the
cold-start benchmark: found without naming pyenv versions.

In order: `python3.13` on PATH (when it runs: a pyenv shim without 3.13 selected does not), then
any installed `$(pyenv root)/versions/3.13*/bin/python3.13`, then uv's managed 3.13. None: a
RuntimePythonMissing that says what is needed and the one command that provides it.
"""

from __future__ import annotations

import os
import shutil
import subprocess
from collections.abc import Iterable
from pathlib import Path

VERSION = "3.13"
COMMAND = f"python{VERSION}"
INSTALL_HINT = (
    f"Python {VERSION} (the Lambda runtime's) is needed and was not found: install it with "
    f"`pyenv install {VERSION}` (or `uv python install {VERSION}`, or your system's "
    f"python{VERSION} package, e.g. `apt-get install python{VERSION}`), then run this again"
)


class RuntimePythonMissing(RuntimeError):
    def __init__(self) -> None:
        super().__init__(INSTALL_HINT)


def _runs_as_runtime(candidate: str | os.PathLike[str], env: dict[str, str]) -> str | None:
    """The interpreter's real path when `candidate` runs and is 3.13, else None."""
    try:
        found = subprocess.run(
            [str(candidate), "-c", "import sys; print(sys.executable, sys.version_info[:2])"],
            capture_output=True,
            text=True,
            timeout=30,
            env=env,
        )
    except (OSError, subprocess.TimeoutExpired):
        return None
    if found.returncode != 0:
        return None
    executable, _, version = found.stdout.strip().partition(" ")
    return executable if version == f"({VERSION.replace('.', ', ')})" else None


def _home(env: dict[str, str]) -> Path:
    return Path(env.get("HOME") or Path.home())


def _pyenv_root(env: dict[str, str]) -> Path | None:
    if env.get("PYENV_ROOT"):
        return Path(env["PYENV_ROOT"])
    default = _home(env) / ".pyenv"
    return default if default.is_dir() else None


def candidates(env: dict[str, str]) -> Iterable[str | Path]:
    on_path = shutil.which(COMMAND, path=env.get("PATH"))
    if on_path:
        yield on_path
    root = _pyenv_root(env)
    if root:
        # Newest patch release first (3.13.10 after 3.13.9: compare the numbers).
        def release(path: Path) -> tuple[int, ...]:
            parts = path.parents[1].name.split(".")
            return tuple(int(p) for p in parts if p.isdigit())

        installed = root.glob(f"versions/{VERSION}*/bin/{COMMAND}")
        yield from sorted(installed, key=release, reverse=True)
    uv_home = Path(env.get("UV_PYTHON_INSTALL_DIR") or _home(env) / ".local/share/uv/python")
    yield from sorted(uv_home.glob(f"cpython-{VERSION}*/bin/{COMMAND}"), reverse=True)


def find_runtime_python(env: dict[str, str] | None = None) -> str:
    """The absolute path of a working python3.13; RuntimePythonMissing when there is none."""
    env = dict(os.environ if env is None else env)
    for candidate in candidates(env):
        executable = _runs_as_runtime(candidate, env)
        if executable:
            return executable
    raise RuntimePythonMissing()
