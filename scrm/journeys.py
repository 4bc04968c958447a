"""Journey runs: a follower walking one version of a journey, a batch of due runs per transaction.

`start` creates the run (once per key, and as the journey's `reentry` allows) on the journey's current version and
executes its first stretch. A wait sets the run's `due_at`; `run_due` (the step runner: the scheduler's
`journey.tick`, or `flask journey run`) takes the runs that are due, oldest first, locks them (PostgreSQL: SKIP LOCKED,
so runners share the work; SQLite: one writer), executes each until its next wait, and writes one `journey_steps` row
per executed step with the step's effects. The rows are unique per (run, step): a step two runners or a retry
executed twice cannot commit twice (the second transaction fails whole, effects included), and a runner killed
mid-batch commits nothing of it. `do` steps act through the rules engine (scrm.playbook.engine) in a `Quiet` context,
so tags, scores, stages, templates and notices behave, are keyed and audited exactly as when a rule does them.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import func, insert, select
from sqlalchemy.orm import Session, defer

from foundation.clock import utcnow
from foundation.sql import insert_ignore
from scrm import journey_defs, journey_rows
from scrm.journey_models import CONVERTED, EXITED, FINISHED, RUNNING, JourneyRun, JourneyStep
from scrm.journey_rows import RunRow
from scrm.journey_stepper import Stepper
from scrm.models import Activity, Follower
from scrm.playbook import store

STEP_TASK = "journey.step"  # delayed outbox rows of runs started before 0019: they only make the run due
__all__ = ["CONVERTED", "EXITED", "FINISHED", "RUNNING", "STEP_TASK", "JourneyRun", "Outcome", "run_due", "start"]


@dataclass
class Outcome:
    """What a transaction did: the run (start/step), steps executed, and outbox rows to push after commit."""

    run_id: int | None
    state: str | None = None
    outbox_ids: list[int] = field(default_factory=list)
    runs: int = 0
    steps: int = 0


def _allowed(session: Session, follower_id: int, name: str, reentry: Any, now: datetime) -> bool:
    """Re-entry: `once` ever, `always`, or at most once per N days (the follower's last run of this journey)."""
    if reentry == "always":
        return True
    last = session.scalar(
        select(func.max(JourneyRun.started_at)).where(JourneyRun.follower_id == follower_id, JourneyRun.journey == name)
    )
    if last is None:
        return True
    return reentry != "once" and now - last >= timedelta(days=reentry.days)


def start(
    session: Session,
    openid: str,
    journey: str,
    key: str,
    now: datetime | None = None,
    context: dict[str, Any] | None = None,
    rules: Any = None,
) -> Outcome | None:
    """Create the run for `key` on the journey's current version and execute its first stretch; None when the
    follower is unknown. A key seen before, or a start re-entry forbids, changes nothing."""
    now = now or utcnow()
    follower = session.scalar(select(Follower).where(Follower.openid == openid))
    if follower is None:
        return None
    existing = session.scalar(select(JourneyRun.id).where(JourneyRun.key == key))
    book = store.active(session)
    spec = book.book.journeys.get(journey) if book else None
    if existing is not None or spec is None:
        return Outcome(existing)
    stepper = Stepper(session, book, now, rules)
    stepper.lock(follower)
    if not _allowed(session, follower.id, journey, spec.reentry, now):
        return Outcome(None, "refused")
    version = journey_defs.ensure(session, journey, spec)
    values = {"follower_id": follower.id, "journey": journey, "key": key, "step": 0, "state": RUNNING,
              "started_at": now, "updated_at": now, "version": version, "position": "0", "due_at": now,
              "context": context}  # fmt: skip
    run_id = session.scalar(insert_ignore(session, JourneyRun, ["key"], "id"), values)
    run = journey_rows.one(session, run_id) if run_id is not None else None
    if run is None:
        return Outcome(None)
    stepper.prepare([run], [follower.id])
    note(session, run, "journey_started", now, key=key, version=version)
    stepper.advance(run, follower)
    return stepper.finish(Outcome(run.id, run.state))


def run_due(session: Session, now: datetime | None = None, limit: int = 500, rules: Any = None) -> Outcome:
    """Execute the due runs (at most `limit`, oldest due first) in the caller's transaction."""
    now = now or utcnow()
    runs = journey_rows.due(session, now, limit)
    if not runs:
        return Outcome(None)
    ids, followers = locked_followers(session, runs)
    stepper = Stepper(session, store.active(session), now, rules)
    stepper.prepare(runs, ids)
    for run in runs:
        stepper.advance(run, followers[run.follower_id])
    return stepper.finish(Outcome(None, runs=len(runs)))


def locked_followers(session: Session, runs: list[RunRow]) -> tuple[list[int], dict[int, Follower]]:
    """The runs' follower ids (sorted) and followers, locked in id order on PostgreSQL, so runners, rechecks and
    appliers never deadlock."""
    ids = sorted({r.follower_id for r in runs})
    query = select(Follower).options(defer(Follower.profile)).where(Follower.id.in_(ids)).order_by(Follower.id)
    if session.get_bind().dialect.name == "postgresql":
        query = query.with_for_update(key_share=True)
    return ids, {f.id: f for f in session.scalars(query)}


def step(session: Session, run_id: int, index: int, now: datetime | None = None, rules: Any = None) -> Outcome:
    """A delayed `journey.step` row of a run started before 0019: the run is made due and executed now."""
    now = now or utcnow()
    run = journey_rows.one(session, run_id)
    if run is None or run.state != RUNNING or (run.version is None and run.step != index):
        return Outcome(run_id, run.state if run else None)
    run.due_at = min(run.due_at or now, now)
    follower = session.get(Follower, run.follower_id)
    assert follower is not None
    stepper = Stepper(session, store.active(session), now, rules)
    stepper.lock(follower)
    stepper.prepare([run], [follower.id])
    stepper.advance(run, follower)
    return stepper.finish(Outcome(run.id, run.state))


def note(session: Session, run: RunRow, kind: str, now: datetime, **data: Any) -> None:
    """A timeline entry about the run (started, a step, finished)."""
    row = {"follower_id": run.follower_id, "kind": kind, "at": now, "interaction_id": None,
           "data": {"journey": run.journey, "run": run.id, **data}}  # fmt: skip
    session.execute(insert(Activity.__table__), [row])


def executed(session: Session, run_id: int) -> list[tuple[str, str]]:
    """(path, outcome) of the steps a run executed, in order."""
    query = select(JourneyStep.path, JourneyStep.outcome).where(JourneyStep.run_id == run_id).order_by(JourneyStep.id)
    return [(p, o) for p, o in session.execute(query)]
