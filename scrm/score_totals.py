"""Score totals: read decayed (one follower, many, as a SQL expression, explained event by event) and recomputed
after a model's half-life changed. Awarding points is scrm.scoring.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import Float, Select, bindparam, case, func, literal, select, update
from sqlalchemy.orm import Session

from foundation.clock import iso, utcnow
from scrm.models import Interaction
from scrm.playbook.models import FollowerScore, ScoreEvent
from scrm.scoring import DAY, decay, decayed, epoch

_S = FollowerScore.__table__.c
_STATE = select(_S.value, _S.as_of, _S.half_life).where(
    _S.follower_id == bindparam("fid"), _S.model == bindparam("model")
)


def current(session: Session, follower_id: int, model: str, now: datetime | None = None) -> float:
    row = session.connection().execute(_STATE, {"fid": follower_id, "model": model}).first()
    return decayed(row.value, row.as_of, epoch(now or utcnow()), row.half_life) if row else 0.0


def totals(session: Session, follower_ids: list[int], now: datetime | None = None) -> dict[int, dict[str, float]]:
    """Decayed score per model for each follower (what the follower JSON shows), one indexed query."""
    if not follower_ids:
        return {}
    ts = epoch(now or utcnow())
    out: dict[int, dict[str, float]] = {}
    rows = session.execute(
        select(_S.follower_id, _S.model, _S.value, _S.as_of, _S.half_life).where(_S.follower_id.in_(follower_ids))
    )
    for row in rows:
        out.setdefault(row.follower_id, {})[row.model] = round(decayed(row.value, row.as_of, ts, row.half_life), 2)
    return out


def explain(session: Session, follower_id: int, now: datetime | None = None, limit: int = 200) -> dict[str, Any]:
    """Model totals now, and each score event: rule, interaction, points at the time and points now."""
    now = now or utcnow()
    ts = epoch(now)
    rows = session.scalars(select(FollowerScore).where(FollowerScore.follower_id == follower_id))
    states = {r.model: r for r in rows}
    models = {
        m: {"score": round(decayed(r.value, r.as_of, ts, r.half_life), 2),
            "half_life_days": round(r.half_life / DAY, 4) if r.half_life else None}
        for m, r in states.items()
    }  # fmt: skip
    rows = session.execute(_events(follower_id).limit(limit))
    events = []
    for ev, kind in rows:
        half_life = states[ev.model].half_life if ev.model in states else None
        events.append({
            "id": ev.id, "model": ev.model, "rule": ev.rule, "interaction_id": ev.interaction_id,
            "interaction_kind": kind, "points": ev.points, "at": iso(ev.at),
            "points_now": round(ev.points * decay(ts - epoch(ev.at), half_life), 4),
        })  # fmt: skip
    return {"at": iso(now), "total": round(sum(m["score"] for m in models.values()), 2), "models": models,
            "events": events}  # fmt: skip


def _events(follower_id: int) -> Select[Any]:
    return (
        select(ScoreEvent, Interaction.kind)
        .outerjoin(Interaction, Interaction.id == ScoreEvent.interaction_id)
        .where(ScoreEvent.follower_id == follower_id)
        .order_by(ScoreEvent.at.desc(), ScoreEvent.id.desc())
    )


def decayed_sql(now: datetime) -> Any:
    """The decayed total as a SQL expression over `follower_scores` (pow is built into SQLite ≥ 3.35 and PG)."""
    ts = literal(epoch(now), Float)
    return case(
        (FollowerScore.half_life.is_(None), FollowerScore.value),
        else_=FollowerScore.value * func.pow(0.5, (ts - FollowerScore.as_of) / FollowerScore.half_life),
    )


def _epoch_sql(session: Session, column: Any) -> Any:
    if session.get_bind().dialect.name == "sqlite":
        return (func.julianday(column) - 2440587.5) * DAY
    return func.extract("epoch", column)


def rebase(session: Session, model: str, half_life: float | None, now: datetime | None = None) -> int:
    """Recompute a model's running totals from its events after its half-life changed (one set-based UPDATE)."""
    ts = epoch(now or utcnow())
    factor: Any = literal(1.0, Float)
    if half_life:
        factor = func.pow(0.5, (literal(ts, Float) - _epoch_sql(session, ScoreEvent.at)) / half_life)
    total = (
        select(func.coalesce(func.sum(ScoreEvent.points * factor), 0.0))
        .where(ScoreEvent.follower_id == FollowerScore.follower_id, ScoreEvent.model == model)
        .scalar_subquery()
    )
    result = session.execute(
        update(FollowerScore)
        .where(FollowerScore.model == model)
        .values(value=total, as_of=ts, half_life=half_life)
        .execution_options(synchronize_session=False)
    )
    return result.rowcount


def needs_rebase(session: Session, model: str, half_life: float | None) -> bool:
    """True when some running total of `model` was kept with another half-life."""
    stmt = select(FollowerScore.follower_id).where(
        FollowerScore.model == model, FollowerScore.half_life.is_distinct_from(half_life)
    )
    return session.scalar(stmt.limit(1)) is not None
