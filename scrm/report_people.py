"""The funnel (stages reached, conversion, median time between stages) and the rep leaderboard (leads, MQLs,
median time to first follow-up), from the timeline's history rather than from today's snapshot: read from what
scrm.report_marks stores as each entry is written (first entry per stage, first follow-up per assignment), which
holds exactly what these definitions derive from the timeline.

- **Funnel.** The cohort is the followers created in the window (a rep: its own leads). A follower reached a stage
  if it is at or past it now, or a `stage_changed` entry ever moved it there or past it (a demoted lead still
  counts). The time between two consecutive stages is, per follower who reached both, the first `stage_changed`
  into the later one minus the first into the earlier one (the first stage's time is the follower's creation).
- **Reps.** A lead is an `owner_assigned` entry in the window (its `rep`; a lead counted once per rep, at its first
  assignment in the window). An MQL is such a lead whose stage is `mql` or later now. A follow-up is what
  the rep pages record and the lead pool reads as "the owner acted": the first `rep_action` of that rep on that lead
  at or after the assignment (followed up with or without a note, a stage set, a tag added or removed).
"""

from __future__ import annotations

from typing import Any

from sqlalchemy import case, func, literal, select, true, union_all
from sqlalchemy.orm import Session

from scrm import rep_view
from scrm.models import Follower, Rep
from scrm.report_marks import LeadAssignment, StageEntry
from scrm.report_sql import Window, dialect, greatest, medians, ratio, seconds_between, within

_F, _SE, _LA = Follower.__table__.c, StageEntry.__table__.c, LeadAssignment.__table__.c
MQL = "mql"


def _index(column: Any, order: list[str]) -> Any:
    """A stage name's position in the stage order (-1 for a stage the playbook does not know)."""
    return case({name: i for i, name in enumerate(order)}, value=column, else_=-1)


def _cohort(win: Window, rep: int | None) -> list[Any]:
    where = [within(_F.created_at, win), _F.merged_into.is_(None)]
    return where + ([_F.owner_id == rep] if rep is not None else [])


def _marks(order: list[str]) -> list[Any]:
    """Over a follower's stored first entries (scrm.report_marks: at most one row per stage): the highest stage it
    was ever moved to, and when it first entered each stage after the first."""
    firsts = [func.max(case((_SE.stage == name, _SE.at))).label(f"t{i}") for i, name in enumerate(order) if i]
    return [func.max(_index(_SE.stage, order)).label("ever"), *firsts]


def _per_follower(order: list[str], win: Window, rep: int | None, pg: bool) -> Any:
    """One row per cohort follower: its stage index now, the highest it was ever moved to, and when it first
    entered each stage (t0 = its creation). The whole account: the cohort's entries are one range of
    `ix_stage_entries_born` (each carries its follower's creation), grouped, then joined to the cohort. A rep's
    cohort is small: each of its followers' entries by primary key (on PostgreSQL a LATERAL subquery, or the planner
    hashes every stored entry for a 180-day window)."""
    now, t0 = _index(_F.stage, order).label("now"), _F.created_at.label("t0")
    if rep is not None and pg:
        marks = select(*_marks(order)).where(_SE.follower_id == _F.id).lateral("marks")
        query = select(now, t0, *marks.c).select_from(Follower.__table__.join(marks, true()))
        return query.where(*_cohort(win, rep)).cte("per")
    if rep is not None:
        return (
            select(now, t0, *_marks(order))
            .select_from(Follower)
            .outerjoin(StageEntry, _SE.follower_id == _F.id)
            .where(*_cohort(win, rep))
            .group_by(_F.id, _F.stage, _F.created_at)
            .cte("per")
        )
    query = select(_SE.follower_id.label("fid"), *_marks(order)).where(within(_SE.born, win))
    entries = query.group_by(_SE.follower_id).subquery("entries")
    return (
        select(now, t0, *[c for c in entries.c if c.name != "fid"])
        .select_from(Follower)
        .outerjoin(entries, entries.c.fid == _F.id)
        .where(*_cohort(win, rep))
        .cte("per")
    )


def _gap(session: Session, per: Any, i: int) -> Any:
    """Seconds from first entering stage i-1 to first entering stage i (NULL unless both, in that order)."""
    earlier, later = per.c[f"t{i - 1}"], per.c[f"t{i}"]
    return case((later >= earlier, seconds_between(session, earlier, later)))


