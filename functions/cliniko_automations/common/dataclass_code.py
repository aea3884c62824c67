"""Dataclasses' methods compiled when the artifact is built, not at every cold start.

`@dataclass` writes the source of a class's methods (`__init__`, `__repr__`, `__eq__`, a
frozen class's `__setattr__`...) and compiles it as the class is made: in python3.13 about 3.8
million instructions a class (counted with callgrind), four fifths of it `compile`. A cold start
makes 35-72 dataclasses (ours, the generated client's, Powertools'), about a tenth of a
minimal handler's whole cold start, where a module's own code comes compiled in its `.pyc`.

So the build (`scripts/build.py`, with `scripts/record_dataclass_code.py`) imports, in the
runtime's Python, every module of the artifact that makes dataclasses, keeps each source
`dataclasses` compiled, and ships the code next to this module (`SHIPPED`, stamped with the
interpreter's bytecode magic number, as a `.pyc` is). On import, the package points
`dataclasses`' `exec` at `exec_shipped`: a source recorded at build time runs the code compiled
from it then, which is what compiling it now would make (the same source text, file name,
flags and bytecode version); any other source is compiled here as before. Without the file (a
development tree, the tests' own imports) or with another interpreter's, nothing changes.
"""

import builtins
import dataclasses
import marshal
import os
from collections.abc import Callable, Mapping
from importlib.util import MAGIC_NUMBER
from typing import Any

SHIPPED = os.path.join(os.path.dirname(__file__), "dataclass_code.marshal")

# Sources compiled in this process because the shipped file did not have them: none on a
# handler's first call (the packaging test), whatever its cold start imports.
compiled_here = 0

_shipped: dict[str, Any] = {}  # source -> its marshalled code; the code once first used


def compiled(source: str) -> Any:
    """What `exec(source)` compiles, called from `dataclasses`: its file name, and no
    `__future__` flag of the caller's (this module has none, and asks for none)."""
    return compile(source, "<string>", "exec", dont_inherit=True)


def exec_shipped(source: Any, globals: Any = None, locals: Any = None, /, **options: Any) -> None:
    """`exec`, for `dataclasses`: the code shipped for `source` when there is some."""
    global compiled_here
    if type(source) is str:
        code = _shipped.get(source)
        if code is None:
            compiled_here += 1
            code = compiled(source)
        elif type(code) is bytes:
            code = _shipped[source] = marshal.loads(code)  # noqa: S302 - the artifact's own file
        source = code
    builtins.exec(source, globals, locals, **options)  # noqa: S102


def use_shipped_code(path: str = SHIPPED) -> bool:
    """Point `dataclasses` at the shipped code (whether it did): not when another `exec` is
    there already (the build's recording) or the file is missing or another interpreter's."""
    if "exec" in vars(dataclasses):
        return False
    try:
        with open(path, "rb") as shipped:
            magic, sources = marshal.load(shipped)  # noqa: S302 - the artifact's own file
    except (OSError, EOFError, ValueError, TypeError):
        return False
    if magic != MAGIC_NUMBER:
        return False
    _shipped.update(sources)
    dataclasses.exec = exec_shipped  # type: ignore[attr-defined]
    return True


def record_sources(into: dict[str, bytes]) -> Callable[[], None]:
    """Keep, in `into`, the code of every source `dataclasses` compiles from now on (the
    build's recording, over any `exec` already there); returns what stops it."""

    def exec_recording(
        source: Any, globals: Any = None, locals: Any = None, /, **options: Any
    ) -> None:
        if type(source) is str:
            code = compiled(source)
            into[source] = marshal.dumps(code)
            source = code
        builtins.exec(source, globals, locals, **options)  # noqa: S102

    def stop() -> None:
        vars(dataclasses).pop("exec", None)

    dataclasses.exec = exec_recording  # type: ignore[attr-defined]
    return stop


def write_shipped(sources: Mapping[str, bytes], path: str = SHIPPED) -> None:
    with open(path, "wb") as shipped:
        marshal.dump((MAGIC_NUMBER, dict(sources)), shipped)
