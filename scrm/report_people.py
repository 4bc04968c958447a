"""The funnel (stages reached, conversion, median time between stages) and the rep leaderboard (leads, MQLs,
median time to first follow-up), from the timeline's history rather than from today's snapshot.

- **Funnel.** The cohort is the followers created in the window (a rep: its own leads). A follower reached a stage
  if it is at or past it now, or a `stage_changed` entry ever moved it there or past it (a demoted lead still
  counts). The time between two consecutive stages is, per follower who reached both, the first `stage_changed`
  into the later one minus the first into the earlier one (the first stage's time is the follower's creation).
- **Reps.** A lead is an `owner_assigned` entry in the window (its `rep`; a lead counted once per rep, at its first
  assignment in the window). An MQL is such a lead that reached `mql` (as the funnel counts it). A follow-up is what
  the rep pages record and the lead pool reads as "the owner acted": the first `rep_action` of that rep on that lead
  at or after the assignment (followed up with or without a note, a stage set, a tag added or removed).
"""

from __future__ import annotations

from typing import Any

from sqlalchemy import and_, case, exists, func, literal, select, union_all
from sqlalchemy.orm import Session

from scrm import rep_view
from scrm.models import Activity, Follower, Rep
from scrm.rep_actions import KIND as REP_ACTION
from scrm.report_sql import Window, medians, ratio, seconds_between, within

_A, _F = Activity.__table__.c, Follower.__table__.c
STAGE_CHANGED, ASSIGNED = "stage_changed", "owner_assigned"
MQL = "mql"


def _index(column: Any, order: list[str]) -> Any:
    """A stage name's position in the stage order (-1 for a stage the playbook does not know)."""
    return case({name: i for i, name in enumerate(order)}, value=column, else_=-1)


def _to() -> Any:
    return _A.data["to"].as_string()


def _cohort(win: Window, rep: int | None) -> list[Any]:
    where = [within(_F.created_at, win), _F.merged_into.is_(None)]
    return where + ([_F.owner_id == rep] if rep is not None else [])


def _reached(session: Session, order: list[str], where: list[Any]) -> list[int]:
    """How many of the cohort reached each stage: at or past it now, or ever moved at or past it."""
    moved = and_(_A.follower_id == _F.id, _A.kind == STAGE_CHANGED)
    per = (
        select(_index(_F.stage, order).label("now"), func.max(_index(_to(), order)).label("ever"))
        .select_from(Follower)
        .outerjoin(Activity, moved)
        .where(*where)
        .group_by(_F.id, _F.stage)
        .subquery()
    )
    top = [0] * len(order)
    for now, ever, n in session.execute(select(per.c.now, per.c.ever, func.count()).group_by(per.c.now, per.c.ever)):
        top[max(now, ever if ever is not None else -1, 0)] += n
    return [sum(top[i:]) for i in range(len(order))]


def _stage_times(session: Session, order: list[str], where: list[Any]) -> dict[int, float]:
    """{stage index: median seconds from the previous stage}, over followers who reached both."""
    entered = (
        select(_A.follower_id.label("fid"), _to().label("stage"), _A.at.label("at"))
        .join(Follower, Follower.id == _A.follower_id)
        .where(_A.kind == STAGE_CHANGED, *where)
    )
    born = select(_F.id.label("fid"), literal(order[0]).label("stage"), _F.created_at.label("at")).where(*where)
    both = union_all(entered, born).subquery()
    firsts = select(both.c.fid, both.c.stage, func.min(both.c.at).label("at")).group_by(both.c.fid, both.c.stage)
    firsts = firsts.cte("firsts")
    a, b = firsts.alias("a"), firsts.alias("b")
    step = _index(b.c.stage, order)
    pairs = (
        select(step.label("g"), seconds_between(session, a.c.at, b.c.at).label("secs"))
        .select_from(a.join(b, and_(a.c.fid == b.c.fid, step == _index(a.c.stage, order) + 1)))
        .where(b.c.at >= a.c.at, step > 0)
        .subquery()
    )
    return medians(session, pairs)


