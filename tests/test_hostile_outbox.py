"""A job that asks to run again later (RetryLater, e.g. during a WeChat outage) is pushed as soon as its run_after
passes, although RQ still keeps its finished job for result_ttl (issue 14: 4). Real RQ worker, real Redis."""

from __future__ import annotations

from datetime import timedelta

from sqlalchemy import update

from foundation.clock import utcnow
from scrm import outbox
from scrm.models import Outbox
from tasks.outbox import sweep
from tasks.queue import job_id, push
from tasks.registry import RetryLater, task
from tasks.worker import run_worker

CALLS: list[int] = []


@task("test.hostile.flaky")
def flaky(n: int) -> None:
    """Fails the first time (as a send does while WeChat answers -1), then succeeds."""
    CALLS.append(n)
    if len(CALLS) == 1:
        raise RetryLater("WeChat busy", delay=120)


def row(app, oid: int) -> Outbox:
    with app.extensions["welead"].db.sessions() as s:
        return s.get(Outbox, oid)


def test_a_retried_row_is_pushed_when_due_not_when_rq_forgets_its_job(app):
    from rq.job import Job

    CALLS.clear()
    svc = app.extensions["welead"]
    with svc.db.transaction() as s:
        oid = outbox.add(s, "test.hostile.flaky", {"n": 1})
    push(svc.redis_slow, [oid])
    run_worker(app, burst=True)
    assert CALLS == [1] and row(app, oid).done_at is None and row(app, oid).last_error == "WeChat busy"
    assert Job.fetch(job_id(oid), connection=svc.redis_slow).get_status() == "finished"  # kept for result_ttl
    with app.app_context():
        assert sweep(stale_seconds=0) == 0  # not due yet: nothing pushed early
    with svc.db.transaction() as s:  # its 120 s pass
        s.execute(update(Outbox).where(Outbox.id == oid).values(run_after=utcnow() - timedelta(seconds=1)))
    with app.app_context():
        assert sweep(stale_seconds=0) == 1  # due now, its finished job notwithstanding
        assert sweep(stale_seconds=0) == 0  # queued again: in flight, not pushed twice
    run_worker(app, burst=True)
    assert CALLS == [1, 1] and row(app, oid).done_at is not None and row(app, oid).attempts == 2
