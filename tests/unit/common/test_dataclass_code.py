"""Dataclasses made with the code shipped at build time are the ones `dataclasses` makes.

The same class definitions are made three times in this interpreter: as `dataclasses` makes
them, while the build's recording runs, and with the recorded code shipped. Each generated
method must be the same code, byte for byte, and behave the same.
"""

from __future__ import annotations

import dataclasses
import marshal
from pathlib import Path
from typing import Any, ClassVar

import pytest
from cliniko_automations.common import dataclass_code


def make_classes() -> dict[str, type]:
    """New classes of every kind of method `dataclasses` writes (a new set each call)."""

    @dataclasses.dataclass(frozen=True)
    class Frozen:
        name: str
        tags: tuple[str, ...] = ()
        note: str | None = None

    @dataclasses.dataclass(order=True, slots=True)
    class Ordered:
        rank: int
        label: str = "x"

    @dataclasses.dataclass(kw_only=True)
    class Defaults:
        items: list[int] = dataclasses.field(default_factory=list)
        limit: dataclasses.InitVar[int] = 3
        total: int = dataclasses.field(init=False, default=0)
        kind: ClassVar[str] = "defaults"

        def __post_init__(self, limit: int) -> None:
            self.total = min(limit, len(self.items))

    @dataclasses.dataclass(eq=False, unsafe_hash=False, repr=False)
    class Bare:
        value: Any

    return {"Frozen": Frozen, "Ordered": Ordered, "Defaults": Defaults, "Bare": Bare}


def generated_code(classes: dict[str, type]) -> dict[str, bytes]:
    """Every method `dataclasses` wrote, as marshalled code (its file name included)."""
    code = {}
    for class_name, cls in classes.items():
        for name, value in vars(cls).items():
            function = getattr(value, "__wrapped__", value)
            written = getattr(function, "__code__", None)
            if written is not None and written.co_filename == "<string>":
                code[f"{class_name}.{name}"] = marshal.dumps(written)
    return code


def behaviour(classes: dict[str, type]) -> list[object]:
    frozen, ordered = classes["Frozen"], classes["Ordered"]
    defaults, bare = classes["Defaults"], classes["Bare"]
    one = frozen("a", ("t",))
    with pytest.raises(dataclasses.FrozenInstanceError):
        one.name = "b"  # type: ignore[misc]
    made = defaults(items=[1, 2, 3, 4], limit=2)
    return [
        repr(one),
        one == frozen("a", ("t",)),
        hash(one) == hash(frozen("a", ("t",))),
        sorted([ordered(2), ordered(1, "y")]) == [ordered(1, "y"), ordered(2)],
        repr(ordered(1)),
        ordered.__slots__,  # type: ignore[attr-defined]
        (made.items, made.total, repr(made)),
        bare(1) == bare(1),
        [f.name for f in dataclasses.fields(defaults)],
        repr(dataclasses.replace(one, note="n")),
    ]


@pytest.fixture
def clean_dataclasses(monkeypatch):
    """Whatever a test points `dataclasses` at is undone after it."""
    monkeypatch.setattr(dataclass_code, "_shipped", {})
    monkeypatch.setattr(dataclass_code, "compiled_here", 0)
    vars(dataclasses).pop("exec", None)
    yield
    vars(dataclasses).pop("exec", None)


def shipped_file(tmp_path: Path) -> tuple[Path, dict[str, type]]:
    """The build's recording of `make_classes`, written as the build ships it."""
    sources: dict[str, bytes] = {}
    stop = dataclass_code.record_sources(sources)
    try:
        classes = make_classes()
    finally:
        stop()
    assert sources
    path = tmp_path / "dataclass_code.marshal"
    dataclass_code.write_shipped(sources, str(path))
    return path, classes


def test_shipped_code_makes_the_same_methods_as_dataclasses(tmp_path, clean_dataclasses):
    stock = make_classes()
    path, recorded = shipped_file(tmp_path)
    assert "exec" not in vars(dataclasses)

    assert dataclass_code.use_shipped_code(str(path)) is True
    shipped = make_classes()
    assert dataclass_code.compiled_here == 0

    assert generated_code(stock)
    assert generated_code(shipped) == generated_code(recorded) == generated_code(stock)
    assert behaviour(shipped) == behaviour(stock)


def unforeseen() -> type:
    @dataclasses.dataclass(frozen=True)
    class Unforeseen:
        first: int
        second: int = 2

    return Unforeseen


def test_a_source_the_build_did_not_record_is_compiled_as_before(tmp_path, clean_dataclasses):
    stock = unforeseen()
    path, _ = shipped_file(tmp_path)
    assert dataclass_code.use_shipped_code(str(path)) is True

    compiled_here = unforeseen()
    # One source a class in python3.13, one a method in older ones.
    assert dataclass_code.compiled_here >= 1
    assert compiled_here(1) == compiled_here(1, 2)
    assert repr(compiled_here(1)).endswith("Unforeseen(first=1, second=2)")
    # The same code, compiled without this test module's `from __future__ import annotations`
    # (under it, __init__'s annotations would be the names dataclasses gives the types).
    made = {"Unforeseen": compiled_here}
    assert generated_code(made) == generated_code({"Unforeseen": stock})
    assert compiled_here.__init__.__annotations__ == stock.__init__.__annotations__


def test_no_file_another_interpreters_or_another_exec_leave_dataclasses_alone(
    tmp_path, clean_dataclasses
):
    assert dataclass_code.use_shipped_code(str(tmp_path / "missing.marshal")) is False
    other = tmp_path / "other.marshal"
    other.write_bytes(marshal.dumps((b"\x00\x00\r\n", {"source": b"code"})))
    assert dataclass_code.use_shipped_code(str(other)) is False
    broken = tmp_path / "broken.marshal"
    broken.write_bytes(b"not marshal")
    assert dataclass_code.use_shipped_code(str(broken)) is False
    assert "exec" not in vars(dataclasses)

    path, _ = shipped_file(tmp_path)
    sources: dict[str, bytes] = {}
    stop = dataclass_code.record_sources(sources)
    try:
        assert dataclass_code.use_shipped_code(str(path)) is False
        make_classes()
    finally:
        stop()
    assert sources
