"""Configuration files shipped with the functions (YAML, validated by pydantic).

Every mistake is reported as one line with its path in the file, so `--check` commands, the
build and the functions' start-up all say the same thing.

Parsing YAML is the slow part of loading one at a cold start, so the build ships each file's
data as JSON next to it (`compile_config_file`: `form_sources.json` beside `form_sources.yaml`),
stamped with the SHA-256 of the YAML it came from. A loader uses the JSON only while that stamp
matches the YAML it was asked for; an edited YAML (or one with no JSON) is parsed as before.

Validating is the other slow part: pydantic's import and schema building. A file's type may be
a plain dataclass (the intake's, which must start fastest): pydantic validates it through a
TypeAdapter, with the checks pydantic cannot infer from its types attached as `Checked`
metadata and its cross-field checks in `__post_init__`. The build stamps the JSON of a file it
has validated `checked`; a loader builds a dataclass from such JSON directly (`from_data`),
without importing pydantic. Anything else is validated as it is read.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import sys
import typing
from collections.abc import Callable, Hashable, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any, TypeGuard, TypeVar

from cliniko_automations.common.plain_data import from_data

if TYPE_CHECKING:
    from pydantic import GetCoreSchemaHandler, ValidationError
    from pydantic_core import CoreSchema

Config = TypeVar("Config")
# A plain dataclass's pydantic configuration: a key it does not know is a mistake.
FORBID_EXTRA = {"extra": "forbid"}


class ConfigError(Exception):
    """A configuration file is missing or invalid; `problems` lists one line per mistake."""

    def __init__(self, path: Path, problems: Sequence[str]) -> None:
        self.path = path
        self.problems = list(problems)
        super().__init__(f"{path}: " + "; ".join(self.problems))


def load_config_file(
    path: Path,
    kind: type[Config],
    expected: str,
    prepare: Callable[[dict[str, Any]], dict[str, Any]] | None = None,
) -> Config:
    """Read `path` as a YAML mapping and validate it as `kind` (a pydantic model or a plain
    dataclass); `expected` describes the mapping's top-level keys for the error when the file
    holds something else. `prepare` reshapes the data first (a ValueError is a mistake)."""
    data, checked = _config_data(path)
    if not isinstance(data, dict):
        raise ConfigError(path, [f"the file must be a mapping with {expected}"])
    try:
        data = prepare(data) if prepare else data
    except ValueError as exc:
        raise ConfigError(path, str(exc).splitlines()) from None
    if checked and dataclasses.is_dataclass(kind):
        return from_data(kind, data)
    return validated(path, kind, data)


def validated(path: Path, kind: type[Config], data: Any) -> Config:
    """`data` validated as `kind` by pydantic; a ConfigError names every mistake in `path`."""
    from pydantic import TypeAdapter, ValidationError

    try:
        result = TypeAdapter(kind).validate_python(data)
    except ValidationError as exc:
        raise ConfigError(path, readable(exc, data)) from None
    if dataclasses.is_dataclass(kind) and (problems := converted_values(result, data)):
        raise ConfigError(path, problems)
    return result


def converted_values(
    value: Any, written: Any, where: tuple[Any, ...] = (), root: Any = None
) -> list[str]:
    """One problem per value pydantic read as another type than the file wrote it (the text
    "false" as false, "0.5" as 0.5, 1.0 as 1, a !!set as a list). The build ships the data as
    written and a function builds its dataclasses from it unchecked (`from_data`), so such a
    value would be read differently there than it was checked: "false" is true to Python.
    `root`: the file's whole data, whose list items are named by their `name` (`_path`)."""
    root = written if root is None else root
    if dataclasses.is_dataclass(value) and isinstance(written, dict):
        return [
            problem
            for field in dataclasses.fields(value)
            if field.name in written
            for problem in converted_values(
                getattr(value, field.name), written[field.name], (*where, field.name), root
            )
        ]
    if isinstance(value, list) and isinstance(written, list) and len(value) == len(written):
        return [
            problem
            for index, (item, as_written) in enumerate(zip(value, written, strict=True))
            for problem in converted_values(item, as_written, (*where, index), root)
        ]
    if isinstance(value, dict) and isinstance(written, dict) and value.keys() == written.keys():
        return [
            problem
            for key, item in value.items()
            for problem in converted_values(item, written[key], (*where, key), root)
        ]
    same_number = type(value) is float and type(written) is int  # 1 for a float reads as 1.0
    if (type(value) is type(written) or same_number) and value == written:
        return []
    shown = _SHOWN_AS.get(type(value)) or json.dumps(value, default=str)
    return [
        f"{_path(where, root) or 'the file'}: {written!r} is read as {shown}: write {shown} itself"
    ]


