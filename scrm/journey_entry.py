"""Entry by segment: the members of a journey's saved segment (`entry: {segment: NAME}`) who may enter, as the
journey's `reentry` says, get a run each: one query for the candidates, one statement for the runs. The step runner
executes their first stretch like any due run."""

from __future__ import annotations

import logging
from datetime import datetime, timedelta

from sqlalchemy import and_, exists, insert, select
from sqlalchemy.orm import Session

from foundation.clock import utcnow
from foundation.sql import insert_ignore
from scrm import journey_defs, segments
from scrm.journey_models import RUNNING, JourneyRun
from scrm.models import Activity, Follower
from scrm.playbook import store
from scrm.playbook.grammar import Journey

log = logging.getLogger(__name__)
BATCH = 5000  # entries per journey per tick


def _blocked(name: str, journey: Journey, now: datetime):
    """A run of this journey that keeps the follower out: any (once), a running one, or one in the last N days."""
    run = and_(JourneyRun.follower_id == Follower.id, JourneyRun.journey == name)
    if journey.reentry == "once":
        return exists().where(run)
    if journey.reentry == "always":
        return exists().where(run, JourneyRun.state == RUNNING)
    recent = JourneyRun.started_at > now - timedelta(days=journey.reentry.days)
    return exists().where(run, (JourneyRun.state == RUNNING) | recent)


def enter(session: Session, name: str, journey: Journey, now: datetime, batch: int = BATCH) -> int:
    """Runs for the segment's members who may enter now; how many."""
    assert journey.entry is not None
    segment = segments.find(session, journey.entry.segment)
    if segment is None:
        log.warning("journey %r: no saved segment %r to enter from", name, journey.entry.segment)
        return 0
    members = select(Follower.id).where(segments.where(session, segment.filter, now), ~_blocked(name, journey, now))
    ids = list(session.scalars(members.order_by(Follower.id).limit(batch)))
    if not ids:
        return 0
    version = journey_defs.ensure(session, name, journey)
    stamp = int(now.timestamp())
    rows = [{"follower_id": fid, "journey": name, "key": f"segment:{name}:{fid}:{stamp}", "step": 0,
             "state": RUNNING, "started_at": now, "updated_at": now, "version": version, "position": "0",
             "due_at": now, "context": {"segment": segment.name}} for fid in ids]  # fmt: skip
    session.execute(insert_ignore(session, JourneyRun, ["key"]), rows)
    _started(session, name, [r["key"] for r in rows], version, segment.name, now)
    return len(ids)


def _started(session: Session, name: str, keys: list[str], version: int, segment: str, now: datetime) -> None:
    """The `journey_started` timeline entries of the runs just begun (as a trigger-started run gets one)."""
    made = session.execute(select(JourneyRun.id, JourneyRun.follower_id, JourneyRun.key).where(
        JourneyRun.key.in_(keys), JourneyRun.started_at == now))  # fmt: skip
    notes = [{"follower_id": fid, "kind": "journey_started", "at": now, "interaction_id": None,
              "data": {"journey": name, "run": rid, "key": key, "version": version, "segment": segment}}
             for rid, fid, key in made]  # fmt: skip
    if notes:
        session.execute(insert(Activity.__table__), notes)


def enter_segments(session: Session, now: datetime | None = None) -> int:
    """Every journey of the active playbook that enters by segment; how many runs began."""
    now = now or utcnow()
    book = store.active(session)
    if book is None:
        return 0
    return sum(enter(session, n, j, now) for n, j in book.book.journeys.items() if j.entry is not None)
