"""The long-running processes: an RQ worker and the cron scheduler, each kept alive through Redis outages.

RQ's worker retries connection errors only while it waits for jobs; any other Redis error ends `work()`. The loop
here restarts it with backoff, and sweeps the outbox first, since a restarted Redis without persistence is empty.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from typing import Any

import redis
from flask import Flask
from rq import SimpleWorker
from rq.cron import CronScheduler
from rq.exceptions import StopRequested
from rq.job import Job

from foundation.services import services
from tasks.queue import QUEUE, QUEUES, dispatch_once
from tasks.registry import load_all

log = logging.getLogger(__name__)

PERIODIC: list[tuple[str, int]] = [("tasks.outbox.sweep", 10), ("tasks.pump.pump", 5)]
PERIODIC += [("tasks.playbook.tick", 60), ("tasks.tagsync.sync", 60)]  # inactive triggers, decay; WeChat tags
PERIODIC += [("tasks.handover.pool", 300)]  # the lead pool (off unless WELEAD_LEAD_POOL_DAYS is set)
PERIODIC += [("tasks.journey.tick", 5)]  # journey steps that are due, segment entries (scrm.journeys)


def eventful(result: Any) -> bool:
    """Did a job's result report work done? A count above 0 did; None, flags (`{"disabled": true}`), texts inside a
    report (a reason, already logged as a warning) and "skipped" (a double push) did not."""
    if result is None or isinstance(result, bool):
        return False
    if isinstance(result, int | float):
        return result != 0
    if isinstance(result, dict):
        return any(eventful(v) for v in result.values() if not isinstance(v, str))
    if isinstance(result, list | tuple | set):
        return any(eventful(v) for v in result)
    return bool(result) and result != "skipped"


class QuietWorker(SimpleWorker):
    """One INFO line per job that did something (RQ's own three lines per job are at DEBUG); idle runs at DEBUG."""

    def handle_job_success(self, job: Job, *args: Any, **kwargs: Any) -> None:
        super().handle_job_success(job, *args, **kwargs)
        result = getattr(job, "_result", None)
        level = logging.INFO if eventful(result) else logging.DEBUG
        log.log(level, "job %s (%s): %s", job.func_name, job.id, result)


def _supervise(name: str, body: Callable[[], None], backoff_max: float = 10.0) -> None:
    delay = 0.5
    while True:
        try:
            body()
            return
        except StopRequested:  # RQ's signal handler, when the stop came while we were between two work() calls
            log.info("%s: stopped", name)
            return
        except (redis.RedisError, OSError) as exc:
            log.warning("%s: Redis unavailable (%s); retrying in %.1fs", name, exc.__class__.__name__, delay)
            time.sleep(delay)
            delay = min(delay * 2, backoff_max)


def run_worker(app: Flask, burst: bool = False) -> None:
    """Jobs run in this process (no fork per job) inside the app context, so engines and clients are reused.

    Beside the worker, a dispatcher thread turns outbox ids announced by the web processes into RQ jobs.
    """
    load_all()
    from tasks.outbox import sweep, urgent

    stop = threading.Event()
    if not burst:
        threading.Thread(target=_dispatcher, args=(app, stop), name="outbox-dispatcher", daemon=True).start()

    def body() -> None:
        with app.app_context():
            conn = services().redis_slow
            conn.ping()
            if burst:
                while dispatch_once(conn, wait=0.01, urgent=urgent):
                    pass
            sweep(stale_seconds=0)  # Redis may have come back empty
            log.info("worker: waiting for jobs on %s (a line per job that does something)", ", ".join(QUEUES))
            worker = QuietWorker(list(QUEUES), connection=conn)
            worker.work(burst=burst, logging_level=None)  # levels: configure_logging

    try:
        _supervise("worker", body)
    finally:
        stop.set()


def _dispatcher(app: Flask, stop: threading.Event) -> None:
    from tasks.outbox import urgent

    with app.app_context():
        conn = services().redis_slow
        while not stop.is_set():
            try:
                dispatch_once(conn, wait=1.0, urgent=urgent)
            except (redis.RedisError, OSError) as exc:
                log.warning("dispatcher: Redis unavailable (%s)", exc.__class__.__name__)
                stop.wait(1.0)


def run_scheduler(app: Flask) -> None:
    import importlib

    def body() -> None:
        with app.app_context():
            cron = CronScheduler(connection=services().redis_slow)
            for path, every in PERIODIC:
                module, func = path.rsplit(".", 1)
                cron.register(getattr(importlib.import_module(module), func), QUEUE, interval=every)
            log.info("scheduler: %s", ", ".join(f"{path.rsplit('.', 1)[1]} every {s}s" for path, s in PERIODIC))
            cron.start()

    _supervise("scheduler", body)
