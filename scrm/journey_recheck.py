"""Goals and exits of waiting runs: a run checks its goal, `exit_if` and `exit_on` when it wakes (before each step),
so a run waiting three days would count as waiting although its follower reached the goal an hour in. `recheck`
finds waiting runs whose follower changed since the run last looked (a timeline entry after the run's
`updated_at`: a tag, a stage, a score, an owner; an unsubscribe; a handover) and checks them now: a run whose goal
holds converts, one whose exit applies exits, at the step it waits at; any other keeps waiting, its wait untouched,
and is marked as looked at (`updated_at`), so it is picked again only when its follower changes again.

No step executes here (no `journey_steps` row, no action): a recheck ends runs or leaves them as they were. It
scans the waiting runs (the due index's range `due_at > now`) with three indexed EXISTS each, so the scheduler
calls it at most every `EVERY` per process, not every tick.
"""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import exists, or_, select
from sqlalchemy.orm import Session

from foundation.clock import utcnow
from scrm.handover_models import Transfer
from scrm.journey_models import RUNNING, JourneyRun
from scrm.journey_rows import RunRow, columns, locked
from scrm.journey_stepper import Stepper
from scrm.journeys import Outcome, locked_followers
from scrm.models import Activity, Follower
from scrm.playbook import store

EVERY = timedelta(seconds=60)
_R = JourneyRun.__table__.c
_A = Activity.__table__.c
_F = Follower.__table__.c
_T = Transfer.__table__.c
_CHANGED = or_(
    exists().where(_A.follower_id == _R.follower_id, _A.at > _R.updated_at),
    exists().where(_F.id == _R.follower_id, _F.unsubscribed_at > _R.updated_at),
    exists().where(_T.follower_id == _R.follower_id, _T.created_at > _R.updated_at),
)


def changed(session: Session, now: datetime, limit: int) -> list[RunRow]:
    """Up to `limit` waiting runs whose follower changed since they last looked, locked (PostgreSQL: SKIP LOCKED)."""
    query = select(*columns()).where(_R.state == RUNNING, _R.due_at > now, _CHANGED).order_by(_R.id).limit(limit)
    return locked(session, query)


def recheck(session: Session, now: datetime | None = None, limit: int = 500, rules: Any = None) -> dict[str, int]:
    """Check the goal and exits of one batch of changed waiting runs, in the caller's transaction."""
    now = now or utcnow()
    runs = changed(session, now, limit)
    if not runs:
        return {"checked": 0, "ended": 0}
    ids, followers = locked_followers(session, runs)
    stepper = Stepper(session, store.active(session), now, rules)
    stepper.prepare(runs, ids)
    ended = sum(1 for run in runs if stepper.recheck(run, followers[run.follower_id]))
    stepper.finish(Outcome(None, runs=len(runs)))
    return {"checked": len(runs), "ended": ended}
