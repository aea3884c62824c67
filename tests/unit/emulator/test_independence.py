"""The emulator is an independent oracle: no module of it imports our production code.

If it imported `cliniko_automations` (as it once imported `cliniko.rules`) or the generated
client, it would agree with the client by construction and could never catch the client's
mistakes. The AST walk finds every import form; `tests/integration/emulator/
test_runs_without_production_code.py` then runs the emulator with those packages unimportable.
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

EMULATOR = Path(__file__).resolve().parents[3] / "scripts" / "cliniko_emulator"
# Our production package and the client generated from openapi.yaml.
FORBIDDEN = ("cliniko_automations", "cliniko_client")


def imported_modules(source: str) -> set[str]:
    """Every absolute module name `source` imports: `import`, `from ... import`, and
    `importlib.import_module("...")` / `__import__("...")` with a literal name."""
    names: set[str] = set()
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.Import):
            names.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            names.add(node.module)
        elif isinstance(node, ast.Call) and node.args:
            func = node.func
            called = func.attr if isinstance(func, ast.Attribute) else getattr(func, "id", None)
            first = node.args[0]
            literal = isinstance(first, ast.Constant) and isinstance(first.value, str)
            if called in ("import_module", "__import__") and literal:
                names.add(first.value)
    return names


def forbidden_imports(source: str) -> set[str]:
    return {
        name
        for name in imported_modules(source)
        if any(name == root or name.startswith(root + ".") for root in FORBIDDEN)
    }


def emulator_modules() -> list[Path]:
    return sorted(EMULATOR.rglob("*.py"))


def test_the_emulator_package_is_where_the_walk_looks() -> None:
    names = {path.name for path in emulator_modules()}
    assert {"__init__.py", "app.py", "store.py", "contact_rules.py", "filters.py"} <= names


@pytest.mark.parametrize("path", emulator_modules(), ids=lambda path: path.name)
def test_no_emulator_module_imports_production_code(path: Path) -> None:
    assert forbidden_imports(path.read_text(encoding="utf-8")) == set()


@pytest.mark.parametrize(
    "source",
    [
        "import cliniko_automations",
        "import cliniko_automations.cliniko.rules as rules",
        "from cliniko_automations.cliniko.rules import validate_contact_fields",
        "from cliniko_automations import cliniko",
        "def f():\n    from cliniko_client.models import ContactWrite",
        "import importlib\nrules = importlib.import_module('cliniko_automations.cliniko.rules')",
        "rules = __import__('cliniko_automations')",
        "try:\n    import cliniko_client\nexcept ImportError:\n    pass",
    ],
)
def test_the_walk_finds_every_form_of_import(source: str) -> None:
    assert forbidden_imports(source)


@pytest.mark.parametrize(
    "source",
    [
        "from . import contact_rules",
        "from .store import ContactStore",
        "import pycountry",
        "import cliniko_automations_helper",  # a different package that shares the prefix
        "name = 'cliniko_automations'",
    ],
)
def test_the_walk_lets_other_imports_through(source: str) -> None:
    assert forbidden_imports(source) == set()
