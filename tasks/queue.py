"""Pushing outbox rows to RQ; the job id is derived from the row, so pushing twice queues the same job, which runs
once (tasks.outbox claims rows atomically).

The callback path does not build RQ jobs itself: `scrm.outbox.announce` appends the new row ids to one Redis list (a
single RPUSH, a fraction of RQ's enqueue cost) and the dispatcher thread in every worker turns them into jobs.
Whatever is lost on the way (Redis down, a process killed) is found again by the sweeper, from the database.
"""

from __future__ import annotations

import logging
from typing import Any

import redis
from rq import Queue

from scrm.outbox import READY

log = logging.getLogger(__name__)

QUEUE = "default"
JOB_PREFIX = "outbox-"


def job_id(outbox_id: int) -> str:
    return f"{JOB_PREFIX}{outbox_id}"


def queue(connection: redis.Redis, name: str = QUEUE) -> Queue:
    return Queue(name, connection=connection)


def enqueue_all(connection: redis.Redis, calls: list[dict[str, Any]], what: str) -> bool:
    """Enqueue jobs (each a dict of `Queue.enqueue_call` arguments) in one round trip; False, with a log line
    naming `what` picks them up later, when Redis is unreachable."""
    if not calls:
        return True
    q = queue(connection)
    try:
        with connection.pipeline() as pipe:
            for call in calls:
                q.enqueue_call(**call, pipeline=pipe)
            pipe.execute()
    except (redis.RedisError, OSError) as exc:
        log.warning("%d jobs deferred to %s: %s", len(calls), what, exc)
        return False
    return True


def push(connection: redis.Redis, outbox_ids: list[int]) -> bool:
    """Enqueue `tasks.outbox.run` for each row; False when Redis is unreachable (the sweeper pushes them later)."""
    calls = [
        {"func": "tasks.outbox.run", "args": (oid,), "job_id": job_id(oid), "result_ttl": 300,
         "failure_ttl": 7 * 86400, "timeout": 120}
        for oid in outbox_ids
    ]  # fmt: skip
    return enqueue_all(connection, calls, "the outbox sweeper")


def dispatch_once(connection: redis.Redis, wait: float = 1.0, batch: int = 500) -> int:
    """Move announced ids into RQ jobs: block up to `wait` seconds for the first, then take what else is there."""
    first = connection.blpop([READY], timeout=wait)
    if first is None:
        return 0
    with connection.pipeline() as pipe:
        pipe.lpop(READY, batch - 1)
        rest = pipe.execute()[0] or []
    ids = [int(first[1]), *(int(x) for x in rest)]
    if not push(connection, ids):
        connection.rpush(READY, *ids)  # Redis answered the pops; let the next round try again
    return len(ids)
