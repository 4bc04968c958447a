"""`if:` conditions, evaluated the same way wherever they run: in the applier's engine run (against the follower
being changed) and in the request (against a snapshot read once, to decide a passive reply).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Protocol

from scrm import stages
from scrm.playbook.compiled import Compiled
from scrm.playbook.grammar import Condition
from scrm.scenes import compile_pattern


class Subject(Protocol):
    """What conditions read of a follower; `tags` and `score` are called only when a condition needs them."""

    subscribed: bool | None
    owner_id: int | None
    stage: str


def has(have: set[str], pattern: str) -> bool:
    compiled = compile_pattern(pattern)
    return pattern in have if compiled.literal else any(compiled.match(t) is not None for t in have)


def holds(
    book: Compiled,
    cond: Condition | None,
    who: Subject,
    tags: Callable[[], set[str]],
    score: Callable[[str], float],
) -> bool:
    """True when every part of `cond` holds for `who`."""
    if cond is None:
        return True
    if cond.subscribed is not None and bool(who.subscribed) != cond.subscribed:
        return False
    if cond.owned is not None and (who.owner_id is not None) != cond.owned:
        return False
    return _stage(book, cond, who.stage) and _tags(cond, tags) and _score(book, cond, score)


def _stage(book: Compiled, cond: Condition, stage: str) -> bool:
    if cond.stage and stage not in cond.stage:
        return False
    if not (cond.stage_at_least or cond.stage_below):
        return True
    at = stages.index(book.stages, stage)
    if cond.stage_at_least and at < stages.index(book.stages, cond.stage_at_least):
        return False
    return not (cond.stage_below and at >= stages.index(book.stages, cond.stage_below))


def _tags(cond: Condition, tags: Callable[[], set[str]]) -> bool:
    if not (cond.tagged or cond.any_tagged or cond.not_tagged):
        return True
    have = tags()
    if not all(has(have, p) for p in cond.tagged):
        return False
    if cond.any_tagged and not any(has(have, p) for p in cond.any_tagged):
        return False
    return not any(has(have, p) for p in cond.not_tagged)


def _score(book: Compiled, cond: Condition, score: Callable[[str], float]) -> bool:
    if cond.score is None:
        return True
    value = score(cond.score.model or book.primary)
    low, high = cond.score.min, cond.score.max
    return (low is None or value >= low) and (high is None or value <= high)
