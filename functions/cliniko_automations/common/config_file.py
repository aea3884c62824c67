"""Configuration files shipped with the functions (YAML, validated by pydantic models).

Every mistake is reported as one line with its path in the file, so `--check` commands, the
build and the functions' start-up all say the same thing.
"""

from __future__ import annotations

import sys
from collections.abc import Sequence
from pathlib import Path
from typing import TypeVar

import yaml
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
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as exc:
        raise ConfigError(path, [f"cannot read the file ({exc.strerror})"]) from None
    except UnicodeDecodeError:
        raise ConfigError(path, ["the file is not UTF-8 text"]) from None
    try:
        data = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f" at line {mark.line + 1}, column {mark.column + 1}" if mark else ""
        raise ConfigError(path, [f"not valid YAML{where}"]) from None
    if not isinstance(data, dict):
        raise ConfigError(path, [f"the file must be a mapping with {expected}"])
    try:
        return model.model_validate(data)
    except ValidationError as exc:
        raise ConfigError(path, readable(exc)) from None


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
