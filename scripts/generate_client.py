#!/usr/bin/env python3
"""Writes generated_client/ (the `cliniko_client` distribution) from openapi.yaml.

    python scripts/generate_client.py           # regenerate generated_client/
    python scripts/generate_client.py --check   # regenerate into a temp dir; exit 1 with a
                                                # unified diff if generated_client/ differs

This script is the only writer of generated_client/. The output depends only on openapi.yaml,
scripts/openapi-generator-config.yaml and the two pinned tools, so both tool versions are
checked first: a different generator or formatter would produce a different client and make
`--check` fail for the wrong reason.

Exit codes: 0 up to date (or written), 1 differences found by --check, 2 a tool or the
generation failed.
"""

from __future__ import annotations

import argparse
import difflib
import filecmp
import os
import shutil
import subprocess
import sys
import tempfile
from importlib import metadata
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
SPEC = ROOT / "openapi.yaml"
CONFIG = ROOT / "scripts" / "openapi-generator-config.yaml"
TEMPLATES = ROOT / "scripts" / "client_templates"
OUTPUT = ROOT / "generated_client"
# Kept in step with pyproject.toml's dev extra (checked below).
PINNED = {"openapi-python-client": "0.29.1", "ruff": "0.17.6"}
# `setup` metadata gives a setup.py that `pip install -e` builds with setuptools, with no
# extra build backend to fetch (the poetry/pdm/uv variants need theirs).
META = "setup"
# Build and cache artefacts that may sit in generated_client/ (pip install -e writes an
# egg-info there) but are not generator output: neither compared nor deleted.
IGNORED_NAMES = {"__pycache__", ".ruff_cache", "build", "dist", ".pytest_cache"}
IGNORED_SUFFIXES = (".egg-info", ".pyc")


class ToolError(Exception):
    """A pinned tool is missing, has the wrong version, or failed."""


def _bin_dir() -> Path:
    # The tools of this interpreter's environment (.venv/bin), never whatever PATH finds first.
    return Path(sys.executable).parent


def check_tool_versions() -> None:
    problems = []
    try:
        generator = metadata.version("openapi-python-client")
    except metadata.PackageNotFoundError:
        generator = None
    if generator != PINNED["openapi-python-client"]:
        problems.append(
            f"openapi-python-client {generator or 'is not installed'}"
            f" (pinned: {PINNED['openapi-python-client']})"
        )
    ruff = _bin_dir() / "ruff"
    ruff_version = None
    if ruff.exists():
        result = subprocess.run(
            [str(ruff), "--version"], capture_output=True, text=True, check=False
        )
        # "ruff 0.17.6" (possibly followed by a build note)
        words = result.stdout.split()
        ruff_version = words[1] if len(words) > 1 and words[0] == "ruff" else None
    if ruff_version != PINNED["ruff"]:
        problems.append(f"ruff {ruff_version or f'not found at {ruff}'} (pinned: {PINNED['ruff']})")
    pyproject = (ROOT / "pyproject.toml").read_text(encoding="utf-8")
    for name, version in PINNED.items():
        if f'"{name}=={version}"' not in pyproject:
            problems.append(f"pyproject.toml does not pin {name}=={version} like this script")
    if problems:
        raise ToolError(
            "wrong tool versions: "
            + "; ".join(problems)
            + ". Run scripts/bootstrap (or pip install -e '.[dev]') in .venv."
        )


def generate(destination: Path) -> None:
    """Runs the generator into `destination` (which must not exist yet)."""
    env = dict(os.environ)
    # The post hooks call `ruff`: make it the pinned one from this environment.
    env["PATH"] = f"{_bin_dir()}{os.pathsep}{env.get('PATH', '')}"
    env.pop("RUFF_CACHE_DIR", None)
    command = [
        str(_bin_dir() / "openapi-python-client"),
        "generate",
        "--path",
        str(SPEC),
        "--config",
        str(CONFIG),
        "--meta",
        META,
        "--output-path",
        str(destination),
        # Our overrides of the generator's templates (a lazy package __init__).
        "--custom-template-path",
        str(TEMPLATES),
        "--fail-on-warning",
    ]
    result = subprocess.run(
        command, cwd=destination.parent, env=env, capture_output=True, text=True, check=False
    )
    if result.returncode != 0 or not (destination / "cliniko_client").is_dir():
        raise ToolError(
            f"openapi-python-client failed (exit {result.returncode}):\n"
            f"{result.stdout}{result.stderr}"
        )
    for cache in destination.rglob(".ruff_cache"):
        shutil.rmtree(cache)


