"""The outbox: follow-up work committed with its cause, so a Redis outage or a crash loses nothing.

Rows are announced after commit (`announce`: one RPUSH of their ids, which the dispatcher in every worker turns into
RQ jobs with tasks.queue.push) and pushed again by the sweeper when they look lost; the job id is derived from the row
id and the job checks `done_at`, so a double push is harmless. Announcing lives here, not in tasks/, so the callback
path hands work on through the outbox without knowing how jobs are run.
"""

from __future__ import annotations

import logging
from datetime import datetime, timedelta
from typing import Any

import redis
from sqlalchemy import or_, select, update
from sqlalchemy.orm import Session

from foundation.clock import utcnow
from foundation.sql import insert_ignore
from scrm.models import Outbox

LEASE = timedelta(seconds=180)  # longer than any job's RQ timeout
READY = "welead:outbox:ready"  # the Redis list of announced row ids
log = logging.getLogger(__name__)


def add(
    session: Session,
    task: str,
    args: dict[str, Any],
    *,
    key: str | None = None,
    run_after: datetime | None = None,
) -> int | None:
    """Queue work in the current transaction; with a `key`, the same work is queued once ever (None if it was)."""
    row = {"task": task, "args": args, "key": key, "created_at": utcnow(), "run_after": run_after, "attempts": 0}
    return session.connection().execute(insert_ignore(session, Outbox, ["key"], "id"), row).scalar()


def due(session: Session, limit: int = 500) -> list[tuple[int, datetime]]:
    """(id, created_at) of rows not done and runnable now; which of them lost their job is for Redis to say."""
    now = utcnow()
    rows = session.execute(
        select(Outbox.id, Outbox.created_at)
        .where(Outbox.done_at.is_(None))
        .where(or_(Outbox.run_after.is_(None), Outbox.run_after <= now))
        .order_by(Outbox.id)
        .limit(limit)
    )
    return [(oid, created) for oid, created in rows]


def mark_pushed(session: Session, ids: list[int]) -> None:
    if ids:
        session.execute(update(Outbox).where(Outbox.id.in_(ids)).values(pushed_at=utcnow()))


def claim(session: Session, outbox_id: int, lease: timedelta = LEASE) -> Outbox | None:
    """Take the row for one run, atomically: None when it is done, gone, or another worker holds its lease.

    Two pushes of the same row (request and sweeper racing) can put its job on the queue twice; only one claim wins.
    A worker that dies mid-run leaves the lease to expire, after which the sweeper's push can claim it again.
    """
    now = utcnow()
    won = session.execute(
        update(Outbox)
        .where(Outbox.id == outbox_id, Outbox.done_at.is_(None))
        .where(or_(Outbox.claimed_until.is_(None), Outbox.claimed_until < now))
        .values(attempts=Outbox.attempts + 1, claimed_until=now + lease)
        .execution_options(synchronize_session=False)
    ).rowcount
    return session.get(Outbox, outbox_id) if won == 1 else None


def finish(session: Session, outbox_id: int, error: str | None = None) -> None:
    values: dict[str, Any] = {"last_error": error} if error else {"done_at": utcnow(), "last_error": None}
    values["claimed_until"] = None
    session.execute(update(Outbox).where(Outbox.id == outbox_id).values(**values))


def announce(connection: redis.Redis, outbox_ids: list[int]) -> bool:
    """Tell the dispatchers about rows just committed; False (and a log line) when Redis is unreachable."""
    if not outbox_ids:
        return True
    try:
        connection.rpush(READY, *outbox_ids)
    except (redis.RedisError, OSError) as exc:
        log.warning("outbox announce deferred to the sweeper (%d rows): %s", len(outbox_ids), exc)
        return False
    return True