def _funnel_numbers(session: Session, order: list[str], win: Window, rep: int | None) -> tuple[list[int], dict]:
    """(followers that reached each stage, {stage index: median seconds from the previous one})."""
    pg = dialect(session) == "postgresql"
    per = _per_follower(order, win, rep, pg)
    top = greatest(session, per.c.now, func.coalesce(per.c.ever, -1))
    reached = [func.coalesce(func.sum(case((top >= i, 1), else_=0)), 0) for i in range(len(order))]
    reached[0] = func.count()
    gaps = [func.percentile_cont(0.5).within_group(_gap(session, per, i)) for i in range(1, len(order))] if pg else []
    row = session.execute(select(*reached, *gaps)).one()
    counts = [int(n) for n in row[: len(order)]]
    if pg:
        return counts, {i: float(m) for i, m in enumerate(row[len(order) :], 1) if m is not None}
    if len(order) < 2:
        return counts, {}
    each = [select(literal(i).label("g"), _gap(session, per, i).label("secs")) for i in range(1, len(order))]
    pairs = union_all(*each).subquery()
    return counts, medians(session, select(pairs).where(pairs.c.secs.is_not(None)).subquery())


def funnel(session: Session, win: Window, rep: int | None = None, **_: Any) -> dict[str, Any]:
    order = rep_view.stage_names(session)
    reached, times = _funnel_numbers(session, order, win, rep)
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


def _followed(win: Window, rep: int | None) -> Any:
    """(lead, rep, first assignment in the window, first follow-up after it or NULL, stage now) from the stored
    assignments (scrm.report_marks; every row of a lead has its one stage). A later assignment's follow-up is
    never earlier than an earlier one's (fewer actions follow it), so the group's earliest follow-up is the one
    of its first assignment."""
    query = select(_LA.follower_id.label("fid"), _LA.rep_id.label("rep"), func.min(_LA.at).label("at"),
                   func.min(_LA.followed_up_at).label("fu"), func.min(_LA.stage).label("stage"))  # fmt: skip
    query = query.where(within(_LA.at, win))
    if rep is not None:
        query = query.where(_LA.rep_id == rep)
    return query.group_by(_LA.follower_id, _LA.rep_id).cte("followed")


def _mql(order: list[str], stage: Any) -> Any:
    """A lead is an MQL when its stage is `mql` or later now (the assignment row's copy of the follower's stage:
    a history look-up per lead, or even a look-up of each lead's row, cost more than the rest of the report)."""
    if MQL not in order:
        return literal(False)
    return stage.in_(order[order.index(MQL) :])


def reps(session: Session, win: Window, rep: int | None = None, **_: Any) -> dict[str, Any]:
    order = rep_view.stage_names(session)
    followed = _followed(win, rep)
    wait = seconds_between(session, followed.c.at, followed.c.fu)
    pg = dialect(session) == "postgresql"
    median = [func.percentile_cont(0.5).within_group(wait)] if pg else []
    counts = (
        select(followed.c.rep, func.count(), func.sum(case((_mql(order, followed.c.stage), 1), else_=0)),
               func.count(followed.c.fu), *median)
        .group_by(followed.c.rep)
    )  # fmt: skip
    stats = {r[0]: (r[1], int(r[2] or 0), r[3], r[4] if pg else None) for r in session.execute(counts)}
    if not pg:
        waits = select(followed.c.rep.label("g"), wait.label("secs")).where(wait.is_not(None))
        times = medians(session, waits.subquery())
        stats = {r: (*v[:3], times.get(r)) for r, v in stats.items()}
    rows = []
    for rid, name, userid in _named(session, rep, set(stats)):
        leads, mqls, done, secs = stats.get(rid, (0, 0, 0, None))
        rows.append({"rep_id": rid, "name": name or userid, "leads": leads, "mqls": mqls, "followed_up": done,
                     "median_seconds_to_follow_up": _round(float(secs) if secs is not None else None)})  # fmt: skip
    rows.sort(key=lambda r: (-r["leads"], -r["mqls"], r["name"], r["rep_id"]))
    return {"report": "reps", **win.describe(), "rows": rows}


def _named(session: Session, rep: int | None, seen: set[int]) -> list[tuple[int, str, str]]:
    """Every active rep (and any inactive one with leads in the window); a rep token: only itself."""
    query = select(Rep.id, Rep.name, Rep.userid)
    if rep is not None:
        return list(session.execute(query.where(Rep.id == rep)))
    return list(session.execute(query.where(Rep.active.is_(True) | Rep.id.in_(seen or {-1}))))
