"""The job that runs an outbox row, and the sweeper that re-pushes rows whose job was lost."""

from __future__ import annotations

import logging
from datetime import timedelta

import redis
from rq.exceptions import NoSuchJobError
from rq.job import Job, JobStatus
from sqlalchemy import select
from sqlalchemy.exc import SQLAlchemyError

from foundation.clock import utcnow
from foundation.services import services
from scrm import outbox
from scrm.models import Outbox
from tasks.queue import PRIORITY_TASKS, job_id, push
from tasks.registry import TASKS, GiveUp, RetryLater, load_all

log = logging.getLogger(__name__)

MAX_ATTEMPTS = 8
# A due row whose job is in one of these states has no run coming: FINISHED too (the run ended in RetryLater).
LOST = {JobStatus.FAILED, JobStatus.STOPPED, JobStatus.CANCELED, JobStatus.FINISHED}


def run(outbox_id: int) -> str:
    """Run one row once: a row already done (a double push) is skipped; failures are recorded on the row."""
    load_all()
    db = services().db
    with db.transaction() as session:
        row = outbox.claim(session, outbox_id)
        if row is None:
            return "skipped"
        name, args, attempts = row.task, dict(row.args), row.attempts
    fn = TASKS.get(name)
    if fn is None:
        return _close(outbox_id, f"unknown task {name!r}")
    try:
        fn(**args)
    except GiveUp as exc:
        return _close(outbox_id, f"gave up: {exc}")
    except RetryLater as exc:
        if attempts >= MAX_ATTEMPTS:
            return _close(outbox_id, f"gave up after {attempts} attempts: {exc}")
        with db.transaction() as session:
            row = session.get(Outbox, outbox_id)
            row.last_error = str(exc)
            row.run_after = utcnow() + timedelta(seconds=exc.delay)
            row.pushed_at = row.claimed_until = None
        return "retry"
    with db.transaction() as session:
        outbox.finish(session, outbox_id)
    return "done"


def _close(outbox_id: int, reason: str) -> str:
    log.warning("outbox %s closed: %s", outbox_id, reason)
    with services().db.transaction() as session:
        row = session.get(Outbox, outbox_id)
        row.done_at, row.last_error, row.claimed_until = utcnow(), reason, None
    return reason


def sweep(stale_seconds: float = 1.0) -> int:
    """Push rows never pushed or whose job is gone (Redis restarted empty, job failed); returns how many.

    `stale_seconds` spares rows whose request is pushing them right now; pushing one anyway is harmless (claims
    are atomic), it only wastes a job.
    """
    svc = services()
    with svc.db.sessions() as session:
        candidates = outbox.due(session)
    cutoff = utcnow() - timedelta(seconds=stale_seconds)
    lost = [oid for oid, created in candidates if _lost(svc.redis_slow, oid, created < cutoff)]
    if lost and push(svc.redis_slow, lost, urgent(lost)):
        with svc.db.transaction() as session:
            outbox.mark_pushed(session, lost)
        log.info("sweeper pushed %d outbox rows", len(lost))
    return len(lost)


def urgent(outbox_ids: list[int]) -> set[int]:
    """The rows among `outbox_ids` whose jobs go on the HIGH queue (tasks.queue.PRIORITY_TASKS): one indexed read."""
    if not outbox_ids:
        return set()
    query = select(Outbox.id).where(Outbox.id.in_(outbox_ids), Outbox.task.in_(sorted(PRIORITY_TASKS)))
    try:
        with services().db.sessions() as session:
            return set(session.scalars(query))
    except SQLAlchemyError as exc:  # the database is down: push on the default queue rather than not at all
        log.warning("outbox priority look-up failed (%s): %d rows go on the default queue", exc, len(outbox_ids))
        return set()


def _lost(conn: redis.Redis, oid: int, old: bool) -> bool:
    """A job that is queued or running is in flight; young rows were just pushed by their request. A finished job
    of a row that is still due ran and asked to run again (RetryLater): RQ keeps it for its result_ttl, and the
    retry is due now, not when RQ forgets it."""
    try:
        status = Job.fetch(job_id(oid), connection=conn).get_status()
    except NoSuchJobError:
        return old
    return status in LOST
