"""Journey runs: a follower walking a playbook journey's steps, one transaction per stretch between waits.

`journey.start` creates the run (once per key) and executes steps until a `wait`, which schedules the next stretch
as a delayed outbox row (`journey.step`, `run_after` = now + wait, keyed `journey:<run id>:<step>` so it is queued
once). `do` steps run their actions through the rules engine (scrm.playbook.engine) in a `Quiet` context, so tags,
scores, stages, templates and notifications behave, are keyed and are audited exactly as when a rule does them.
`exit_if` is checked before every step; a journey no longer in the active playbook ends the run with a reason.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import DateTime, ForeignKey, Index, Integer, String, Text, insert, select
from sqlalchemy.orm import Mapped, Session, mapped_column

from foundation.clock import utcnow
from foundation.db import Base, BigId
from foundation.sql import insert_ignore
from scrm import outbox
from scrm.models import Activity, Follower
from scrm.playbook import store
from scrm.playbook.compiled import CompiledRule
from scrm.playbook.engine import ACTIONS, Quiet, Run
from scrm.playbook.grammar import Step

RUNNING, FINISHED, EXITED = "running", "finished", "exited"
STEP_TASK = "journey.step"


class JourneyRun(Base):
    """One follower in one journey; `step` is the index of the next step to execute."""

    __tablename__ = "journey_runs"
    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    follower_id: Mapped[int] = mapped_column(ForeignKey("followers.id"))
    journey: Mapped[str] = mapped_column(String(32))
    key: Mapped[str] = mapped_column(String(191), unique=True)
    step: Mapped[int] = mapped_column(Integer, default=0)
    state: Mapped[str] = mapped_column(String(16), default=RUNNING)
    started_at: Mapped[datetime] = mapped_column(DateTime, default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(DateTime, default=utcnow)
    reason: Mapped[str | None] = mapped_column(Text)

    __table_args__ = (Index("ix_journey_runs_follower", "follower_id"),)


@dataclass
class Outcome:
    """What a stretch did: the run, and outbox rows due now (to push after commit; delayed rows wait)."""

    run_id: int | None
    state: str | None = None
    outbox_ids: list[int] = field(default_factory=list)


def _note(session: Session, run: JourneyRun, kind: str, now: datetime, **data: Any) -> None:
    row = {"follower_id": run.follower_id, "kind": kind, "at": now, "interaction_id": None,
           "data": {"journey": run.journey, "run": run.id, **data}}  # fmt: skip
    session.execute(insert(Activity.__table__), [row])


def start(session: Session, openid: str, journey: str, key: str, now: datetime | None = None) -> Outcome | None:
    """Create the run for `key` and execute its first stretch; None when the follower is unknown. A key seen
    before changes nothing (the first start did everything in its own transaction)."""
    now = now or utcnow()
    follower = session.scalar(select(Follower).where(Follower.openid == openid))
    if follower is None:
        return None
    values = {"follower_id": follower.id, "journey": journey, "key": key, "step": 0, "state": RUNNING,
              "started_at": now, "updated_at": now}  # fmt: skip
    run_id = session.scalar(insert_ignore(session, JourneyRun, ["key"]).values(**values).returning(JourneyRun.id))
    if run_id is None:
        existing = session.scalar(select(JourneyRun.id).where(JourneyRun.key == key))
        return Outcome(existing)
    run = session.get(JourneyRun, run_id)
    assert run is not None
    _note(session, run, "journey_started", now, key=key)
    return advance(session, run, follower, now)


def step(session: Session, run_id: int, index: int, now: datetime | None = None) -> Outcome:
    """Continue a run at step `index` (after a wait); a run that ended or moved on already is left alone."""
    run = session.get(JourneyRun, run_id)
    if run is None or run.state != RUNNING or run.step != index:
        return Outcome(run_id, run.state if run else None)
    follower = session.get(Follower, run.follower_id)
    assert follower is not None
    return advance(session, run, follower, now or utcnow())


def _end(session: Session, run: JourneyRun, state: str, reason: str, now: datetime) -> None:
    run.state, run.reason, run.updated_at = state, reason, now
    _note(session, run, "journey_finished", now, state=state, reason=reason, step=run.step)


def advance(session: Session, run: JourneyRun, follower: Follower, now: datetime) -> Outcome:
    """Execute steps from `run.step` until a wait (scheduled as a delayed `journey.step` row) or the end."""
    out = Outcome(run.id)
    book = store.active(session)
    journey = book.book.journeys.get(run.journey) if book else None
    if book is None or journey is None:
        _end(session, run, EXITED, f"journey {run.journey!r} is not in the active playbook", now)
        out.state = run.state
        return out
    ctx = Quiet(session, follower)
    while run.step < len(journey.steps):
        index = run.step
        engine = Run(book, ctx, scope=f"{run.id}:{index}", now=now)
        engine.lock()
        if journey.exit_if is not None and engine.holds(journey.exit_if):
            _end(session, run, EXITED, "exit_if", now)
            break
        spec = journey.steps[index]
        run.step, run.updated_at = index + 1, now
        if spec.wait is not None:
            due = now + timedelta(seconds=spec.wait)
            args = {"run_id": run.id, "index": index + 1}
            outbox.add(session, STEP_TASK, args, key=f"journey:{run.id}:{index + 1}", run_after=due)
            _note(session, run, "journey_step", now, step=index, wait=spec.wait, until=due.isoformat() + "Z")
            out.state, out.outbox_ids = RUNNING, ctx.outbox_ids
            return out
        _do(engine, run, index, spec)
    else:
        _end(session, run, FINISHED, "completed", now)
    out.state, out.outbox_ids = run.state, ctx.outbox_ids
    return out


def _do(engine: Run, run: JourneyRun, index: int, spec: Step) -> None:
    """A `do` step: its condition against the follower now, then its actions through the engine's own code."""
    if not engine.holds(spec.if_):
        _note(engine.session, run, "journey_step", engine.now, step=index, skipped=True)
        return
    _note(engine.session, run, "journey_step", engine.now, step=index, actions=[a.verb for a in spec.do])
    templates = sum(1 for a in spec.do if a.verb == "send_template")
    rule = CompiledRule(f"journey:{run.journey}", -1, "journey", lambda facts: None, spec.if_, None, templates, False)  # type: ignore[arg-type]
    values = {"openid": engine.follower.openid}
    with engine.session.no_autoflush:
        for i, action in enumerate(spec.do):
            ACTIONS[action.verb](engine, rule, i, action, values)
    engine.drain()  # signals the actions gave (tag_added...) run the playbook's rules; timeline rows written