def _ignored(relative: Path) -> bool:
    return any(part in IGNORED_NAMES or part.endswith(IGNORED_SUFFIXES) for part in relative.parts)


def _files(root: Path) -> set[Path]:
    if not root.is_dir():
        return set()
    return {
        path.relative_to(root)
        for path in root.rglob("*")
        if path.is_file() and not _ignored(path.relative_to(root))
    }


def _lines(path: Path) -> list[str]:
    return path.read_text(encoding="utf-8").splitlines(keepends=True) if path.exists() else []


def diff(expected: Path, actual: Path) -> str:
    """A unified diff turning `actual` (committed) into `expected` (fresh output)."""
    chunks = []
    for relative in sorted(_files(expected) | _files(actual)):
        new, old = expected / relative, actual / relative
        if new.exists() and old.exists() and filecmp.cmp(new, old, shallow=False):
            continue
        old_lines = _lines(old)
        new_lines = _lines(new)
        name = f"generated_client/{relative.as_posix()}"
        chunks.extend(
            difflib.unified_diff(
                old_lines,
                new_lines,
                fromfile=f"a/{name}" if old.exists() else "/dev/null",
                tofile=f"b/{name}" if new.exists() else "/dev/null",
            )
        )
        if chunks and not chunks[-1].endswith("\n"):
            chunks.append("\n\\ No newline at end of file\n")
    return "".join(chunks)


def sync(source: Path, target: Path) -> None:
    """Makes `target` hold exactly the generator output in `source`, leaving build artefacts."""
    target.mkdir(exist_ok=True)
    for relative in _files(target) - _files(source):
        (target / relative).unlink()
    for relative in sorted(_files(source)):
        destination = target / relative
        destination.parent.mkdir(parents=True, exist_ok=True)
        if not destination.exists() or not filecmp.cmp(source / relative, destination, False):
            shutil.copyfile(source / relative, destination)
    # Directories emptied by the removals above.
    for directory in sorted(target.rglob("*"), key=lambda p: len(p.parts), reverse=True):
        relative = directory.relative_to(target)
        if directory.is_dir() and not _ignored(relative) and not any(directory.iterdir()):
            directory.rmdir()


def _shown(path: Path) -> str:
    return str(path.relative_to(ROOT)) if path.is_relative_to(ROOT) else str(path)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--check",
        action="store_true",
        help="regenerate into a temporary folder and fail (exit 1) on any difference",
    )
    parser.add_argument(
        "--output",
        type=Path,
        default=OUTPUT,
        help="the client folder to write or check (default: generated_client/)",
    )
    args = parser.parse_args(argv)
    output = args.output.resolve()
    try:
        check_tool_versions()
        with tempfile.TemporaryDirectory(prefix="cliniko-client-") as temp:
            fresh = Path(temp) / "generated_client"
            generate(fresh)
            if args.check:
                changes = diff(fresh, output)
                if changes:
                    sys.stdout.write(changes)
                    print(
                        f"{_shown(output)}/ is out of date with openapi.yaml: run "
                        "`python scripts/generate_client.py` and commit the result.",
                        file=sys.stderr,
                    )
                    return 1
                print(f"{_shown(output)}/ is up to date with openapi.yaml.")
                return 0
            sync(fresh, output)
            print(f"wrote {_shown(output)}/ from {SPEC.name}")
            return 0
    except ToolError as error:
        print(f"generate_client: {error}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
