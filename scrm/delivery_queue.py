"""Deliveries in bulk, for the pump and for broadcasts: which rows are due, which jobs were lost, which sends got
stuck, and cancelling or releasing a broadcast's rows. Every change is one set-based conditional UPDATE.
"""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import or_, select, update
from sqlalchemy.orm import Session

from scrm.delivery_models import (
    CANCELLED,
    QUEUED,
    RUNNING,
    SENDING,
    Broadcast,
    Delivery,
)


def push_ids(session: Session, job: str, ids: list[int], now: datetime) -> list[int]:
    """Mark unassigned queued rows as pushed in `job`; returns the ids this caller got (a racing pump gets none)."""
    stmt = (
        update(Delivery)
        .where(Delivery.id.in_(ids), Delivery.state == QUEUED, Delivery.job.is_(None))
        .values(job=job, pushed_at=now)
        .returning(Delivery.id)
        .execution_options(synchronize_session=False)
    )
    return list(session.scalars(stmt))


def job_rows(session: Session, job: str) -> list[int]:
    """The queued rows of a job, by id (the (state, job) index): what a job pushed by name sends."""
    query = select(Delivery.id).where(Delivery.state == QUEUED, Delivery.job == job).order_by(Delivery.id)
    return list(session.scalars(query))


def due(session: Session, now: datetime, limit: int, broadcast_id: int | None = None) -> list[tuple]:
    """Queued rows with no job that may go now, in-doubt ones first: (id, channel, broadcast id, in doubt)."""
    running = select(Broadcast.id).where(Broadcast.state == RUNNING)
    query = (
        select(Delivery.id, Delivery.channel, Delivery.broadcast_id, Delivery.in_doubt)
        .where(Delivery.state == QUEUED, Delivery.job.is_(None))
        .where(or_(Delivery.send_after.is_(None), Delivery.send_after <= now))
        .where(or_(Delivery.broadcast_id.is_(None), Delivery.broadcast_id.in_(running)))
    )
    if broadcast_id is not None:
        query = query.where(Delivery.broadcast_id == broadcast_id)
    return [tuple(r) for r in session.execute(query.order_by(Delivery.in_doubt.desc(), Delivery.id).limit(limit))]


def jobs_waiting(session: Session, pushed_before: datetime, limit: int, after: str = "") -> list[str]:
    """Jobs that queued rows have waited on for a while, in job-name order from `after` (the pump walks them all
    over successive runs and asks Redis whether they still exist)."""
    query = (
        select(Delivery.job)
        .where(Delivery.state == QUEUED, Delivery.job > after, Delivery.pushed_at < pushed_before)
        .distinct()
        .order_by(Delivery.job)
        .limit(limit)
    )
    return [j for j in session.scalars(query) if j]


def unassign(session: Session, jobs: list[str]) -> int:
    """Queued rows of lost jobs lose their job: the next pump pushes them in new ones."""
    stmt = (
        update(Delivery)
        .where(Delivery.job.in_(jobs), Delivery.state == QUEUED)
        .values(job=None, pushed_at=None)
        .execution_options(synchronize_session=False)
    )
    return session.execute(stmt).rowcount


def in_flight(session: Session, older_than: datetime, limit: int) -> list[tuple[int, str | None]]:
    """Rows in `sending` for a while: (id, job); the pump checks their job's heartbeat."""
    query = select(Delivery.id, Delivery.job).where(Delivery.state == SENDING, Delivery.updated_at < older_than)
    return [(r[0], r[1]) for r in session.execute(query.order_by(Delivery.id).limit(limit))]


def recover(session: Session, ids: list[int], now: datetime) -> int:
    """Rows whose worker died mid-send: queued again and in doubt (resent only under the same client_msg_id)."""
    stmt = (
        update(Delivery)
        .where(Delivery.id.in_(ids), Delivery.state == SENDING)
        .values(
            state=QUEUED,
            in_doubt=True,
            job=None,
            pushed_at=None,
            send_after=None,
            updated_at=now,
            reason="worker_lost",
            detail="its worker stopped mid-send",
        )
        .execution_options(synchronize_session=False)
    )
    return session.execute(stmt).rowcount


def cancel_queued(session: Session, broadcast_id: int, now: datetime) -> int:
    stmt = (
        update(Delivery)
        .where(Delivery.broadcast_id == broadcast_id, Delivery.state == QUEUED)
        .values(state=CANCELLED, reason="cancelled", job=None, updated_at=now, done_at=now)
        .execution_options(synchronize_session=False)
    )
    return session.execute(stmt).rowcount


def release_broadcast(session: Session, broadcast_id: int) -> int:
    """On resume: the broadcast's queued rows lose their (finished) jobs so they are pushed again."""
    stmt = (
        update(Delivery)
        .where(Delivery.broadcast_id == broadcast_id, Delivery.state == QUEUED, Delivery.job.is_not(None))
        .values(job=None, pushed_at=None)
        .execution_options(synchronize_session=False)
    )
    return session.execute(stmt).rowcount


def pending(session: Session, broadcast_id: int) -> bool:
    found = session.scalar(
        select(Delivery.id).where(Delivery.broadcast_id == broadcast_id, Delivery.state.in_((QUEUED, SENDING))).limit(1)
    )
    return found is not None
