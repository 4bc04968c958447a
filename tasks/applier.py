"""The applier process (`flask apply`, started by `make run`): apply batches while there are any, then wait for a
hint from the callbacks or the poll interval, whichever comes first. Redis only shortens the wait: with Redis down
the applier polls the database and loses nothing; outbox rows it could not announce are found by the sweeper.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from typing import TYPE_CHECKING

import redis

from foundation.clock import utcnow
from foundation.telemetry import APPLIED, APPLY_LAG, BATCH_SECONDS, BATCH_SIZE
from scrm.applier import TRANSIENT as DB_DOWN
from scrm.applier import WAKE, Report, apply_batch
from scrm.outbox import announce

if TYPE_CHECKING:
    from foundation.services import Services

log = logging.getLogger(__name__)

POLL = 0.1  # seconds between database polls when idle and no hint arrives
MAX_BACKOFF = 5.0
GATHER, GATHER_BELOW = 0.05, 50  # after a batch smaller than this, wait this long before the next one


def run_once(svc: Services, batch: int | None = None) -> Report:
    """One batch, then its outbox rows announced to the dispatchers."""
    start = time.perf_counter()
    report = apply_batch(svc.db, batch)
    if report.outbox_ids:
        announce(svc.redis, report.outbox_ids)
    if report.applied or report.failed:
        _observe(report, time.perf_counter() - start)
    return report


def _observe(report: Report, seconds: float) -> None:
    BATCH_SECONDS.observe(seconds)
    BATCH_SIZE.observe(report.applied + report.failed)
    APPLIED.labels("applied").inc(report.applied)
    APPLIED.labels("failed").inc(report.failed)
    now = utcnow()
    for received in report.received:
        APPLY_LAG.observe(max((now - received).total_seconds(), 0.0))


def drain(svc: Services, batch: int | None = None) -> Report:
    """Apply until nothing is pending (tests and `flask apply --drain`)."""
    total = Report()
    while (report := run_once(svc, batch)).applied or report.failed:
        total.add(report)
    return total


def serve(svc: Services, stopping: Callable[[], bool], batch: int | None = None, poll: float = POLL) -> None:
    """The loop: busy while there is work, a hint or `poll` seconds apart when idle, backing off while the
    database is unreachable."""
    backoff = poll
    while not stopping():
        try:
            report = run_once(svc, batch)
        except DB_DOWN as exc:
            log.warning("database unavailable, retrying in %.1fs: %s", backoff, exc.__class__.__name__)
            time.sleep(backoff)
            backoff = min(backoff * 2, MAX_BACKOFF)
            continue
        backoff = poll
        if report.failed:
            log.warning("%d interactions failed (GET /api/v1/interactions/failed)", report.failed)
        if not (report.applied or report.failed):
            _wait(svc.redis_slow, poll)
        elif report.applied + report.failed < GATHER_BELOW:
            time.sleep(GATHER)  # a trickle: let a few more arrive rather than take the write lock for each


def _wait(conn: redis.Redis, poll: float) -> None:
    try:
        conn.blpop([WAKE], timeout=poll)
    except (redis.RedisError, OSError):
        time.sleep(poll)
