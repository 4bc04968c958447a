"""Pushing outbox rows to RQ. Called after commit on the request path (fast Redis, failures tolerated) and by the
sweeper; the job id is derived from the outbox row, so pushing twice queues the same job, which runs once.
"""

from __future__ import annotations

import logging

import redis
from rq import Queue

log = logging.getLogger(__name__)

QUEUE = "default"
JOB_PREFIX = "outbox-"


def job_id(outbox_id: int) -> str:
    return f"{JOB_PREFIX}{outbox_id}"


def queue(connection: redis.Redis, name: str = QUEUE) -> Queue:
    return Queue(name, connection=connection)


def push(connection: redis.Redis, outbox_ids: list[int]) -> bool:
    """Enqueue `tasks.outbox.run` for each row; False (and a log line) when Redis is unreachable."""
    if not outbox_ids:
        return True
    q = queue(connection)
    try:
        with connection.pipeline() as pipe:
            for oid in outbox_ids:
                q.enqueue_call(
                    "tasks.outbox.run",
                    args=(oid,),
                    job_id=job_id(oid),
                    result_ttl=300,
                    failure_ttl=7 * 86400,
                    timeout=120,
                    pipeline=pipe,
                )
            pipe.execute()
    except (redis.RedisError, OSError) as exc:
        log.warning("outbox push deferred to the sweeper (%d rows): %s", len(outbox_ids), exc)
        return False
    return True
