"""Caps and score events for an applier batch, in memory: what each follower's rules already gave is read once
for the whole batch, each award is checked against it as `scoring._record` would check it against the database,
and the batch's score events are inserted together at its end.

The same decisions as one statement per award: a `once` or `daily` cap is its unique key (the keys a follower
holds today are read up front), other caps count what was given (read up front, kept up to date here). Nothing
else awards the batch's followers meanwhile (the applier holds their partition; SQLite its write lock); the
inserts still ignore a key seen, so a concurrent award (a journey step on PostgreSQL) cannot be recorded twice.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import bindparam, case, func, or_, select
from sqlalchemy.orm import Session

from foundation.sql import insert_ignore
from scrm.playbook.models import ScoreEvent
from scrm.scoring import CapSpec, Usage, allowed, cap_key

_E = ScoreEvent.__table__.c
_FIDS = bindparam("fids", expanding=True)
_KEYS = select(_E.dedup).where(
    _E.follower_id.in_(_FIDS),
    _E.rule.in_(bindparam("keyed", expanding=True)),
    or_(_E.dedup.like("%:once:%"), _E.dedup.like(bindparam("daily"))),
)
_USAGE = (
    select(
        _E.follower_id,
        _E.rule,
        _E.model,
        func.count(),
        func.coalesce(func.sum(case((_E.at >= bindparam("day"), 1), else_=0)), 0),
        func.coalesce(func.sum(func.abs(_E.points)), 0),
    )
    .where(_E.follower_id.in_(_FIDS), _E.rule.in_(bindparam("counted", expanding=True)))
    .group_by(_E.follower_id, _E.rule, _E.model)
)


def _day(now: datetime) -> datetime:
    return now.replace(hour=0, minute=0, second=0, microsecond=0)


class CapBook:
    """`keyed` and `counted`: the capped rules of the batch's playbooks (Compiled.keyed_caps / counted_caps), so only
    their history is read (through the (follower, rule) index), not every score a follower ever got."""

    def __init__(self, session: Session, follower_ids: list[int], now: datetime, keyed: set[str],
                 counted: set[str]) -> None:  # fmt: skip
        self.session, self.day = session, _day(now)
        self.keys: set[str] = set()
        self.used: dict[tuple[int, str, str], list[int]] = {}  # (fid, rule, model) → [count, today, points]
        self.events: list[dict[str, Any]] = []
        self.rules = keyed | counted
        if follower_ids:
            self._load(follower_ids, sorted(keyed), sorted(counted))

    def _load(self, follower_ids: list[int], keyed: list[str], counted: list[str]) -> None:
        conn = self.session.connection()
        if keyed:
            daily = f"%:{self.day:%Y%m%d}:%"
            params = {"fids": follower_ids, "keyed": keyed, "daily": daily}
            self.keys.update(conn.execute(_KEYS, params).scalars())
        if counted:
            params = {"fids": follower_ids, "counted": counted, "day": self.day}
            for fid, rule, model, count, today, points in conn.execute(_USAGE, params):
                self.used[(fid, rule, model)] = [int(count), int(today), int(points)]

    def record(self, follower_id: int, model: str, points: int, rule: str, interaction_id: int | None, dedup: str,
               cap: CapSpec | None, now: datetime) -> int | None:  # fmt: skip
        """The points given (0: capped); None when this book cannot decide (another day than it read, or a capped
        rule it was not told of)."""
        if _day(now) != self.day or (cap is not None and rule not in self.rules):
            return None
        key = cap_key(cap, rule, model, follower_id, now)
        if key is not None:
            if key in self.keys:
                return 0
            dedup = key
            if cap is not None and cap.total is not None:  # `once` with a total: the one award is trimmed
                points = allowed(points, cap, Usage())
        elif cap is not None:
            count, today, given = self.used.get((follower_id, rule, model), (0, 0, 0))
            points = allowed(points, cap, Usage(count, today, given))
        if points == 0:
            return 0
        self._given(follower_id, rule, model, points, dedup)
        self.events.append({"follower_id": follower_id, "model": model, "rule": rule,
                            "interaction_id": interaction_id, "points": points, "at": now, "dedup": dedup})  # fmt: skip
        return points

    def _given(self, follower_id: int, rule: str, model: str, points: int, dedup: str) -> None:
        self.keys.add(dedup)
        used = self.used.setdefault((follower_id, rule, model), [0, 0, 0])
        used[0] += 1
        used[1] += 1
        used[2] += abs(points)

    def flush(self) -> None:
        if self.events:
            self.session.connection().execute(insert_ignore(self.session, ScoreEvent, ["dedup"]), self.events)
            self.events = []
