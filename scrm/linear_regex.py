"""Regular expressions a marketer writes, matched in time linear in the text whatever the pattern (RE2).

Python's `re` backtracks: `(a+)+$` against `'a' * 34 + '!'` takes half a minute, and the passive reply is decided in
the callback request, so one follower's message would freeze every worker. RE2 (google-re2) runs in time linear in
the text and memory bounded by `MAX_MEM`; it refuses what needs backtracking (backreferences `\\1`, lookaround
`(?=...)`, possessive quantifiers), and the playbook refuses such a rule when it is loaded, naming it.

Differences a marketer may notice (docs/playbook.md): `\\d`, `\\w`, `\\b` are ASCII-only in RE2; write `\\p{Han}`,
`\\pL` or `\\pN` for Chinese characters, letters or digits of any script.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import lru_cache

import re2

MAX_PATTERN = 1000  # characters: longer is not a rule anyone reads
MAX_MEM = 8 << 20  # bytes RE2 may use for one compiled pattern (its default); bigger patterns fail to compile


class RegexError(ValueError):
    """A pattern RE2 cannot compile (the message says why)."""


@dataclass(frozen=True, slots=True)
class Regex:
    pattern: str
    compiled: re2._Regexp

    @property
    def groupindex(self) -> dict[str, int]:
        return dict(self.compiled.groupindex)

    def search(self, text: str) -> dict[str, str] | None:
        """The named groups of the first match anywhere in `text` (unmatched ones left out), or None."""
        found = self.compiled.search(_encodable(text))
        return None if found is None else {k: v for k, v in found.groupdict().items() if v is not None}

    def fullmatch(self, text: str) -> dict[str, str] | None:
        """The named groups when the whole of `text` matches, or None."""
        found = self.compiled.fullmatch(_encodable(text))
        return None if found is None else found.groupdict()


def _encodable(text: str) -> str:
    """RE2 matches UTF-8: a lone surrogate (which no callback can carry, but a string may) becomes U+FFFD."""
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        return text.encode("utf-8", "replace").decode("utf-8")
    return text


@lru_cache(maxsize=4096)
def compile_regex(pattern: str, ignore_case: bool = False, dot_all: bool = False) -> Regex:
    """Compiled once per process (cached); raises RegexError for what RE2 refuses."""
    if len(pattern) > MAX_PATTERN:
        raise RegexError(f"longer than {MAX_PATTERN} characters")
    options = re2.Options()
    options.log_errors = False  # RE2 would print each refusal to stderr; the caller reports it
    options.max_mem = MAX_MEM
    options.case_sensitive = not ignore_case
    options.dot_nl = dot_all
    try:
        return Regex(pattern, re2.compile(_encodable(pattern), options))
    except re2.error as exc:
        raise RegexError(_reason(exc)) from None


def _reason(exc: Exception) -> str:
    message = exc.args[0] if exc.args else str(exc)
    text = message.decode("utf-8", "replace") if isinstance(message, bytes) else str(message)
    if "invalid perl operator" in text or "invalid escape sequence" in text:
        text += " (lookaround and backreferences are not supported: they need backtracking)"
    return text


escape = re2.escape
