"""Playbook text → plain data, with bounds checked before anything is built from it.

YAML aliases let 4 KB of text stand for millions of nodes (220 rules x 220 actions x 220 tags): PyYAML shares the
aliased objects, so parsing is quick, but everything that walks the result (validation, JSON for the database)
pays for the whole expansion (19 s and 121 MB measured). So the composed node graph is measured first, each node
once: its size as if every alias were written out, and its depth. Beyond the bounds below the text is refused
with a line number, in milliseconds, before a single Python object is constructed.

Also refused: text longer than MAX_SOURCE, nesting deeper than MAX_DEPTH (PyYAML's composer recurses), aliases of
a node inside itself (cycles), lone surrogates (`"\\ud800"`: not text any database stores), and integers too long
for Python to read. docs/playbook.md ("Limits") lists them.
"""

from __future__ import annotations

from typing import Any

import yaml
from yaml.nodes import MappingNode, Node, ScalarNode, SequenceNode

MAX_SOURCE = 1 << 20  # characters (an API body is also capped by WELEAD_MAX_BODY)
MAX_ALIASES = 100  # alias uses (`*name`) in one document
MAX_NODES = 100_000  # nodes once every alias is expanded (the demo playbook has ~400, a 200-rule one ~10,000)
MAX_DEPTH = 32  # nesting levels (a playbook needs about 8)


class SourceError(ValueError):
    """The text is not YAML, or exceeds a bound; the message says where."""


class _Loader(yaml.SafeLoader):
    """SafeLoader that counts aliases and nesting while composing, before any object is constructed."""

    def __init__(self, stream: str) -> None:
        super().__init__(stream)
        self.depth = 0
        self.aliases = 0

    def compose_node(self, parent: Node | None, index: Any) -> Node:
        if self.check_event(yaml.AliasEvent):
            self.aliases += 1
            if self.aliases > MAX_ALIASES:
                raise SourceError(f"{_at(self.peek_event())}more than {MAX_ALIASES} aliases (*name)")
        self.depth += 1
        try:
            if self.depth > MAX_DEPTH:
                raise SourceError(f"{_at(self.peek_event())}nested deeper than {MAX_DEPTH} levels")
            return super().compose_node(parent, index)
        finally:
            self.depth -= 1


def _at(item: Any) -> str:
    mark = getattr(item, "start_mark", None) or getattr(item, "problem_mark", None)
    return f"line {mark.line + 1}, column {mark.column + 1}: " if mark else ""


def load(text: str) -> Any:
    """The data of one YAML (or JSON) document; SourceError when it is malformed or out of bounds."""
    if len(text) > MAX_SOURCE:
        raise SourceError(f"the playbook is {len(text)} characters; at most {MAX_SOURCE}")
    loader = _Loader(text)
    try:
        node = loader.get_single_node()
        if node is None:
            return None
        measure(node)
        return loader.construct_document(node)
    except yaml.YAMLError as exc:
        raise SourceError(f"{_at(exc)}not valid YAML ({getattr(exc, 'problem', None) or exc})") from None
    except ValueError as exc:  # SourceError, or an integer beyond Python's digit limit
        raise SourceError(str(exc) if isinstance(exc, SourceError) else f"not valid YAML ({exc})") from None
    finally:
        loader.dispose()


def _children(node: Node) -> list[Node]:
    if isinstance(node, SequenceNode):
        return list(node.value)
    if isinstance(node, MappingNode):
        return [part for pair in node.value for part in pair]
    return []


def measure(root: Node) -> tuple[int, int]:
    """(nodes, depth) of the document with its aliases expanded, each node visited once (no recursion)."""
    size: dict[int, tuple[int, int]] = {}
    open_: set[int] = set()
    stack: list[tuple[Node, bool]] = [(root, False)]
    while stack:
        node, done = stack.pop()
        key = id(node)
        if done:
            parts = [size[id(c)] for c in _children(node)]
            found = (1 + sum(n for n, _ in parts), 1 + max((d for _, d in parts), default=0))
            open_.discard(key)
            size[key] = _checked(node, found)
        elif key not in size:
            if key in open_:
                raise SourceError(f"{_at(node)}an alias refers to a node that contains it")
            open_.add(key)
            stack.append((node, True))
            stack += [(c, False) for c in _children(node) if id(c) not in size]
    return size[id(root)]


def _checked(node: Node, found: tuple[int, int]) -> tuple[int, int]:
    nodes, depth = found
    if nodes > MAX_NODES:
        raise SourceError(f"{_at(node)}aliases expand to more than {MAX_NODES} nodes")
    if depth > MAX_DEPTH:
        raise SourceError(f"{_at(node)}aliases nest deeper than {MAX_DEPTH} levels")
    if isinstance(node, ScalarNode) and not _encodable(node.value):
        raise SourceError(f"{_at(node)}a lone surrogate (\\ud800-\\udfff) is not text")
    return found


def _encodable(text: str) -> bool:
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        return False
    return True