_SHOWN_AS: dict[type, str] = {dict: "a mapping", list: "a list"}


def _path(where: Sequence[Any], data: Any = None) -> str:
    """`where` (pydantic's location of a mistake in `data`) as text: `rules.0 (stale).where.0`,
    a list item that has a `name` told by it as well as by its place."""
    parts = []
    for part in where:
        # A field named for a keyword (`from_`) is written as the keyword in the file.
        key = "from" if part == "from_" else part
        name = None
        if isinstance(data, list) and isinstance(key, int) and 0 <= key < len(data):
            data = data[key]
            name = data.get("name") if isinstance(data, dict) else None
        else:
            data = data.get(key) if isinstance(data, dict) else None
        shown = _shown_key(key)
        parts.append(named_item(shown, name) if _is_a_name(name) else shown)
    return ".".join(parts)


def _is_a_name(name: Any) -> TypeGuard[str]:
    # A rule's or subscriber's name as their patterns allow it (`a-z`, digits, `-`): a `name`
    # key elsewhere (a mistyped condition) may hold a value, an email even, which the location
    # would repeat.
    return (
        isinstance(name, str)
        and 0 < len(name) <= 64
        and name.isascii()
        and all(c.islower() or c.isdigit() or c == "-" for c in name)
    )


def named_item(index: object, name: str) -> str:
    """A list item's place in a problem's location, with its name: an operator looks for the
    rule or subscriber by name, not by counting from 0."""
    return f"{index} ({_shown_key(name)})"


def _shown_key(part: Any) -> str:
    """A key as the file wrote it, quoted when a character of it cannot be seen (a space at
    its end, a no-break or zero-width space pasted along): `update_policy : Extra inputs are
    not permitted` hid the one character that made it another key."""
    text = str(part)
    if isinstance(part, str) and not (text.isprintable() and text == text.strip()):
        return repr(text)
    return text


def read_config_data(path: Path) -> Any:
    """The data of YAML file `path`: from its compiled JSON when that was made from this very
    text, else parsed."""
    return _config_data(path)[0]


def _config_data(path: Path) -> tuple[Any, bool]:
    """`path`'s data, and whether the build validated it (its compiled JSON says so)."""
    try:
        raw = path.read_bytes()
        text = raw.decode("utf-8")
    except OSError as exc:
        raise ConfigError(path, [f"cannot read the file ({exc.strerror})"]) from None
    except UnicodeDecodeError:
        raise ConfigError(path, ["the file is not UTF-8 text"]) from None
    stamped = _compiled(path, hashlib.sha256(raw).hexdigest())
    if stamped is None:
        return _parse_yaml(path, text), False
    return stamped.get("data"), stamped.get("checked") is True


def compiled_path(path: Path) -> Path:
    return path.with_suffix(".json")


def compile_config_file(path: Path, *, checked: bool = False) -> Path:
    """Write `path`'s data as JSON next to it (what the build ships); returns the JSON's path.
    `checked`: the build has validated this very file, so a loader may skip validating it."""
    raw = path.read_bytes()
    data = _parse_yaml(path, raw.decode("utf-8"))
    target = compiled_path(path)
    stamped = {"yaml_sha256": hashlib.sha256(raw).hexdigest(), "checked": checked, "data": data}
    try:
        text = json.dumps(stamped, separators=(",", ":"))
    except (TypeError, ValueError):
        # A YAML value JSON has no type for (a date, a !!set, a !!binary) in a file no check
        # read (a checked file's types refuse them first).
        raise ConfigError(
            path, ["holds a value JSON cannot carry (a date, set or binary)"]
        ) from None
    target.write_text(text, encoding="utf-8")
    return target


def _compiled(path: Path, digest: str) -> dict[str, Any] | None:
    try:
        stamped = json.loads(compiled_path(path).read_bytes())
    except (OSError, ValueError):
        return None
    if not isinstance(stamped, dict) or stamped.get("yaml_sha256") != digest:
        return None
    return stamped


