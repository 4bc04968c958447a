"""The journeys report: per journey and step, how many runs entered, are waiting there, went past it, reached
the goal, exited; for runs started in the window (a rep: runs of its own leads).

Read from `journey_runs` (`step` is the index of the next step to execute, so a running run waits at `step - 1`
and has gone past every step before it), one grouped statement.
"""

from __future__ import annotations

from typing import Any

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from scrm.journeys import EXITED, FINISHED, RUNNING, JourneyRun
from scrm.models import Follower
from scrm.report_sql import Window, ratio, within

_R = JourneyRun.__table__.c


def _counts(session: Session, win: Window, rep: int | None) -> list[tuple[str, int, str, int]]:
    query = select(_R.journey, _R.step, _R.state, func.count()).where(within(_R.started_at, win))
    if rep is not None:
        query = query.join(Follower, Follower.id == _R.follower_id).where(Follower.owner_id == rep)
    return list(session.execute(query.group_by(_R.journey, _R.step, _R.state)))


def _steps(runs: list[tuple[int, str, int]]) -> list[dict[str, Any]]:
    """Per step index: entered (reached it), waiting (running, stopped there), done (went past it), exited there."""
    last = max((step for step, _, _ in runs), default=0)
    out = []
    for i in range(max(last, 1)):
        entered = sum(n for step, _, n in runs if step > i)
        waiting = sum(n for step, state, n in runs if state == RUNNING and step - 1 == i)
        exited = sum(n for step, state, n in runs if state == EXITED and step - 1 == i)
        done = sum(n for step, _, n in runs if step > i + 1) + sum(
            n for step, state, n in runs if state == FINISHED and step - 1 == i
        )
        out.append({"step": i, "entered": entered, "waiting": waiting, "done": done, "exited": exited})
    return out


def journeys(session: Session, win: Window, rep: int | None = None, **_: Any) -> dict[str, Any]:
    by_journey: dict[str, list[tuple[int, str, int]]] = {}
    for name, step, state, n in _counts(session, win, rep):
        by_journey.setdefault(name, []).append((step, state, n))
    items, rows = [], []
    for name in sorted(by_journey):
        runs = by_journey[name]
        started = sum(n for _, _, n in runs)
        finished = sum(n for _, state, n in runs if state == FINISHED)
        steps = _steps(runs)
        items.append({"journey": name, "version": None, "entered": started, "finished": finished,
                      "exited": sum(n for _, s, n in runs if s == EXITED), "converted": None,
                      "completion": ratio(finished, started), "steps": steps})  # fmt: skip
        rows += [{"journey": name, "version": "", "converted": "", **s} for s in steps]
    return {"report": "journeys", **win.describe(), "journeys": items, "rows": rows}
