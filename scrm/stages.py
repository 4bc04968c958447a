"""Lifecycle stages and score thresholds, with hysteresis.

Two pure decisions, property-tested, and the storage of threshold arms:

- `crossings`: a threshold fires when an armed follower's score goes from below it to at or above it. Firing
  disarms it; it re-arms only once the score has been `margin` below the threshold. Re-arming is checked against
  the lower of the scores before and after an award: between awards a positive total only decays, so the score just
  before an award is the lowest it has been since the previous one (no periodic job is needed for re-arming).
- `target`: the stage a score earns. Forward moves happen as soon as a threshold is reached; backward moves only
  when the playbook enables `demote`, and only once the score is `margin` below the current stage's threshold.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import bindparam, delete, select
from sqlalchemy.orm import Session

from foundation.sql import insert_ignore
from scrm.playbook.models import ScoreArm

_A = ScoreArm.__table__.c
_FIRED = select(_A.threshold).where(_A.follower_id == bindparam("fid"), _A.model == bindparam("model"))
_REARM = delete(ScoreArm.__table__).where(
    _A.follower_id == bindparam("fid"),
    _A.model == bindparam("model"),
    _A.threshold.in_(bindparam("rearm", expanding=True)),
)


@dataclass(frozen=True, slots=True)
class Stage:
    name: str
    at: float | None  # threshold on the stage model; None = set by rules only


@dataclass(frozen=True, slots=True)
class Step:
    """One stage change: `direction` is "up" or "down"."""

    old: str
    new: str
    direction: str


def crossings(
    pre: float, post: float, thresholds: dict[float, float], fired: set[float]
) -> tuple[list[float], list[float]]:
    """(thresholds that fire now, fired thresholds that re-arm); `thresholds` maps threshold → re-arm margin."""
    low = min(pre, post)
    rearm = sorted(t for t in fired if t in thresholds and low < t - thresholds[t])
    armed = [t for t in sorted(thresholds) if t not in fired or t in rearm]
    return [t for t in armed if pre < t <= post], rearm


def index(order: Sequence[Stage], name: str) -> int:
    """The stage's position; -1 for a stage the playbook does not know (it then counts as the lowest)."""
    for i, stage in enumerate(order):
        if stage.name == name:
            return i
    return -1


def target(order: Sequence[Stage], current: str, score: float, margin: float, demote: bool) -> str:
    """The stage `score` earns for a follower now in `current`."""
    now = index(order, current)
    earned = max((i for i, s in enumerate(order) if s.at is not None and score >= s.at), default=-1)
    if earned > now:
        return order[earned].name
    if not demote or now < 0 or order[now].at is None or score >= order[now].at - margin:
        return current
    keep = max((i for i, s in enumerate(order[:now]) if s.at is not None and score >= s.at - margin), default=0)
    return order[keep].name


def path(order: Sequence[Stage], current: str, new: str) -> list[Step]:
    """The changes from `current` to `new`: upward, one per threshold stage passed (each fires its own trigger)."""
    old, to = index(order, current), index(order, new)
    if to < old:
        return [Step(current, new, "down")]
    passed = [s.name for s in order[old + 1 : to] if s.at is not None] + [new]
    steps, prev = [], current
    for name in passed:
        steps.append(Step(prev, name, "up"))
        prev = name
    return steps


def fired(session: Session, follower_id: int, model: str) -> set[float]:
    return set(session.connection().execute(_FIRED, {"fid": follower_id, "model": model}).scalars())


def save(session: Session, follower_id: int, model: str, fire: list[float], rearm: list[float], at: datetime) -> None:
    """Disarm what fired, re-arm what fell below its margin (a threshold may do both in one award)."""
    conn = session.connection()
    if rearm:
        conn.execute(_REARM, {"fid": follower_id, "model": model, "rearm": rearm})
    for threshold in fire:
        row = {"follower_id": follower_id, "model": model, "threshold": threshold, "fired_at": at}
        conn.execute(insert_ignore(session, ScoreArm, ["follower_id", "model", "threshold"]), row)


def save_fired(session: Session, rows: list[dict[str, Any]]) -> None:
    """Disarm many thresholds at once (`{follower_id, model, threshold, fired_at}` each): the applier's batch."""
    if rows:
        session.connection().execute(insert_ignore(session, ScoreArm, ["follower_id", "model", "threshold"]), rows)
