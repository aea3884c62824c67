#!/usr/bin/env python3
"""Write the lock files (exact versions with hashes) that bootstrap, the build and CI install from.

    python scripts/lock.py            after changing a requirement in pyproject.toml (or the
                                      generated client's): resolve again, keeping every pin
                                      the change does not touch
    python scripts/lock.py --upgrade  take the newest releases the requirements allow

Commit the locks with the change. A lock per environment:

    locks/runtime.txt  the Lambda artifact (scripts/build.py): python3.13 on Linux for the
                       architecture template.yaml deploys; it holds the hashes of every wheel
                       of each version, so it also builds the x86_64 copy the tests import
    locks/local.txt    .venv for the local run (`scripts/bootstrap --local`): python3.11
    locks/dev.txt      .venv for the tests and tools (`scripts/bootstrap`, CI): python3.11
    locks/sam.txt      .venv-sam, the SAM CLI (with cfn-lint), and
    locks/checkov.txt  .venv-checkov: each platform tool in a venv of its own, so its
                       dependencies never meet the project's; pinned in TOOLS below

Resolved by uv (`uv pip compile`, pinned below, installed into its own .venv-uv): unlike
pip-tools it resolves for a Python version and platform other than the one it runs on (the
runtime is python3.13 on arm64; development is python3.11, here on x86_64), in seconds. The
locks are plain pip requirement files: pip installs them with --require-hashes.
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tomllib
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
LOCKS = ROOT / "locks"
UV_REQUIREMENT = "uv==0.13.9"
UV_VENV = ROOT / ".venv-uv"
SOURCES = ("pyproject.toml", "generated_client/pyproject.toml")
DEV_PYTHON = "3.11"
# What template.yaml deploys (Runtime: python3.13, Architectures: [arm64]); a test in
# tests/infrastructure keeps the two in step.
RUNTIME_PYTHON = "3.13"
RUNTIME_PLATFORM = "aarch64-manylinux_2_28"
# lock name: (pyproject extras, uv's target options)
LOCK_TARGETS: dict[str, tuple[tuple[str, ...], tuple[str, ...]]] = {
    "runtime": ((), ("--python-version", RUNTIME_PYTHON, "--python-platform", RUNTIME_PLATFORM)),
    # Universal: the development locks install on a developer's macOS or arm64 Linux too.
    "local": (("local",), ("--python-version", DEV_PYTHON, "--universal")),
    "dev": (("dev",), ("--python-version", DEV_PYTHON, "--universal")),
}


# The platform tools (lock name: requirement), each resolved on its own for python3.11.
TOOLS = {"sam": "aws-sam-cli==1.170.0", "checkov": "checkov==3.3.30"}


def ensure_uv() -> Path:
    stamp = UV_VENV / f".installed-{UV_REQUIREMENT}"
    if not stamp.exists():
        print(f"lock: installing {UV_REQUIREMENT} into {UV_VENV.name}", file=sys.stderr)
        subprocess.run([sys.executable, "-m", "venv", "--clear", str(UV_VENV)], check=True)
        pip = [str(UV_VENV / "bin" / "python"), "-m", "pip", "install", "--quiet"]
        subprocess.run([*pip, UV_REQUIREMENT], check=True)
        stamp.touch()
    return UV_VENV / "bin" / "uv"


def build_requirements() -> list[str]:
    """pyproject's [build-system] requirements: locked for the development environments, so
    that the editable install of the project runs without build isolation, unpinned nothing."""
    with (ROOT / "pyproject.toml").open("rb") as file:
        return list(tomllib.load(file)["build-system"]["requires"])


def compile_lock(uv: Path, name: str, upgrade: bool) -> None:
    if name in TOOLS:
        # The tool's own pin: --upgrade moves its dependencies, never the tool.
        sources: tuple[str, ...] = ("-",)
        extras: tuple[str, ...] = ()
        target: tuple[str, ...] = ("--python-version", DEV_PYTHON, "--universal")
        stdin = f"{TOOLS[name]}\n"
    else:
        extras, target = LOCK_TARGETS[name]
        # The development locks take the build backend too, read from standard input.
        build = name != "runtime"
        sources = (*SOURCES, *(["-"] if build else []))
        stdin = "".join(f"{line}\n" for line in build_requirements()) if build else ""
    command = [
        str(uv),
        "pip",
        "compile",
        "--quiet",
        "--no-config",  # nobody's uv.toml changes what is locked
        "--generate-hashes",
        "--custom-compile-command",
        "python scripts/lock.py",
        # The existing lock is uv's preference: only what the change needs moves.
        "--output-file",
        f"locks/{name}.txt",
        *target,
        *(arg for extra in extras for arg in ("--extra", extra)),
        *(["--upgrade"] if upgrade else []),
        *sources,
    ]
    env = {k: v for k, v in os.environ.items() if not k.startswith("UV_")}
    env["UV_CACHE_DIR"] = str(UV_VENV / "cache")
    subprocess.run(
        command,
        cwd=ROOT,
        input=stdin,
        text=True,
        env=env,
        check=True,
    )
    print(f"lock: wrote locks/{name}.txt", file=sys.stderr)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--upgrade", action="store_true", help="take the newest releases")
    args = parser.parse_args(argv)
    LOCKS.mkdir(exist_ok=True)
    uv = ensure_uv()
    for name in [*LOCK_TARGETS, *TOOLS]:
        compile_lock(uv, name, args.upgrade)
    return 0


if __name__ == "__main__":
    sys.exit(main())
