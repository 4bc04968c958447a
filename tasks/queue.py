"""Pushing outbox rows to RQ; the job id is derived from the row, so pushing twice queues the same job, which runs
once (tasks.outbox claims rows atomically).

The callback path does not build RQ jobs itself: `scrm.outbox.announce` appends the new row ids to one Redis list (a
single RPUSH, a fraction of RQ's enqueue cost) and the dispatcher thread in every worker turns them into jobs.
Whatever is lost on the way (Redis down, a process killed) is found again by the sweeper, from the database.

Workers listen to two queues, HIGH first: rows of PRIORITY_TASKS (welcome messages, which WeCom accepts for 20 s
only) go there, so they wait at most for the job a worker is running, never behind a broadcast's batches.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Collection
from typing import Any

import redis
from rq import Queue

from scrm.outbox import READY

log = logging.getLogger(__name__)

QUEUE = "default"
HIGH = "high"  # ahead of everything on "default" (broadcast batches): work with a deadline, e.g. welcome messages
QUEUES = (HIGH, QUEUE)  # what a worker listens to, in order: RQ takes from the first queue that has a job
PRIORITY_TASKS = frozenset({"welcome.send", "chatbot.answer"})  # on HIGH (tasks.outbox.urgent finds them);
# chatbot.answer: a follower is waiting for it
JOB_PREFIX = "outbox-"


def job_id(outbox_id: int) -> str:
    return f"{JOB_PREFIX}{outbox_id}"


def queue(connection: redis.Redis, name: str = QUEUE) -> Queue:
    return Queue(name, connection=connection)


def enqueue_all(connection: redis.Redis, calls: list[dict[str, Any]], what: str, name: str = QUEUE) -> bool:
    """Enqueue jobs (each a dict of `Queue.enqueue_call` arguments) on queue `name` in one round trip; False, with
    a log line naming `what` picks them up later, when Redis is unreachable."""
    if not calls:
        return True
    q = queue(connection, name)
    try:
        with connection.pipeline() as pipe:
            for call in calls:
                q.enqueue_call(**call, pipeline=pipe)
            pipe.execute()
    except (redis.RedisError, OSError) as exc:
        log.warning("%d jobs deferred to %s: %s", len(calls), what, exc)
        return False
    return True


def push(connection: redis.Redis, outbox_ids: list[int], urgent: Collection[int] = ()) -> bool:
    """Enqueue `tasks.outbox.run` for each row (those in `urgent` on HIGH); False when Redis is unreachable (the
    sweeper pushes them later)."""
    ahead = set(urgent)
    high, normal = [i for i in outbox_ids if i in ahead], [i for i in outbox_ids if i not in ahead]
    ok = _push(connection, high, HIGH) if high else True
    return _push(connection, normal, QUEUE) and ok


def _push(connection: redis.Redis, outbox_ids: list[int], name: str) -> bool:
    calls = [
        {"func": "tasks.outbox.run", "args": (oid,), "job_id": job_id(oid), "result_ttl": 300,
         "failure_ttl": 7 * 86400, "timeout": 120}
        for oid in outbox_ids
    ]  # fmt: skip
    return enqueue_all(connection, calls, "the outbox sweeper", name)


def dispatch_once(
    connection: redis.Redis,
    wait: float = 1.0,
    batch: int = 500,
    urgent: Callable[[list[int]], Collection[int]] | None = None,
) -> int:
    """Move announced ids into RQ jobs: block up to `wait` seconds for the first, then take what else is there.
    `urgent` names the ids whose jobs go on HIGH (the worker's dispatcher asks the database)."""
    first = connection.blpop([READY], timeout=wait)
    if first is None:
        return 0
    with connection.pipeline() as pipe:
        pipe.lpop(READY, batch - 1)
        rest = pipe.execute()[0] or []
    ids = [int(first[1]), *(int(x) for x in rest)]
    if not push(connection, ids, urgent(ids) if urgent else ()):
        connection.rpush(READY, *ids)  # Redis answered the pops; let the next round try again
    return len(ids)
