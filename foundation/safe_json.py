"""JSON from outside, parsed strictly: what Python's json module accepts but no JSON peer or database can hold.

Refused: nesting deeper than MAX_DEPTH (json recurses: 2,000 levels is a RecursionError), `NaN`, `Infinity` and
numbers that overflow to infinity (`1e999`) (not JSON, and nothing compares with them), lone surrogates (`"\\ud800"`:
not UTF-8, so no column stores them) and NUL characters (PostgreSQL text refuses them). Used by the admin API for
every JSON body and by the segment filter language for JSON typed on the command line.
"""

from __future__ import annotations

import json
import math
import re
from typing import Any

MAX_DEPTH = 64
_STRING = re.compile(r'"(?:[^"\\]|\\.)*"', re.DOTALL)  # linear: the alternatives never overlap
_BRACKET = re.compile(r"[\[\]{}]")


class UnsafeJSON(ValueError):
    """Valid for Python's json module, refused here (the message says why)."""


def loads(data: str | bytes) -> Any:
    """The document, or UnsafeJSON for what this module refuses (and ValueError for malformed JSON)."""
    text = data.decode("utf-8") if isinstance(data, bytes | bytearray) else data
    if depth(text) > MAX_DEPTH:
        raise UnsafeJSON(f"JSON nested deeper than {MAX_DEPTH} levels")
    doc = json.loads(text, parse_constant=_constant, parse_float=_float)
    for item in _strings(doc):
        if "\x00" in item or not _utf8(item):
            raise UnsafeJSON("JSON text may not contain NUL characters or lone surrogates (\\ud800-\\udfff)")
    return doc


def depth(text: str) -> int:
    """How deeply brackets nest outside strings (an upper bound for malformed text)."""
    level = deepest = 0
    for found in _BRACKET.finditer(_STRING.sub('""', text)):
        level += 1 if found.group() in "[{" else -1
        deepest = max(deepest, level)
    return deepest


def _constant(name: str) -> Any:
    raise UnsafeJSON(f"{name} is not a JSON number")


def _float(text: str) -> float:
    value = float(text)
    if not math.isfinite(value):
        raise UnsafeJSON(f"{text[:40]} is too large a number")
    return value


def _strings(doc: Any) -> list[str]:
    """Every string in the document, keys included, without recursion."""
    out, stack = [], [doc]
    while stack:
        item = stack.pop()
        if isinstance(item, str):
            out.append(item)
        elif isinstance(item, dict):
            stack += [*item.keys(), *item.values()]
        elif isinstance(item, list):
            stack += item
    return out


def _utf8(text: str) -> bool:
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        return False
    return True


def finite(doc: Any) -> Any:
    """`doc` with every non-finite float replaced by None (what JavaScript's JSON.stringify does), for writing out
    values stored before they were refused."""
    if isinstance(doc, float):
        return doc if math.isfinite(doc) else None
    if isinstance(doc, dict):
        return {k: finite(v) for k, v in doc.items()}
    if isinstance(doc, list | tuple):
        return [finite(v) for v in doc]
    return doc
