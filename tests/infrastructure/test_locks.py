"""The lock files (locks/*.txt, written by scripts/lock.py) still hold what pyproject.toml and
the generated client require, each version with its hashes, for the runtime template.yaml
deploys. Offline: this reads the files; resolving again is scripts/lock.py's job."""

from __future__ import annotations

import ast
import importlib.util
import re
import sys
import tomllib
from importlib import metadata
from pathlib import Path
from types import ModuleType

import pytest
from local_run.template import load
from packaging.requirements import Requirement
from packaging.utils import canonicalize_name

ROOT = Path(__file__).resolve().parents[2]
PROJECT = "cliniko-contacts-automations"
# A pinned line (`name==version \` or with a marker) and the hashes below it.
PIN = re.compile(r"^(?P<name>[A-Za-z0-9._-]+)==(?P<version>[^\s;\\]+)")


def lock_script() -> ModuleType:
    spec = importlib.util.spec_from_file_location("lock_script", ROOT / "scripts" / "lock.py")
    assert spec and spec.loader
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def pyproject() -> dict:
    with (ROOT / "pyproject.toml").open("rb") as file:
        return tomllib.load(file)


def pins(lock: str) -> dict[str, tuple[str, int]]:
    """name -> (version, number of hashes) of every package a lock pins."""
    found: dict[str, tuple[str, int]] = {}
    current = None
    for line in (ROOT / "locks" / f"{lock}.txt").read_text().splitlines():
        match = PIN.match(line)
        if match:
            current = canonicalize_name(match["name"])
            found[current] = (match["version"], 0)
        elif current and line.strip().startswith("--hash=sha256:"):
            version, hashes = found[current]
            found[current] = (version, hashes + 1)
    return found


def requirements(extras: tuple[str, ...], build: bool) -> list[Requirement]:
    """What a lock must satisfy: the project's dependencies and extras (its own extras
    expanded), the generated client's, and for a development lock the build backend."""
    project = pyproject()["project"]
    wanted = [Requirement(line) for line in project["dependencies"]]
    pending = list(extras)
    while pending:
        for line in project["optional-dependencies"][pending.pop()]:
            requirement = Requirement(line)
            if canonicalize_name(requirement.name) == PROJECT:
                pending.extend(requirement.extras)
            else:
                wanted.append(requirement)
    wanted += [Requirement(line) for line in metadata.requires("generated_client") or []]
    if build:
        wanted += [Requirement(line) for line in pyproject()["build-system"]["requires"]]
    return wanted


LOCKS = {"runtime": ((), False), "local": (("local",), True), "dev": (("dev",), True)}


@pytest.mark.parametrize("lock", sorted(LOCKS))
def test_every_requirement_is_pinned_at_a_version_it_allows(lock):
    extras, build = LOCKS[lock]
    pinned = pins(lock)
    problems = []
    for requirement in requirements(extras, build):
        name = canonicalize_name(requirement.name)
        if name not in pinned:
            problems.append(f"{requirement} is not in locks/{lock}.txt")
        elif not requirement.specifier.contains(pinned[name][0], prereleases=True):
            problems.append(f"{requirement}: locks/{lock}.txt pins {pinned[name][0]}")
    assert not problems, "run `python scripts/lock.py`:\n" + "\n".join(problems)


@pytest.mark.parametrize("lock", sorted(lock_script().TOOLS))
def test_each_platform_tool_is_locked_at_its_pin_with_hashes(lock):
    tool = Requirement(lock_script().TOOLS[lock])
    pinned = pins(lock)
    name = canonicalize_name(tool.name)
    assert name in pinned, "run `python scripts/lock.py`"
    assert tool.specifier.contains(pinned[name][0]), "run `python scripts/lock.py`"
    assert [name for name, (_, hashes) in pinned.items() if hashes == 0] == []
    assert PROJECT not in pinned


