"""Scores: named models, capped awards, half-life decay computed at read time, every point explained.

A score event records the points a rule gave. The follower's total for a model is the sum of its events, each
decayed by 0.5 ** (age / half_life). Because that decay is exponential, the sum decays as a whole: one running total
per follower and model (`follower_scores`: value as of `as_of`) gives the exact same number without summing events,
and makes "score between 40 and 80" a one-row-per-follower expression that SQL can filter on (see `decayed_sql`).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from datetime import UTC, datetime
from functools import cache
from typing import TYPE_CHECKING, Any

from sqlalchemy import Float, and_, bindparam, case, func, null, select, union_all
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.orm import Session

from foundation.clock import utcnow
from foundation.sql import insert_ignore

if TYPE_CHECKING:
    from scrm.score_caps import CapBook
from scrm.playbook.models import FollowerScore, ScoreArm, ScoreEvent

DAY = 86400.0

# Core statements built once (see scrm.tags): the award path runs inside every scored callback.
_E, _S = ScoreEvent.__table__.c, FollowerScore.__table__.c
_USAGE = select(
    func.count(),
    func.coalesce(func.sum(case((_E.at >= bindparam("day"), 1), else_=0)), 0),
    func.coalesce(func.sum(func.abs(_E.points)), 0),
).where(_E.follower_id == bindparam("fid"), _E.rule == bindparam("rule"), _E.model == bindparam("model"))


_A = ScoreArm.__table__.c
# A follower's whole scoring state in one statement: running totals (threshold NULL) and fired thresholds.
_FIDS = bindparam("fids", expanding=True)
_LEDGERS = union_all(
    select(_S.follower_id, _S.model, _S.value, _S.as_of, _S.half_life, null().label("threshold"))
    .where(_S.follower_id.in_(_FIDS)),
    select(_A.follower_id, _A.model, null(), null(), null(), _A.threshold).where(_A.follower_id.in_(_FIDS)),
)  # fmt: skip


@dataclass(frozen=True, slots=True)
class CapSpec:
    """once: one award ever; per_day: awards per UTC day; total: points ever (absolute value) per follower."""

    once: bool = False
    per_day: int | None = None
    total: int | None = None


@dataclass(frozen=True, slots=True)
class Usage:
    """What a rule already gave a follower in a model: awards ever, awards today, points ever (absolute)."""

    count: int = 0
    today: int = 0
    points: int = 0


@dataclass(frozen=True, slots=True)
class Award:
    model: str
    points: int
    pre: float  # decayed total just before
    post: float  # and just after


def epoch(at: datetime) -> float:
    return at.replace(tzinfo=UTC).timestamp()


def decay(age: float, half_life: float | None) -> float:
    """The fraction of a point left after `age` seconds; 1 without decay; never above 1 (clock skew)."""
    if not half_life:
        return 1.0
    return math.pow(0.5, max(age, 0.0) / half_life)


def decayed(value: float, as_of: float, now: float, half_life: float | None) -> float:
    return value * decay(now - as_of, half_life)


def accumulate(value: float, as_of: float, points: float, at: float, half_life: float | None) -> tuple[float, float]:
    """The running total after adding `points` at time `at` (which may be earlier than `as_of`)."""
    if at >= as_of:
        return decayed(value, as_of, at, half_life) + points, at
    return value + points * decay(as_of - at, half_life), as_of


def allowed(points: int, cap: CapSpec | None, used: Usage) -> int:
    """Points a capped rule may still give: 0 when a limit is reached; a total cap trims the last award."""
    if cap is None or points == 0:
        return points
    if (cap.once and used.count >= 1) or (cap.per_day is not None and used.today >= cap.per_day):
        return 0
    if cap.total is not None:
        room = max(cap.total - used.points, 0)
        return int(math.copysign(min(abs(points), room), points)) if room else 0
    return points


def usage(session: Session, follower_id: int, rule: str, model: str, now: datetime) -> Usage:
    day = now.replace(hour=0, minute=0, second=0, microsecond=0)
    row = session.connection().execute(_USAGE, {"fid": follower_id, "rule": rule, "model": model, "day": day}).one()
    return Usage(int(row[0]), int(row[1]), int(row[2]))


@cache
def _fold(dialect: str) -> Any:
    """Insert the first award, or fold an award into the running total in SQL: one statement, RETURNING the total.

    The same arithmetic as `accumulate`, so concurrent writers cannot lose an update between a read and a write.
    """
    stmt = (postgresql if dialect == "postgresql" else sqlite).insert(FollowerScore.__table__)
    new, old = stmt.excluded, FollowerScore.__table__.c
    later = new.as_of >= old.as_of
    value = case(
        (old.half_life.is_(None), old.value + new.value),
        (later, old.value * func.pow(0.5, (new.as_of - old.as_of) / old.half_life) + new.value),
        else_=old.value + new.value * func.pow(0.5, (old.as_of - new.as_of) / old.half_life),
    )
    return stmt.on_conflict_do_update(
        index_elements=["follower_id", "model"],
        set_={"value": value, "as_of": case((later, new.as_of), else_=old.as_of)},
    ).returning(old.value, old.as_of, old.half_life)


@cache
def fold_exact(dialect: str) -> Any:
    """`_fold` for `Ledger.flush`: set the total computed in Python when the row is unchanged since it was read
    (`seen_*`), else fold the new points (`value` at `as_of`) into it; no RETURNING.
    """
    stmt = (postgresql if dialect == "postgresql" else sqlite).insert(FollowerScore.__table__)
    new, old = stmt.excluded, FollowerScore.__table__.c
    later = new.as_of >= old.as_of
    same = and_(old.value == bindparam("seen_value", type_=Float), old.as_of == bindparam("seen_as_of", type_=Float))
    value = case(
        (same, bindparam("final", type_=Float)),
        (old.half_life.is_(None), old.value + new.value),
        (later, old.value * func.pow(0.5, (new.as_of - old.as_of) / old.half_life) + new.value),
        else_=old.value + new.value * func.pow(0.5, (old.as_of - new.as_of) / old.half_life),
    )
    as_of = case((same, bindparam("final_as_of", type_=Float)), (later, new.as_of), else_=old.as_of)
    return stmt.on_conflict_do_update(index_elements=["follower_id", "model"], set_={"value": value, "as_of": as_of})


def cap_key(cap: CapSpec | None, rule: str, model: str, follower_id: int, now: datetime) -> str | None:
    """For `once` and `daily` caps the score event's unique key is the cap itself: no usage query, and a concurrent
    or retried award cannot slip through. Other caps count what was given (`usage`).
    """
    if cap is None:
        return None
    if cap.once:
        return f"{rule}:{model}:once:{follower_id}"
    if cap.per_day == 1 and cap.total is None:
        return f"{rule}:{model}:{now:%Y%m%d}:{follower_id}"
    return None


def award(
    session: Session,
    *,
    follower_id: int,
    model: str,
    half_life: float | None,
    points: int,
    rule: str,
    interaction_id: int | None,
    dedup: str,
    cap: CapSpec | None = None,
    now: datetime | None = None,
) -> Award | None:
    """Give points (within the cap); None when nothing was given (cap reached, or `dedup` seen already).

    The caller holds the follower's row lock (the engine takes it), so cap checks and the running total are safe.
    """
    now = now or utcnow()
    points = _record(session, follower_id, model, points, rule, interaction_id, dedup, cap, now)
    if points == 0:
        return None
    conn = session.connection()
    ts = epoch(now)
    total = {"follower_id": follower_id, "model": model, "value": float(points), "as_of": ts, "half_life": half_life}
    value, as_of, kept = conn.execute(_fold(session.get_bind().dialect.name), total).one()
    at = max(ts, as_of)
    post = decayed(value, as_of, at, kept)
    return Award(model, points, post - points * decay(at - ts, kept), post)


def _record(
    session: Session,
    follower_id: int,
    model: str,
    points: int,
    rule: str,
    interaction_id: int | None,
    dedup: str,
    cap: CapSpec | None,
    now: datetime,
) -> int:
    """Apply the cap and insert the score event: the points given, 0 when none (cap reached, `dedup` seen)."""
    key = cap_key(cap, rule, model, follower_id, now)
    if key is not None:
        dedup = key
        if cap is not None and cap.total is not None:  # `once` with a total: the one award is trimmed
            points = allowed(points, cap, Usage())
    elif cap is not None:
        points = allowed(points, cap, usage(session, follower_id, rule, model, now))
    if points == 0:
        return 0
    event = {"follower_id": follower_id, "model": model, "rule": rule, "interaction_id": interaction_id,
             "points": points, "at": now, "dedup": dedup}  # fmt: skip
    if session.connection().execute(insert_ignore(session, ScoreEvent, ["dedup"], "id"), event).scalar() is None:
        return 0
    return points


@dataclass(slots=True)
class _Total:
    value: float
    as_of: float
    half_life: float | None
    seen: tuple[float, float] | None  # (value, as_of) of the row as last read or written; None: no row yet
    given: float = 0.0  # points awarded since, not yet written (all at the same time `at`)
    at: float = 0.0


class Ledger:
    """One follower's scores during one engine run: read once, awards folded in memory, written once per model.

    Awards are computed exactly as `award` computes them (the same arithmetic as the SQL fold, in the same order),
    and each score event is still inserted at once (its unique key enforces caps and dedup). `flush` writes each
    touched model's total with one upsert: when the row is still what was read, the exact value computed here;
    otherwise (a concurrent rebase) the new points are folded into whatever is there, as `award` would have done.
    The fired thresholds (`score_arms`) come with the totals, in the same statement.
    """

    def __init__(self, session: Session, follower_id: int, caps: CapBook | None = None) -> None:
        self.session, self.follower_id = session, follower_id
        self.caps = caps  # an applier batch's (scrm.score_caps): caps decided in memory, events inserted together
        self._totals: dict[str, _Total] | None = None
        self._fired: dict[str, set[float]] = {}

    def _load(self) -> dict[str, _Total]:
        if self._totals is None:
            self._totals = {}
            for _fid, *row in self.session.connection().execute(_LEDGERS, {"fids": [self.follower_id]}):
                self._take(*row)
        return self._totals

    def current(self, model: str, now: datetime) -> float:
        row = self._load().get(model)
        return decayed(row.value, row.as_of, epoch(now), row.half_life) if row else 0.0

    def fired(self, model: str) -> set[float]:
        self._load()
        return self._fired.setdefault(model, set())

    def award(
        self,
        *,
        model: str,
        half_life: float | None,
        points: int,
        rule: str,
        interaction_id: int | None,
        dedup: str,
        cap: CapSpec | None,
        now: datetime,
    ) -> Award | None:
        """As `award`, with the total kept here until `flush`."""
        given = None
        if self.caps is not None:
            given = self.caps.record(self.follower_id, model, points, rule, interaction_id, dedup, cap, now)
        if given is None:
            given = _record(self.session, self.follower_id, model, points, rule, interaction_id, dedup, cap, now)
        points = given
        if points == 0:
            return None
        totals, ts = self._load(), epoch(now)
        row = totals.get(model)
        if row is None:  # the first award inserts the row with this half-life
            row = totals[model] = _Total(float(points), ts, half_life, None, float(points), ts)
        else:
            if row.given and row.at != ts:
                self.flush()
            row.value, row.as_of = accumulate(row.value, row.as_of, float(points), ts, row.half_life)
            row.given, row.at = row.given + points, ts
        at = max(ts, row.as_of)
        post = decayed(row.value, row.as_of, at, row.half_life)
        return Award(model, points, post - points * decay(at - ts, row.half_life), post)

    @classmethod
    def preload(cls, session: Session, follower_ids: list[int], caps: CapBook | None = None) -> dict[int, Ledger]:
        """Ledgers for many followers, read in one statement (the applier's batch shares them across runs)."""
        ledgers = {fid: cls(session, fid, caps) for fid in follower_ids}
        for ledger in ledgers.values():
            ledger._totals = {}
        if not follower_ids:
            return ledgers
        for fid, model, value, as_of, half_life, threshold in session.connection().execute(
            _LEDGERS, {"fids": follower_ids}
        ):
            ledgers[fid]._take(model, value, as_of, half_life, threshold)
        return ledgers

    def _take(self, model: str, value: float, as_of: float, half_life: float | None, threshold: float | None) -> None:
        assert self._totals is not None
        if threshold is None:
            self._totals[model] = _Total(value, as_of, half_life, (value, as_of))
        else:
            self._fired.setdefault(model, set()).add(threshold)

    def flush(self) -> None:
        """Write the totals awards changed since the last flush (one statement)."""
        rows = self.pending()
        if rows:
            conn = self.session.connection()
            conn.execute(fold_exact(self.session.get_bind().dialect.name), rows[0] if len(rows) == 1 else rows)

    def pending(self) -> list[dict[str, Any]]:
        """The upsert parameters of the totals changed since the last flush, marked written."""
        if not self._totals:
            return []
        rows = []
        for model, row in self._totals.items():
            if not row.given:
                continue
            seen_value, seen_as_of = row.seen if row.seen else (None, None)
            rows.append({"follower_id": self.follower_id, "model": model, "value": row.given, "as_of": row.at,
                         "half_life": row.half_life, "final": row.value, "final_as_of": row.as_of,
                         "seen_value": seen_value, "seen_as_of": seen_as_of})  # fmt: skip
            row.given, row.seen = 0.0, (row.value, row.as_of)
        return rows


def half_life_seconds(days: float | None) -> float | None:
    return days * DAY if days else None