def funnel(session: Session, win: Window, rep: int | None = None, **_: Any) -> dict[str, Any]:
    order = rep_view.stage_names(session)
    where = _cohort(win, rep)
    reached = _reached(session, order, where)
    times = _stage_times(session, order, where)
    rows = []
    for i, stage in enumerate(order):
        rows.append({
            "stage": stage,
            "reached": reached[i],
            "conversion": ratio(reached[i], reached[0]),
            "from_previous": ratio(reached[i], reached[i - 1]) if i else None,
            "median_seconds_from_previous": _round(times.get(i)),
        })  # fmt: skip
    return {"report": "funnel", **win.describe(), "cohort": reached[0] if reached else 0, "stages": order,
            "rows": rows}  # fmt: skip


def _round(value: float | None) -> float | None:
    return round(value, 1) if value is not None else None


# --- reps --------------------------------------------------------------------------------------------------------


def _leads(win: Window, rep: int | None) -> Any:
    """(lead, rep, first assignment in the window) for every `owner_assigned` entry in it."""
    to_rep = _A.data["rep"].as_integer()
    query = select(_A.follower_id.label("fid"), to_rep.label("rep"), func.min(_A.at).label("at"))
    query = query.where(_A.kind == ASSIGNED, within(_A.at, win))
    if rep is not None:
        query = query.where(to_rep == rep)
    return query.group_by(_A.follower_id, to_rep).cte("leads")


def _followed(leads: Any) -> Any:
    """Each lead with the first `rep_action` of its rep on it at or after the assignment (NULL if none yet)."""
    act = Activity.__table__.alias("act")
    by_rep = and_(act.c.follower_id == leads.c.fid, act.c.kind == REP_ACTION, act.c.at >= leads.c.at,
                  act.c.data["rep"].as_integer() == leads.c.rep)  # fmt: skip
    return (
        select(leads.c.fid, leads.c.rep, leads.c.at, func.min(act.c.at).label("fu"))
        .select_from(leads.outerjoin(act, by_rep))
        .group_by(leads.c.fid, leads.c.rep, leads.c.at)
        .cte("followed")
    )


def _mql(order: list[str]) -> Any:
    """A lead is an MQL when it is at or past `mql` now, or was ever moved there or past it."""
    if MQL not in order:
        return literal(False)
    past = order[order.index(MQL) :]
    moved = exists().where(_A.follower_id == _F.id, _A.kind == STAGE_CHANGED, _to().in_(past))
    return _F.stage.in_(past) | moved


def reps(session: Session, win: Window, rep: int | None = None, **_: Any) -> dict[str, Any]:
    order = rep_view.stage_names(session)
    followed = _followed(_leads(win, rep))
    mql = func.sum(case((_mql(order), 1), else_=0))
    counts = (
        select(followed.c.rep, func.count(), mql, func.count(followed.c.fu))
        .join(Follower, Follower.id == followed.c.fid)
        .group_by(followed.c.rep)
    )
    stats = {r: (n, int(m or 0), f) for r, n, m, f in session.execute(counts)}
    waits = select(followed.c.rep.label("g"), seconds_between(session, followed.c.at, followed.c.fu).label("secs"))
    times = medians(session, waits.where(followed.c.fu.is_not(None)).subquery())
    rows = [
        {"rep_id": rid, "name": name or userid, "leads": stats.get(rid, (0, 0, 0))[0],
         "mqls": stats.get(rid, (0, 0, 0))[1], "followed_up": stats.get(rid, (0, 0, 0))[2],
         "median_seconds_to_follow_up": _round(times.get(rid))}
        for rid, name, userid in _named(session, rep, set(stats))
    ]  # fmt: skip
    rows.sort(key=lambda r: (-r["leads"], -r["mqls"], r["name"], r["rep_id"]))
    return {"report": "reps", **win.describe(), "rows": rows}


def _named(session: Session, rep: int | None, seen: set[int]) -> list[tuple[int, str, str]]:
    """Every active rep (and any inactive one with leads in the window); a rep token: only itself."""
    query = select(Rep.id, Rep.name, Rep.userid)
    if rep is not None:
        return list(session.execute(query.where(Rep.id == rep)))
    return list(session.execute(query.where(Rep.active.is_(True) | Rep.id.in_(seen or {-1}))))