@pytest.mark.parametrize("lock", sorted(LOCKS))
def test_every_pin_has_hashes_and_the_project_is_not_locked(lock):
    pinned = pins(lock)
    assert pinned
    assert [name for name, (_, hashes) in pinned.items() if hashes == 0] == []
    # The project and its client are installed editable from this tree, never from an index.
    assert PROJECT not in pinned
    assert "generated-client" not in pinned


def test_the_runtime_lock_is_resolved_for_what_the_template_deploys():
    script = lock_script()
    globals_ = load()["Globals"]["Function"]
    assert globals_["Runtime"] == f"python{script.RUNTIME_PYTHON}"
    architecture = {"arm64": "aarch64", "x86_64": "x86_64"}[globals_["Architectures"][0]]
    assert script.RUNTIME_PLATFORM.startswith(f"{architecture}-")


def test_the_development_locks_are_resolved_for_the_development_python():
    script = lock_script()
    assert pyproject()["project"]["requires-python"] == f">={script.DEV_PYTHON}"
    target = "py" + script.DEV_PYTHON.replace(".", "")
    assert pyproject()["tool"]["ruff"]["target-version"] == target


def build_script() -> ModuleType:
    spec = importlib.util.spec_from_file_location("build_script", ROOT / "scripts" / "build.py")
    assert spec and spec.loader
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def artifact(path: Path, distributions: dict[str, str]) -> Path:
    for name, version in distributions.items():
        (path / f"{name.replace('-', '_')}-{version}.dist-info").mkdir(parents=True)
    return path


def test_the_build_stops_on_an_artifact_that_differs_from_the_runtime_lock(tmp_path):
    build = build_script()
    locked = build.locked_versions()
    assert locked == {name: version for name, (version, _) in pins("runtime").items()}
    build.check_against_lock([artifact(tmp_path / "exact", locked)])
    older = {**locked, "pydantic": "2.0.0"}
    extra = {**locked, "requests": "2.32.0"}
    for name, built in (("older", older), ("extra", extra)):
        with pytest.raises(SystemExit, match=f"{name} differs from locks/runtime.txt"):
            build.check_against_lock([artifact(tmp_path / name, built)])


def third_party_imports(*folders: str) -> set[str]:
    """The top-level modules the code under `folders` imports that are neither the standard
    library nor the project's own packages (nor the generated client)."""
    own = {"cliniko_automations", "cliniko_emulator", "local_run", "cliniko_client", "build"}
    found: set[str] = set()
    for folder in folders:
        for path in (ROOT / folder).rglob("*.py"):
            tree = ast.parse(path.read_text(encoding="utf-8"))
            optional = {  # `try: import x` / `except ImportError`: used when installed
                id(inner)
                for node in ast.walk(tree)
                if isinstance(node, ast.Try)
                and any(
                    isinstance(h.type, ast.Name)
                    and h.type.id in ("ImportError", "ModuleNotFoundError")
                    for h in node.handlers
                )
                for statement in node.body
                for inner in ast.walk(statement)
            }
            for node in ast.walk(tree):
                if id(node) in optional:
                    continue
                if isinstance(node, ast.Import):
                    names = [alias.name for alias in node.names]
                elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
                    names = [node.module]
                else:
                    continue
                found.update(name.split(".")[0] for name in names)
    return {name for name in found - own if name not in sys.stdlib_module_names}


@pytest.mark.parametrize(
    ("lock", "folders"),
    [
        # What `scripts/bootstrap --local` installs must run the local run (README's first
        # command): the functions, the emulator and the local runner.
        ("local", ("functions", "scripts/cliniko_emulator", "scripts/local_run")),
        ("runtime", ("functions/cliniko_automations",)),
    ],
)
def test_every_third_party_import_is_in_the_lock_that_runs_it(lock, folders):
    distributions = metadata.packages_distributions()
    locked = pins(lock)
    missing = {
        module
        for module in third_party_imports(*folders)
        if not any(canonicalize_name(d) in locked for d in distributions.get(module, [module]))
    }
    assert missing == set(), f"imported but not in locks/{lock}.txt"
