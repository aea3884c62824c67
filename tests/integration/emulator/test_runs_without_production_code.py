"""The whole emulator imports and runs with our production code made unimportable.

The AST walk of `tests/unit/emulator/test_independence.py` reads the emulator's source; this
catches what reading cannot (an import built at run time, a plugin, a `.pth` side effect).
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

EMULATOR = Path(__file__).resolve().parents[3] / "scripts" / "cliniko_emulator"
# Our production package and the client generated from openapi.yaml.
FORBIDDEN = ("cliniko_automations", "cliniko_client")

BLOCKED_IMPORT = """
import importlib, pkgutil, sys

class Refuse:
    def find_spec(self, name, path=None, target=None):
        if name.split(".")[0] in {forbidden!r}:
            raise ImportError(f"the emulator imported {{name}}")
        return None

sys.meta_path.insert(0, Refuse())
import cliniko_emulator
for module in pkgutil.walk_packages(cliniko_emulator.__path__, "cliniko_emulator."):
    importlib.import_module(module.name)
from cliniko_emulator.store import ContactStore
store = ContactStore()
store.create("au1", {{"first_name": "A", "country_code": "AU", "email": "a@example.com"}})
loaded = sorted(name for name in sys.modules if name.split(".")[0] in {forbidden!r})
print(loaded)
"""


def test_the_emulator_runs_with_production_code_unimportable() -> None:
    script = BLOCKED_IMPORT.format(forbidden=set(FORBIDDEN))
    done = subprocess.run(  # noqa: S603 - this interpreter, a fixed script
        [sys.executable, "-c", script],
        cwd=EMULATOR.parent,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert done.returncode == 0, done.stderr[-2000:]
    assert done.stdout.strip() == "[]"
