"""Structured codes (QR scenes, tags, menu keys, forms) and the one pattern syntax rules and segments share.

Scene codes are colon-separated parts: `rep:<id>`, `booth:<event>:<booth>`, `staff:<event>:<booth>`,
`campaign:<name>`. A pattern is literal text with two wildcards:

- `{name}` matches exactly one part (no colon) and binds it, so actions can reuse it (`tag: event:{event}`);
- `*` matches any run of characters, colons included.

Rules match with a compiled regex (exact, RE2: linear in the text however many `*` a pattern has). Segments
translate patterns to SQL GLOB (SQLite) or LIKE (PostgreSQL); there `{name}` is not allowed, so the translation is
exact and a literal prefix can use the column's index.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from functools import lru_cache
from typing import Any

from sqlalchemy import ColumnElement

from foundation.numbers import ascii_int
from scrm.linear_regex import Regex, RegexError, compile_regex, escape

_TOKEN = re.compile(r"\{([A-Za-z_][A-Za-z0-9_]*)\}|\*")
SCENE_KINDS = ("rep", "booth", "staff", "campaign")


class PatternError(ValueError):
    """A pattern that cannot be compiled (bad placeholder, repeated name)."""


@dataclass(frozen=True, slots=True)
class Pattern:
    text: str
    regex: Regex
    names: tuple[str, ...]

    def match(self, value: str | None) -> dict[str, str] | None:
        """The bound parts when `value` matches the whole pattern, else None."""
        if value is None:
            return None
        return self.regex.fullmatch(value)

    @property
    def literal(self) -> bool:
        return not self.names and "*" not in self.text


@lru_cache(maxsize=4096)
def compile_pattern(text: str) -> Pattern:
    """Compiled once per process (cached); matching is then one regex call."""
    if "{" in _TOKEN.sub("", text) or "}" in _TOKEN.sub("", text):
        raise PatternError(f"bad placeholder in pattern {text!r} (use {{name}} with letters, digits, _)")
    out, names, pos = [], [], 0
    for token in _TOKEN.finditer(text):
        out.append(escape(text[pos : token.start()]))
        name = token.group(1)
        if name is None:
            out.append(".*")
        elif name in names:
            raise PatternError(f"placeholder {{{name}}} appears twice in {text!r}")
        else:
            names.append(name)
            out.append(f"(?P<{name}>[^:]+)")
        pos = token.end()
    out.append(escape(text[pos:]))
    try:
        return Pattern(text, compile_regex("".join(out), dot_all=True), tuple(names))
    except RegexError as exc:
        raise PatternError(f"pattern {text[:80]!r} cannot be compiled: {exc}") from None


def parse_scene(scene: str | None) -> dict[str, str]:
    """The named parts of a well-known scene code (`booth:expo:A1` → kind, event, booth); {} for anything else."""
    if not scene:
        return {}
    parts = scene.split(":")
    layouts: dict[str, tuple[str, ...]] = {
        "rep": ("kind", "rep"),
        "booth": ("kind", "event", "booth"),
        "staff": ("kind", "event", "booth"),
        "campaign": ("kind", "campaign"),
    }
    layout = layouts.get(parts[0])
    if layout is None or len(parts) != len(layout):
        return {"kind": parts[0]} if len(parts) > 1 else {}
    return dict(zip(layout, parts, strict=True))


def scene_id(scene: str | None, kind: str) -> int | None:
    """The id in a `<kind>:<id>` scene (`rep:12`, `team:3`): ASCII digits within BIGINT, else None. `str.isdigit`
    accepts `³` (int() then raises) and any length (the database then overflows): read ids from scenes here."""
    prefix, _, ident = (scene or "").partition(":")
    return ascii_int(ident, 1) if prefix == kind else None


def _escape_glob(text: str) -> str:
    return re.sub(r"([\[\]*?])", r"[\1]", text)


def _escape_like(text: str) -> str:
    return text.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")


def sql_match(column: Any, text: str, dialect: str) -> ColumnElement[bool]:
    """`column` matches pattern `text` in SQL: equality for a literal, GLOB/LIKE otherwise (prefix uses an index)."""
    if "{" in text:
        raise PatternError("placeholders ({name}) are for rules; in filters use * as the wildcard")
    if "*" not in text:
        return column == text
    pieces = text.split("*")
    if dialect == "sqlite":
        return column.op("GLOB")("*".join(_escape_glob(p) for p in pieces))
    return column.like("%".join(_escape_like(p) for p in pieces), escape="\\")