class Checked:
    """Metadata of an `Annotated` field type: pydantic runs `check` on the value once its type
    is validated (a ValueError is a mistake at that field). Defined here, not with pydantic's
    AfterValidator, so that a module of dataclasses imports no pydantic until it validates."""

    def __init__(self, check: Callable[[Any], Any]) -> None:
        self.check = check

    def __get_pydantic_core_schema__(
        self, source: Any, handler: GetCoreSchemaHandler
    ) -> CoreSchema:
        from pydantic_core import core_schema

        return core_schema.no_info_after_validator_function(self.check, handler(source))


class Limits:
    """Metadata of an `Annotated` field type: pydantic's own bounds on it (`min_length`,
    `max_length`, `ge`, `le`, `pattern`), with pydantic's messages. Here rather than
    annotated_types, whose import (with typing_extensions) took 41 ms (`-X importtime`)."""

    def __init__(self, **limits: object) -> None:
        self.limits = limits

    def __get_pydantic_core_schema__(
        self, source: Any, handler: GetCoreSchemaHandler
    ) -> CoreSchema:
        return typing.cast("CoreSchema", {**handler(source), **self.limits})


def _parse_yaml(path: Path, text: str) -> Any:
    # Imported here: a function whose build shipped the JSON never loads the YAML parser.
    import yaml

    # The C parser when the artifact has it (PyYAML's wheels do): several times faster.
    fast = _strict_loader(yaml, getattr(yaml, "CSafeLoader", yaml.SafeLoader))
    careful = _strict_loader(yaml, yaml.SafeLoader)
    try:
        return yaml.load(text, Loader=fast)  # noqa: S506 - a safe loader
    except yaml.YAMLError:
        pass
    except RecursionError:
        raise ConfigError(path, ["nested too deeply to read"]) from None
    # A broken file: the pure-Python parser names the place (the C one can point past the end
    # of a line), so the build, `--check` and a cold start report the same line and column.
    try:
        return yaml.load(text, Loader=careful)  # noqa: S506 - a safe loader
    except RecursionError:
        raise ConfigError(path, ["nested too deeply to read"]) from None
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f" at line {mark.line + 1}, column {mark.column + 1}" if mark else ""
        problem = getattr(exc, "problem", None)
        if getattr(exc, "context", None) == REFUSED and isinstance(problem, str):
            raise ConfigError(path, [problem.replace("{where}", where)]) from None
        if isinstance(problem, str) and "'\\t'" in problem:
            # PyYAML's "found character '\t' that cannot start any token": editors show a tab
            # as spaces, so the place alone did not tell what was wrong there.
            raise ConfigError(path, [f"a tab{where}: YAML indents with spaces only"]) from None
        raise ConfigError(path, [f"not valid YAML{where}"]) from None


DUPLICATE_KEY = "a key given twice"
# The context of the loader's own refusals, whose problem names the mistake and its fix.
REFUSED = "refused by the configuration loader"
# What YAML 1.1 (PyYAML) reads as a boolean but YAML 1.2, JSON and people read as words.
YAML_1_2_BOOLEANS = ("true", "false")


