"""JSON from a sender, read defensively: one loader for every body the functions parse.

`json.loads` alone lets a hostile body through in five ways: nesting deep enough to raise
RecursionError (here, or later in any code that walks the value), integers too long to
convert (ValueError on Python 3.11+), numbers that are not finite (the non-JSON `NaN`,
`Infinity` and `-Infinity` that Python's and pandas' `json.dumps` write for empty cells, and
valid JSON such as `1e400` that overflows a float), which would reach a contact as the text
"nan" or "inf", and lone UTF-16 surrogates ("\\ud800", what JavaScript writes for a string cut
mid-emoji) that no UTF-8 encoder accepts, so the value could never be queued or stored. The
loader refuses the first three and replaces each lone surrogate with U+FFFD (the text is
kept, the broken character marked), so a submission is accepted once. And an object that
names a key twice, which `json.loads` reads as its last value: an erasure of
`{"contact_id": "111", "contact_id": "222"}` would erase 222 without a word about 111. No
form service or operator's tool writes one, so it is refused as ambiguous.
"""

from __future__ import annotations

import json
import math
import re
from typing import Any

# Real payloads (Typeform, Tally, Webflow) nest 6-8 levels; this leaves room to spare and
# keeps every later walk of the value far from the recursion limit.
MAX_DEPTH = 32
LONE_SURROGATE = re.compile("[\ud800-\udfff]")
REPLACEMENT_CHARACTER = "\ufffd"


class JsonRefused(ValueError):
    """The body is not JSON, is JSON nested too deeply or holds a number no float can hold;
    `problem` is a fixed phrase."""

    def __init__(self, problem: str) -> None:
        self.problem = problem
        super().__init__(problem)


def load_json(raw: bytes | str) -> Any:
    """The JSON value of `raw`, nested at most MAX_DEPTH deep, without lone surrogates."""
    try:
        data = json.loads(
            raw,
            parse_constant=_refuse_constant,
            parse_float=_finite_float,
            object_pairs_hook=_object_without_repeated_keys,
        )
    except RecursionError:
        raise JsonRefused("nested too deeply") from None
    except JsonRefused:
        raise
    except (UnicodeDecodeError, ValueError):
        raise JsonRefused("not JSON") from None
    if _depth_exceeds(data, MAX_DEPTH):
        raise JsonRefused("nested too deeply")
    return value_without_lone_surrogates(data)


def _object_without_repeated_keys(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    data = dict(pairs)
    if len(data) != len(pairs):
        raise JsonRefused("holding a key twice")
    return data


def _refuse_constant(name: str) -> Any:
    # NaN, Infinity, -Infinity: Python's extensions, not JSON.
    raise JsonRefused("not JSON")


def _finite_float(text: str) -> float:
    value = float(text)
    if not math.isfinite(value):
        raise JsonRefused("holding a number too large")
    return value


def without_lone_surrogates(text: str) -> str:
    return LONE_SURROGATE.sub(REPLACEMENT_CHARACTER, text)


def _depth_exceeds(data: Any, limit: int) -> bool:
    # Iterative, so the check itself cannot recurse too deep.
    stack = [(data, 1)]
    while stack:
        value, depth = stack.pop()
        if isinstance(value, dict | list):
            if depth > limit:
                return True
            children = value.values() if isinstance(value, dict) else value
            stack.extend((child, depth + 1) for child in children)
    return False


def value_without_lone_surrogates(value: Any) -> Any:
    """A JSON value (as json.loads makes it, nested no deeper than its parser allows) with
    each lone surrogate of its texts, keys included, replaced by U+FFFD."""
    if isinstance(value, str):
        return without_lone_surrogates(value)
    if isinstance(value, list):
        return [value_without_lone_surrogates(item) for item in value]
    if isinstance(value, dict):
        return {
            without_lone_surrogates(key): value_without_lone_surrogates(item)
            for key, item in value.items()
        }
    return value
