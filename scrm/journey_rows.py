"""Journey runs as plain rows on the step runner's hot path: read with one Core select, written back with one
executemany per batch (the ORM spent more time tracking 500 runs than the steps took).

`RunRow` has the columns of `journey_runs` the stepper reads and changes; `write` sets every changeable column of
each row by id (the runner holds the runs' row locks, PostgreSQL FOR UPDATE, so nothing changed them meanwhile).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import bindparam, select, update
from sqlalchemy.orm import Session

from scrm.journey_models import RUNNING, JourneyRun

_R = JourneyRun.__table__.c
CHANGING = ("step", "state", "updated_at", "reason", "version", "position", "due_at", "since")
_COLUMNS = (_R.id, _R.follower_id, _R.journey, _R.started_at, _R.context, *(_R[c] for c in CHANGING))
_WRITE = (
    update(JourneyRun.__table__).where(_R.id == bindparam("rid")).values({c: bindparam(f"v_{c}") for c in CHANGING})
)


@dataclass(slots=True)
class RunRow:
    id: int
    follower_id: int
    journey: str
    started_at: datetime
    context: dict[str, Any] | None
    step: int
    state: str
    updated_at: datetime
    reason: str | None
    version: int | None
    position: str | None
    due_at: datetime | None
    since: datetime | None


def columns() -> tuple[Any, ...]:
    """The columns a `RunRow` is made of, in its order (for selects of runs elsewhere)."""
    return _COLUMNS


def due(session: Session, now: datetime, limit: int) -> list[RunRow]:
    """Up to `limit` runs due at `now`, oldest due first, locked (PostgreSQL: SKIP LOCKED, runners share the work)."""
    query = select(*_COLUMNS).where(_R.state == RUNNING, _R.due_at <= now).order_by(_R.due_at, _R.id).limit(limit)
    return locked(session, query)


def locked(session: Session, query: Any) -> list[RunRow]:
    """The runs a select of `columns()` finds, locked on PostgreSQL (SKIP LOCKED: runners share the work)."""
    if session.get_bind().dialect.name == "postgresql":
        query = query.with_for_update(skip_locked=True, of=JourneyRun.__table__)
    return [RunRow(*row) for row in session.connection().execute(query)]


def one(session: Session, run_id: int) -> RunRow | None:
    row = session.connection().execute(select(*_COLUMNS).where(_R.id == run_id)).first()
    return RunRow(*row) if row is not None else None


def write(session: Session, runs: list[RunRow]) -> None:
    """Every run's changeable columns, one executemany."""
    if runs:
        rows = [{"rid": r.id, **{f"v_{c}": getattr(r, c) for c in CHANGING}} for r in runs]
        session.connection().execute(_WRITE, rows)