def _strict_loader(yaml: Any, base: type) -> type:
    """`base` (a safe loader) refusing a mapping that names a key twice, and the plain values
    that YAML 1.1, which PyYAML reads, takes for another type than YAML 1.2 (and everyone)
    does. YAML forbids a key given twice, but PyYAML keeps the last: a rule's second `where:`
    silently replaced its first. A `NO` (Norway), a `values:` label `Yes` or `Off` read as
    true or false, a post code `0412` read as the octal 266, `older_than_days: 030` as 24, a
    time `12:30` as 750: each was refused far from what was written, or taken as a number."""

    def refuse(node: Any, read_as: str, instead: str) -> None:
        raise yaml.constructor.ConstructorError(
            REFUSED,
            None,
            f"{node.value!r}{{where}} is read by YAML as {read_as}: quote it "
            f"({node.value!r}) for the text{instead}",
            node.start_mark,
        )

    class Loader(base):  # type: ignore[misc]
        def construct_yaml_bool(self, node: Any) -> Any:
            if node.value.lower() not in YAML_1_2_BOOLEANS:
                read = super().construct_yaml_bool(node)
                refuse(node, json.dumps(read), f", or write {json.dumps(read)}")
            return super().construct_yaml_bool(node)

        def construct_yaml_int(self, node: Any) -> Any:
            read = super().construct_yaml_int(node)
            digits = node.value.lstrip("+-").replace("_", "")
            if ":" in digits:
                refuse(node, f"the number {read} (base 60)", "")
            if len(digits) > 1 and digits[0] == "0" and digits[1] not in "bxBX":
                decimal = int(digits.lstrip("0") or "0")
                refuse(node, f"the octal number {read}", f", or write {decimal} for the number")
            return read

        def construct_yaml_float(self, node: Any) -> Any:
            read = super().construct_yaml_float(node)
            if ":" in node.value:
                refuse(node, f"the number {read} (base 60)", "")
            return read

        def construct_mapping(self, node: Any, deep: bool = False) -> Any:
            seen: set[Any] = set()
            for key_node, _ in node.value:
                if key_node.tag == "tag:yaml.org,2002:merge":
                    continue  # `<<: *defaults` then a key of its own overrides, as meant
                key = self.construct_object(key_node, deep=True)
                if not isinstance(key, Hashable):
                    continue  # the base loader refuses it, with its own message
                if key in seen:
                    raise yaml.constructor.ConstructorError(
                        REFUSED, None, f"{DUPLICATE_KEY} ({key!r}){{where}}", key_node.start_mark
                    )
                seen.add(key)
            return super().construct_mapping(node, deep=deep)

    # PyYAML looks constructors up by tag in a table of functions, not by method name.
    for tag, method in (
        ("bool", Loader.construct_yaml_bool),
        ("int", Loader.construct_yaml_int),
        ("float", Loader.construct_yaml_float),
    ):
        Loader.add_constructor(f"tag:yaml.org,2002:{tag}", method)
    return Loader


def readable(exc: ValidationError, data: Any = None) -> list[str]:
    """One line per mistake, placed in `data` (the file's, to name its list items by)."""
    lines = []
    for error in exc.errors(include_input=True, include_url=False):
        where = _path(error["loc"], data)
        # A dataclass says "Unexpected keyword argument" where a model says this.
        text = (
            "Extra inputs are not permitted"
            if error["type"] == "unexpected_keyword_argument"
            else error["msg"] + _as_yaml_read(error["type"], error.get("input"))
        )
        # A model check reports several problems at once, one per line.
        for message in text.removeprefix("Value error, ").splitlines():
            lines.append(f"{where}: {message}" if where else message)
    return lines


# pydantic's errors for a value of the wrong type (a string, a whole number, a choice).
_TYPE_ERRORS = frozenset(
    {"string_type", "int_type", "int_parsing", "bool_type", "bool_parsing", "literal_error"}
    | {"float_type", "float_parsing", "enum", "list_type", "dict_type"}
)


def quote_for_text(value: Any) -> str | None:
    """For a boolean or number where text is expected, how YAML read it and the fix."""
    if not isinstance(value, bool | int | float):
        return None
    shown = json.dumps(value)
    kind = "a boolean" if isinstance(value, bool) else "a number"
    return f"YAML reads {shown} as {kind}: quote it ({shown!r})"


def _as_yaml_read(error_type: str, value: Any) -> str:
    """How YAML read a value of another type than the one expected, and the fix: "Input should
    be a valid integer" alone does not tell the author of `'30'` that the quotes made it text,
    nor the author of a key `1` or of `account:` left empty what YAML made of them."""
    if error_type not in _TYPE_ERRORS:
        return ""
    if value is None:
        return " (no value: YAML reads nothing, ~ and null as none)"
    if error_type == "string_type" and (fix := quote_for_text(value)):
        return f" ({fix})"
    if error_type != "string_type" and isinstance(value, str):
        try:
            meant = json.loads(value)
        except ValueError:
            return ""
        if isinstance(meant, bool | int | float):
            return f" ({value!r} is text to YAML: write {value} without quotes)"
    return ""


def print_problems(error: ConfigError, what: str) -> int:
    """A `--check` command's report of `error` on stderr; its exit status. The path as typed
    and the problems (which quote the file) escaped: a control there acts on the terminal."""
    from cliniko_automations.common.printable import printable

    print(f"{printable(error.path)}: invalid {what}", file=sys.stderr)
    for problem in error.problems:
        print(f"  - {printable(problem)}", file=sys.stderr)
    return 1
