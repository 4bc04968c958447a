"""The pump that keeps the delivery table moving, and pushing delivery jobs to RQ.

`pump()` (every few seconds, from the scheduler) pushes queued rows that have no live job: new after a deferral or a
retry's backoff, or whose job vanished (Redis restarted empty, the job failed), and recovers rows left `sending` by a
dead worker (its heartbeat is gone): a template message is resent under the same client_msg_id, which WeChat drops if
the first one went out; anything else becomes `unknown`. The database is the truth; Redis only carries work.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable
from datetime import datetime, timedelta
from typing import Any

import redis
from rq.job import Job

from foundation.clock import utcnow
from foundation.services import services
from scrm import broadcasts, delivery_queue, guards
from scrm.message_templates import MASS
from tasks.queue import enqueue_all
from tasks.ratelimit import Heartbeat
from tasks.send import rules

log = logging.getLogger(__name__)

PUMP_LIMIT = 5000
LOST_SCAN = 1000  # jobs checked per pump run
LOST_CURSOR = "welead:pump:lost-cursor"
STUCK_GRACE = 5  # seconds a row may sit in `sending` before its heartbeat is checked
LIVE = {"queued", "started", "deferred", "scheduled"}


def _timeout(size: int, r: guards.SendRules) -> int:
    """An RQ timeout long enough for the batch at the configured rate (a timed-out job is recovered anyway)."""
    return int(120 + size * (1.0 / r.rate + services().settings.http_timeout))


def push_jobs(conn: redis.Redis, groups: dict[str, list[int]], at_front: bool = False) -> bool:
    """Enqueue one `run_batch` job per group; False when Redis is down (the pump pushes them later)."""
    if not groups:
        return True
    r = rules()
    calls = [_send_job(job_id, (job_id, ids), len(ids), r, at_front) for job_id, ids in groups.items()]
    return enqueue_all(conn, calls, "the send pump")


def push_named(conn: redis.Redis, jobs: list[str], size: int) -> bool:
    """Enqueue `run_batch` jobs that carry their name only (a broadcast's fan-out: the worker reads the rows of its
    job from the (state, job) index); False when Redis is down (the pump finds the rows' jobs lost, pushes again)."""
    r = rules()
    return enqueue_all(conn, [_send_job(job_id, (job_id,), size, r) for job_id in jobs], "the send pump")


def _send_job(job_id: str, args: tuple[Any, ...], size: int, r: Any, at_front: bool = False) -> dict[str, Any]:
    """One `run_batch` call for enqueue_all: its timeout fits `size` messages at the configured rate."""
    return {"func": "tasks.send.run_batch", "args": args, "job_id": job_id, "timeout": _timeout(size, r),
            "result_ttl": 600, "failure_ttl": 86400, "at_front": at_front}  # fmt: skip


def push_pending(broadcast_id: int | None = None, limit: int | None = PUMP_LIMIT) -> int:
    """Give queued rows without a job (due now) new jobs, in batches; returns how many rows were pushed."""
    svc, r, total = services(), rules(), 0
    while limit is None or total < limit:
        step = PUMP_LIMIT if limit is None else min(PUMP_LIMIT, limit - total)
        with svc.db.transaction() as session:
            now = utcnow()
            rows = delivery_queue.due(session, now, step, broadcast_id)
            urgent, normal = _group(session, rows, r.job_size, now)
        pushed = push_jobs(svc.redis_slow, urgent, at_front=True) and push_jobs(svc.redis_slow, normal)
        total += sum(len(ids) for groups in (urgent, normal) for ids in groups.values())
        if not pushed or len(rows) < step:  # Redis down: what was assigned is found lost and pushed later
            break
    return total


def _group(session: Any, rows: list[tuple], batch: int, now: datetime) -> tuple[dict, dict]:
    """Rows → jobs (one channel and broadcast each, a batch at most), assigned in the DB before the push.

    In-doubt rows (their worker died mid-send) get jobs of their own at the front of the queue: their resend must
    happen inside WeChat's 10-minute client_msg_id window.
    """
    buckets: dict[tuple, list[int]] = {}
    for did, channel, bid, in_doubt in rows:
        buckets.setdefault((channel, bid, bool(in_doubt)), []).append(did)
    urgent: dict[str, list[int]] = {}
    normal: dict[str, list[int]] = {}
    for (channel, _bid, in_doubt), ids in buckets.items():
        size = broadcasts.MASS_BATCH if channel == MASS else batch
        for start in range(0, len(ids), size):
            job = broadcasts.job_name()
            taken = delivery_queue.push_ids(session, job, ids[start : start + size], now)
            if taken:
                (urgent if in_doubt else normal)[job] = sorted(taken)
    return urgent, normal


def enqueue(delivery_id: int, job: str) -> bool:
    """Push one delivery's job after its commit (the API and playbook path); the pump covers a failure."""
    return push_jobs(services().redis, {job: [delivery_id]})


def _job_states(conn: redis.Redis, jobs: list[str]) -> dict[str, str | None]:
    with conn.pipeline(transaction=False) as pipe:
        for job in jobs:
            pipe.hget(Job.key_for(job), "status")
        found = pipe.execute()
    return {job: (s.decode() if isinstance(s, bytes) else s) for job, s in zip(jobs, found, strict=True)}


def dead_jobs(conn: redis.Redis, jobs: Iterable[str]) -> list[str]:
    """Jobs neither waiting in RQ nor beating: gone with Redis, failed, or their worker died."""
    jobs = list(jobs)
    if not jobs:
        return []
    states, beating = _job_states(conn, jobs), Heartbeat.alive(conn, jobs)
    return [j for j in jobs if j not in beating and (states[j] not in LIVE or states[j] == "started")]


def recover_stuck() -> int:
    """Rows left `sending` by a worker that died: queued again, in doubt."""
    svc, now = services(), utcnow()
    with svc.db.transaction() as session:
        rows = delivery_queue.in_flight(session, now - timedelta(seconds=STUCK_GRACE), PUMP_LIMIT)
    if not rows:
        return 0
    dead = set(dead_jobs(svc.redis_slow, {job for _, job in rows if job}))
    lost = [did for did, job in rows if job is None or job in dead]
    if not lost:
        return 0
    with svc.db.transaction() as session:
        n = delivery_queue.recover(session, lost, now)
    log.warning("recovered %d deliveries from dead workers", n)
    return n


def requeue_lost() -> int:
    """Queued rows whose job is gone lose it, so push_pending gives them a new one. Each run checks up to
    LOST_SCAN jobs, continuing where the previous run stopped (a Redis key; losing it only restarts the walk)."""
    svc, r = services(), rules()
    after = (svc.redis_slow.get(LOST_CURSOR) or b"").decode()
    with svc.db.transaction() as session:
        jobs = delivery_queue.jobs_waiting(session, utcnow() - timedelta(seconds=r.lost_after), LOST_SCAN, after)
    svc.redis_slow.set(LOST_CURSOR, jobs[-1] if len(jobs) == LOST_SCAN else "", ex=3600)
    dead = dead_jobs(svc.redis_slow, jobs)
    if not dead:
        return 0
    with svc.db.transaction() as session:
        n = delivery_queue.unassign(session, dead)
    log.warning("%d queued deliveries lost their job (%d jobs): pushing again", n, len(dead))
    return n


def pump() -> dict[str, int]:
    """The periodic keeper (scheduler, every few seconds): recover, re-push, push what is due, finish broadcasts."""
    from tasks.broadcast import tend

    report = {"recovered": recover_stuck(), "lost": requeue_lost(), "pushed": push_pending()}
    report.update(tend())
    return report
