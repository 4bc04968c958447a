"""Broadcast fan-out and control: the side that touches Redis (jobs, heartbeats, the breaker's window).

The fan-out runs in a worker (`POST /api/v1/broadcasts`) or in the CLI process (`flask broadcast send`), beating a
heartbeat either way; the pump restarts a fan-out whose heartbeat stopped, and it resumes at the broadcast's cursor.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import Any

import redis
from rq import Queue

from foundation.clock import utcnow
from foundation.services import services
from scrm import broadcasts, fanout
from tasks.pump import dead_jobs, push_named, push_pending
from tasks.queue import QUEUE
from tasks.ratelimit import Breaker, Heartbeat
from tasks.send import rules

log = logging.getLogger(__name__)

FANOUT_TIMEOUT = 6 * 3600


def fanout_name(broadcast_id: int) -> str:
    return f"fanout-{broadcast_id}"


def fan_out(broadcast_id: int, progress: Callable[[int], Any] | None = None, page: int = broadcasts.PAGE) -> int:
    """Create the broadcast's remaining deliveries from its segment, set-based in the database, and push their jobs.

    Resumes after the cursor; stops when the broadcast is paused or cancelled, or when another fan-out took over.
    `page`: deliveries per transaction (rounded to whole jobs). Returns how many deliveries were new.
    """
    svc, r = services(), rules()
    heart = Heartbeat(svc.redis_slow, fanout_name(broadcast_id), r.heartbeat)
    heart.beat(force=True)
    with svc.db.transaction() as session:
        broadcasts.count_audience(session, broadcast_id)
        plan = broadcasts.plan(session, broadcast_id, r.job_size)
    created, complete, cursor = 0, False, 0
    try:
        if plan is not None:
            created, complete, cursor = _pages(plan, max(1, page // plan.size) * plan.size, heart, progress)
    finally:
        heart.stop()
    with svc.db.transaction() as session:
        if complete:
            broadcasts.fanned_out(session, broadcast_id, cursor, utcnow())
        broadcasts.finish_if_done(session, broadcast_id)
    return created


def _pages(
    plan: fanout.Plan, page: int, heart: Heartbeat, progress: Callable[[int], Any] | None
) -> tuple[int, bool, int]:
    """(new deliveries, fanned out to the end?, cursor): the audience a page per transaction, each page's jobs
    pushed after its commit (by name: a worker finds its rows by job)."""
    svc, created, cursor = services(), 0, plan.cursor
    with fanout.audience(svc.db, plan) as (conn, count):
        for lo in range(1, count + 1, page):
            heart.beat()
            hi = min(count, lo + page - 1)
            added = fanout.add(svc.db, conn, plan, lo, hi, cursor, utcnow())
            if added is None:
                return created, False, cursor
            push_named(svc.redis_slow, plan.jobs(lo, hi), plan.size)
            created, cursor = created + added.rows, added.cursor
            if progress is not None:
                progress(hi - lo + 1)
    return created, True, cursor


def fanout_job(broadcast_id: int) -> int:
    """The RQ job behind `POST /api/v1/broadcasts`."""
    return fan_out(broadcast_id)


def start(conn: redis.Redis, broadcast_id: int) -> bool:
    """Push the fan-out job (after the broadcast's commit); False if Redis is down: the pump starts it later."""
    try:
        Queue(QUEUE, connection=conn).enqueue_call(
            "tasks.broadcast.fanout_job",
            args=(broadcast_id,),
            job_id=fanout_name(broadcast_id),
            timeout=FANOUT_TIMEOUT,
            result_ttl=600,
            failure_ttl=86400,
        )
    except (redis.RedisError, OSError) as exc:
        log.warning("broadcast %s: fan-out left to the pump: %s", broadcast_id, exc)
        return False
    return True


def tend() -> dict[str, int]:
    """Pump duty: restart fan-outs that stopped beating; mark finished broadcasts done."""
    svc = services()
    with svc.db.transaction() as session:
        running = broadcasts.unfinished(session)
    stalled = dead_jobs(svc.redis_slow, [fanout_name(bid) for bid, fanned in running if not fanned])
    for name in stalled:
        start(svc.redis_slow, int(name.rsplit("-", 1)[1]))
    finished = 0
    for bid, fanned in running:
        if fanned:
            with svc.db.transaction() as session:
                finished += broadcasts.finish_if_done(session, bid)
    return {"fanouts_restarted": len(stalled), "broadcasts_finished": finished}


def resume(broadcast_id: int) -> bool:
    """paused → running: forget the breaker's window (or it trips again at once), push the queued rows again."""
    svc = services()
    with svc.db.transaction() as session:
        resumed = broadcasts.resume(session, broadcast_id)
        fanned = broadcasts.get(session, broadcast_id).fanned_out_at is not None
    if not resumed:
        return False
    try:
        Breaker.forget(svc.redis_slow, f"broadcast:{broadcast_id}")
    except redis.RedisError as exc:
        log.warning("broadcast %s: breaker window not reset: %s", broadcast_id, exc)
    push_pending(broadcast_id)
    if not fanned:
        start(svc.redis_slow, broadcast_id)
    return True
