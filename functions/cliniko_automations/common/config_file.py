"""Configuration files shipped with the functions (YAML, validated by pydantic models).

Every mistake is reported as one line with its path in the file, so `--check` commands, the
build and the functions' start-up all say the same thing.

Parsing YAML is the slow part of loading one at a cold start, so the build ships each file's
data as JSON next to it (`compile_config_file`: `form_sources.json` beside `form_sources.yaml`),
stamped with the SHA-256 of the YAML it came from. A loader uses the JSON only while that stamp
matches the YAML it was asked for; an edited YAML (or one with no JSON) is parsed as before.
"""

from __future__ import annotations

import hashlib
import json
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any, TypeVar

from pydantic import BaseModel, ValidationError

Model = TypeVar("Model", bound=BaseModel)


class ConfigError(Exception):
    """A configuration file is missing or invalid; `problems` lists one line per mistake."""

    def __init__(self, path: Path, problems: Sequence[str]) -> None:
        self.path = path
        self.problems = list(problems)
        super().__init__(f"{path}: " + "; ".join(self.problems))


def load_config_file(path: Path, model: type[Model], expected: str) -> Model:
    """Read `path` as a YAML mapping and validate it as `model`; `expected` describes the
    mapping's top-level keys for the error when the file holds something else."""
    data = read_config_data(path)
    if not isinstance(data, dict):
        raise ConfigError(path, [f"the file must be a mapping with {expected}"])
    try:
        return model.model_validate(data)
    except ValidationError as exc:
        raise ConfigError(path, readable(exc)) from None


def read_config_data(path: Path) -> Any:
    """The data of YAML file `path`: from its compiled JSON when that was made from this very
    text, else parsed."""
    try:
        raw = path.read_bytes()
        text = raw.decode("utf-8")
    except OSError as exc:
        raise ConfigError(path, [f"cannot read the file ({exc.strerror})"]) from None
    except UnicodeDecodeError:
        raise ConfigError(path, ["the file is not UTF-8 text"]) from None
    compiled = _compiled_data(path, hashlib.sha256(raw).hexdigest())
    return compiled if compiled is not None else _parse_yaml(path, text)


def compiled_path(path: Path) -> Path:
    return path.with_suffix(".json")


def compile_config_file(path: Path) -> Path:
    """Write `path`'s data as JSON next to it (what the build ships); returns the JSON's path."""
    raw = path.read_bytes()
    data = _parse_yaml(path, raw.decode("utf-8"))
    target = compiled_path(path)
    stamped = {"yaml_sha256": hashlib.sha256(raw).hexdigest(), "data": data}
    target.write_text(json.dumps(stamped, separators=(",", ":")), encoding="utf-8")
    return target


def _compiled_data(path: Path, digest: str) -> Any:
    try:
        stamped = json.loads(compiled_path(path).read_bytes())
    except (OSError, ValueError):
        return None
    if not isinstance(stamped, dict) or stamped.get("yaml_sha256") != digest:
        return None
    return stamped.get("data")


def _parse_yaml(path: Path, text: str) -> Any:
    # Imported here: a function whose build shipped the JSON never loads the YAML parser.
    import yaml

    # The C parser when the artifact has it (PyYAML's wheels do): several times faster.
    loader = getattr(yaml, "CSafeLoader", yaml.SafeLoader)
    try:
        return yaml.load(text, Loader=loader)  # noqa: S506 - a safe loader
    except yaml.YAMLError:
        pass
    # A broken file: the pure-Python parser names the place (the C one can point past the end
    # of a line), so the build, `--check` and a cold start report the same line and column.
    try:
        return yaml.safe_load(text)
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f" at line {mark.line + 1}, column {mark.column + 1}" if mark else ""
        raise ConfigError(path, [f"not valid YAML{where}"]) from None


def readable(exc: ValidationError) -> list[str]:
    lines = []
    for error in exc.errors(include_input=False, include_url=False):
        where = ".".join(str(part) for part in error["loc"])
        # A model check reports several problems at once, one per line.
        for message in error["msg"].removeprefix("Value error, ").splitlines():
            lines.append(f"{where}: {message}" if where else message)
    return lines


def print_problems(error: ConfigError, what: str) -> int:
    """A `--check` command's report of `error` on stderr; its exit status."""
    print(f"{error.path}: invalid {what}", file=sys.stderr)
    for problem in error.problems:
        print(f"  - {problem}", file=sys.stderr)
    return 1
