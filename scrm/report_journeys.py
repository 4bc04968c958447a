"""The journeys report: per journey, version and step, how many runs entered the step, are waiting at it, went
each way, reached the goal or exited there; for runs started in the window (a rep: runs of its own leads).

The numbers are the journeys' own (scrm.journey_stats, `GET /api/v1/journeys/<name>`): a step's row is written
when the step completes, so `entered` = its ways + the runs waiting there. Here the same two grouped statements
are filtered by the window and the scope, then laid out by journey_stats' step walker.
"""

from __future__ import annotations

from collections import defaultdict
from typing import Any

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from scrm import journey_defs, journey_stats
from scrm.journey_models import CONVERTED, EXITED, FINISHED, STATES, JourneyRun, JourneyStep
from scrm.models import Follower
from scrm.report_sql import Window, ratio, within

_R, _S = JourneyRun.__table__.c, JourneyStep.__table__.c


def _scoped(query: Any, win: Window, rep: int | None) -> Any:
    query = query.where(within(_R.started_at, win))
    if rep is not None:
        query = query.join(Follower, Follower.id == _R.follower_id).where(Follower.owner_id == rep)
    return query


def _runs(session: Session, win: Window, rep: int | None) -> dict[str, list[Any]]:
    query = select(_R.journey, _R.version, _R.state, _R.position, func.count())
    query = _scoped(query.select_from(JourneyRun), win, rep).group_by(_R.journey, _R.version, _R.state, _R.position)
    out: dict[str, list[Any]] = defaultdict(list)
    for name, *rest in session.execute(query):
        out[name].append(tuple(rest))
    return out


def _done(session: Session, win: Window, rep: int | None) -> dict[str, dict]:
    joined = JourneyStep.__table__.join(JourneyRun.__table__, _S.run_id == _R.id)
    query = select(_R.journey, _R.version, _S.path, _S.outcome, func.count()).select_from(joined)
    query = _scoped(query, win, rep).group_by(_R.journey, _R.version, _S.path, _S.outcome)
    out: dict[str, dict] = defaultdict(lambda: defaultdict(dict))
    for name, version, path, outcome, n in session.execute(query):
        out[name][(version, path)][outcome] = n
    return out


def _version(session: Session, name: str, v: int | None, done: dict, runs: list[Any]) -> dict[str, Any]:
    counts = {s: 0 for s in STATES}
    for rv, state, _, n in runs:
        if rv == v:
            counts[state] = counts.get(state, 0) + n
    entered = sum(counts.values())
    journey = journey_defs.definition(session, name, v) if v is not None else None
    steps = [
        {"step": s["path"], "label": f"{s['path']} {s['kind']}", "entered": s["entered"], "waiting": s["waiting"],
         "done": sum(s["ways"].values()), "ways": s["ways"], "converted": s["converted_here"],
         "exited": s["exited_here"]}
        for s in journey_stats._step_rows(journey, v, done, runs)
    ]  # fmt: skip
    return {"journey": name, "version": v, "entered": entered, "finished": counts[FINISHED],
            "converted": counts[CONVERTED], "exited": counts[EXITED], "runs": counts,
            "completion": ratio(counts[FINISHED] + counts[CONVERTED], entered),
            "conversion": ratio(counts[CONVERTED], entered), "steps": steps}  # fmt: skip


def journeys(session: Session, win: Window, rep: int | None = None, **_: Any) -> dict[str, Any]:
    runs, done = _runs(session, win, rep), _done(session, win, rep)
    items, rows = [], []
    for name in sorted(set(runs) | set(done)):
        found = {r[0] for r in runs[name]} | {v for v, _ in done[name]}
        for v in sorted(found, key=lambda v: (v is None, v or 0)):
            item = _version(session, name, v, done[name], runs[name])
            items.append(item)
            rows += [{"journey": name, "version": v, **{k: s[k] for k in ("step", "entered", "waiting", "done",
                      "converted", "exited")}} for s in item["steps"]]  # fmt: skip
    return {"report": "journeys", **win.describe(), "journeys": items, "rows": rows}
