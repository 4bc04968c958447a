"""Who gets a new lead: weighted round-robin among the reps eligible right now, fair and race-free.

Public API (the applier's assignment effects, team codes and the lead transfers all use it):

- `pick(session, candidates, at, pool) -> int | None`: `candidates` is a list of `(rep_id, weight)` (weight None:
  the rep's own); returns the rep who gets the lead, or None when nobody is eligible. The pick is charged: the
  pool's turn moves on and the rep's count for the local day goes up by one, in the caller's transaction, so the
  caller must give that rep the lead in the same transaction (a rollback undoes both).
- `charge(session, rep_id, at, pool=None, weight=None)`: count a lead given without a pick (WeCom chose the member,
  a personal code, a playbook `assign`): the daily count, and the pool's turn when a pool is named.
- `eligible(session, rep_ids, at) -> list[int]`, `at_cap(session, rep_id, at) -> bool`, `everyone(session)`.

Eligible means active, confirmed, working at `at` (scrm.hours), under `daily_cap` for the local day (Asia/Shanghai)
and under `open_cap` open leads (scrm.reps.open_lead), counting the changes of this session not yet flushed.

Fairness: each member of a pool has a virtual finish time; a pick goes to the eligible member whose finish time
after one more lead (start + 1/weight, start = max(its finish, the pool's clock)) is smallest, ties by rep id. Over
any run of picks each rep's share is its weight's share, within one lead; a rep who sat out restarts at the pool's
clock, so coming back gives them their share from then on, not a catch-up burst.

Races: every pick and charge first takes one transaction-scoped PostgreSQL advisory lock (`LOCK_SPACE`), held to
commit, then reads the counts: two appliers' batches (or a batch and a transfer) assign one after the other and
never both give a rep their last free slot. One lock for every pool, not one per pool: a batch that picks from
several pools cannot deadlock with another batch on the pools or the counters. Take it last: a transaction that
locks followers after picking can deadlock with an applier batch (which locks its followers first); PostgreSQL
then aborts one of them, which the applier retries as a TRANSIENT error. SQLite has one writer at a time already.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from datetime import date, datetime
from typing import Any

from sqlalchemy import and_, func, inspect, select, text
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.orm import Session

from foundation.clock import utcnow
from scrm import hours
from scrm.assignment_models import AssignmentPool, AssignmentTurn, RepDayLoad
from scrm.models import Follower, Rep

LOCK_SPACE = 7_202_612  # next to the applier's shard locks (7_202_611); key 0 is the assignment lock
_LOCK = text("SELECT pg_advisory_xact_lock(:space, 0)")
_R, _D = Rep.__table__.c, RepDayLoad.__table__.c
_P, _T = AssignmentPool.__table__.c, AssignmentTurn.__table__.c

Candidates = Sequence[tuple[int, int | None]]


def lock(session: Session) -> None:
    """Serialise assignments until this transaction ends (PostgreSQL; SQLite's writer lock already does)."""
    if session.get_bind().dialect.name == "postgresql":
        session.connection().execute(_LOCK, {"space": LOCK_SPACE})


def pick(session: Session, candidates: Candidates, at: datetime, pool: str) -> int | None:
    """The eligible candidate whose turn it is in `pool`, charged to it; None when nobody is eligible."""
    lock(session)
    weights = _weights(session, candidates)
    ready = eligible(session, list(weights), at)
    if not ready:
        return None
    number, clock, turns = _pool_state(session, pool, ready)
    number += 1
    present = {rep: finish for rep, (finish, seen) in turns.items() if seen == number - 1}
    now = min(present.values()) if present else clock  # the pool's virtual time
    start = {rep: present[rep] if rep in present else max(turns.get(rep, (now, 0))[0], now) for rep in ready}
    best = min(ready, key=lambda rep: (start[rep] + 1.0 / weights[rep], rep))
    finish = {**start, best: start[best] + 1.0 / weights[best]}
    _save(session, pool, number, now, [(rep, finish[rep], number, int(rep == best)) for rep in ready])
    _count(session, best, at)
    return best


def charge(session: Session, rep_id: int, at: datetime, pool: str | None = None, weight: int | None = None) -> None:
    """Count a lead `rep_id` got without a pick: today's load, and its turn in `pool` when one is named (the
    others' turns are left as they are: this was not a pick among them)."""
    lock(session)
    _count(session, rep_id, at)
    weights = _weights(session, [(rep_id, weight)]) if pool is not None else {}
    if pool is not None and rep_id in weights:
        number, clock, turns = _pool_state(session, pool, [rep_id])
        finish, seen = turns.get(rep_id, (clock, 0))
        _save(session, pool, number, clock, [(rep_id, max(finish, clock) + 1.0 / weights[rep_id], seen, 1)])


def everyone(session: Session, exclude: Iterable[int] = ()) -> list[tuple[int, int | None]]:
    """Every active, confirmed rep as a candidate with its own weight (MQL leads, reassignment)."""
    query = select(_R.id).where(_R.active.is_(True), _R.confirmed.is_(True))
    left = set(exclude)
    return [(rep, None) for rep in session.connection().execute(query.order_by(_R.id)).scalars() if rep not in left]


def eligible(session: Session, rep_ids: list[int], at: datetime) -> list[int]:
    """Those of `rep_ids` who may take a lead at `at`, in id order (a snapshot unless the caller holds `lock`)."""
    if not rep_ids:
        return []
    day = hours.local_day(at)
    query = (
        select(_R.id, _R.hours, _R.daily_cap, _R.open_cap, func.coalesce(_D.assigned, 0))
        .select_from(Rep.__table__.outerjoin(RepDayLoad.__table__, and_(_D.rep_id == _R.id, _D.day == day)))
        .where(_R.id.in_(rep_ids), _R.active.is_(True), _R.confirmed.is_(True))
        .order_by(_R.id)
    )
    rows = [r for r in session.connection().execute(query) if hours.available(r.hours, at)]
    rows = [r for r in rows if r.daily_cap is None or r[4] < r.daily_cap]
    capped = [r.id for r in rows if r.open_cap is not None]
    held = open_leads(session, capped) if capped else {}
    return [r.id for r in rows if r.open_cap is None or held.get(r.id, 0) < r.open_cap]


def at_cap(session: Session, rep_id: int, at: datetime) -> bool:
    """Whether the rep has no room left today (daily cap) or now (open cap): team codes must stop listing them."""
    rep = session.connection().execute(select(_R.daily_cap, _R.open_cap).where(_R.id == rep_id)).first()
    if rep is None:
        return False
    if rep.daily_cap is not None and today(session, rep_id, at) >= rep.daily_cap:
        return True
    return rep.open_cap is not None and open_leads(session, [rep_id]).get(rep_id, 0) >= rep.open_cap


def today(session: Session, rep_id: int, at: datetime) -> int:
    """Leads the rep was given on the local day of `at`."""
    query = select(_D.assigned).where(_D.rep_id == rep_id, _D.day == hours.local_day(at))
    return int(session.connection().execute(query).scalar() or 0)


def open_leads(session: Session, rep_ids: list[int]) -> dict[int, int]:
    """Open leads per rep: the database's count, corrected by this session's unflushed owner/subscription changes
    (an applier batch writes its followers at its end)."""
    from scrm.reps import open_lead

    dirty = _unflushed(session)
    query = select(Follower.owner_id, func.count()).where(Follower.owner_id.in_(rep_ids), open_lead())
    if dirty:
        query = query.where(Follower.id.not_in([f.id for f in dirty]))
    counts: dict[int, int] = {rep: n for rep, n in session.connection().execute(query.group_by(Follower.owner_id))}
    wanted = set(rep_ids)
    for f in dirty:
        if f.owner_id in wanted and f.subscribed:
            counts[f.owner_id] = counts.get(f.owner_id, 0) + 1
    return counts


def _unflushed(session: Session) -> list[Follower]:
    out = []
    for obj in list(session.identity_map.values()):
        if isinstance(obj, Follower) and obj.id is not None:
            attrs = inspect(obj).attrs
            if attrs.owner_id.history.has_changes() or attrs.subscribed.history.has_changes():
                out.append(obj)
    return out


def _weights(session: Session, candidates: Candidates) -> dict[int, int]:
    """rep id → weight (≥ 1): the candidate's own, else the rep's; unknown reps dropped."""
    given = {int(rep): weight for rep, weight in candidates}
    if not given:
        return {}
    query = select(_R.id, _R.weight).where(_R.id.in_(list(given)))
    return {rep: max(1, int(given[rep] or own or 1)) for rep, own in session.connection().execute(query)}


def _pool_state(session: Session, pool: str, reps: list[int]) -> tuple[int, float, dict[int, tuple[float, int]]]:
    """(picks so far, virtual time, {rep: (finish, seen)}) of the pool, for `reps`."""
    conn = session.connection()
    row = conn.execute(select(_P.picks, _P.clock).where(_P.name == pool)).first()
    rows = conn.execute(select(_T.rep_id, _T.finish, _T.seen).where(_T.pool == pool, _T.rep_id.in_(reps)))
    turns = {rep: (float(finish), int(seen)) for rep, finish, seen in rows}
    return (int(row.picks), float(row.clock), turns) if row else (0, 0.0, turns)


def _save(session: Session, pool: str, number: int, clock: float, turns: list[tuple[int, float, int, int]]) -> None:
    """The pool's pick count and virtual time, and the turns (rep, finish, seen, leads added) in one executemany."""
    conn, now = session.connection(), utcnow()
    stmt = _insert(session, AssignmentPool)
    conn.execute(
        stmt.on_conflict_do_update(index_elements=["name"], set_={"picks": stmt.excluded.picks,
                                   "clock": stmt.excluded.clock, "updated_at": now}),
        {"name": pool, "picks": number, "clock": clock, "updated_at": now},
    )  # fmt: skip
    stmt = _insert(session, AssignmentTurn)
    done = {"finish": stmt.excluded.finish, "seen": stmt.excluded.seen, "picks": _T.picks + stmt.excluded.picks}
    rows = [{"pool": pool, "rep_id": r, "finish": f, "seen": seen, "picks": n} for r, f, seen, n in turns]
    conn.execute(stmt.on_conflict_do_update(index_elements=["pool", "rep_id"], set_=done), rows)


def _count(session: Session, rep: int, at: datetime) -> None:
    day: date = hours.local_day(at)
    stmt = _insert(session, RepDayLoad).values(rep_id=rep, day=day, assigned=1)
    stmt = stmt.on_conflict_do_update(index_elements=["rep_id", "day"], set_={"assigned": _D.assigned + 1})
    session.connection().execute(stmt)


def _sqlite(session: Session) -> bool:
    return session.get_bind().dialect.name == "sqlite"


def _insert(session: Session, model: Any) -> Any:
    return (sqlite if _sqlite(session) else postgresql).insert(model.__table__)
