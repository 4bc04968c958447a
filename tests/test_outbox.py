"""Follow-up work survives a Redis outage: the interaction commits, the outbox keeps the job, the sweeper pushes it."""

import time

import pytest
from sqlalchemy import select

from scrm.models import Follower, Outbox
from tasks.outbox import sweep
from tasks.worker import run_worker
from tests.helpers import interactions, pending_outbox, post, running_url
from wechat.sandbox_state import unionid_for


@pytest.fixture
def redis_url(killable_redis):
    """This module's app talks to a Redis of its own, which the tests stop and restart."""
    return running_url(killable_redis)


def follower(app, openid):
    with app.extensions["welead"].db.sessions() as s:
        return s.scalar(select(Follower).where(Follower.openid == openid))


def test_profile_job_fetches_from_sandbox(app, client, live):
    post(client, "subscribe", openid="o-profile", scene="rep:3")
    run_worker(app, burst=True)
    f = follower(app, "o-profile")
    assert f.unionid == unionid_for("o-profile")
    assert f.profile["subscribe_scene"] == "ADD_SCENE_SEARCH" and f.profile_fetched_at is not None
    assert pending_outbox(app) == 0


def test_redis_outage_loses_nothing(app, client, live, killable_redis):
    killable_redis.kill()
    started = time.monotonic()
    r = post(client, "subscribe", openid="o-outage")
    assert r.status_code == 200 and r.data == b"success"
    assert time.monotonic() - started < 2.0  # well inside WeChat's 5 s
    assert interactions(app) == 1 and pending_outbox(app) == 1
    assert client.get("/healthz").status_code == 503

    killable_redis.start()  # back, and empty: nothing was ever queued
    assert client.get("/healthz").json.items() >= {"status": "ok", "database": "ok", "redis": "ok"}.items()
    run_worker(app, burst=True)  # a worker sweeps the outbox on start
    assert pending_outbox(app) == 0
    assert follower(app, "o-outage").unionid == unionid_for("o-outage")


def test_sweeper_repushes_a_job_lost_with_redis(app, client, live, killable_redis):
    post(client, "subscribe", openid="o-lost")  # pushed to Redis after commit...
    killable_redis.kill()
    killable_redis.start()  # ...and lost with it
    with app.app_context():
        assert sweep(stale_seconds=0) == 1
        assert sweep(stale_seconds=0) == 0  # in flight now: not pushed twice
    run_worker(app, burst=True)
    assert pending_outbox(app) == 0


def test_double_push_runs_once(app, client, live):
    from tasks.queue import push

    post(client, "subscribe", openid="o-twice")
    with app.extensions["welead"].db.sessions() as s:
        oid = s.scalar(select(Outbox.id))
    push(app.extensions["welead"].redis_slow, [oid])
    run_worker(app, burst=True)
    push(app.extensions["welead"].redis_slow, [oid])
    run_worker(app, burst=True)
    with app.extensions["welead"].db.sessions() as s:
        assert s.get(Outbox, oid).attempts == 1


def test_announced_rows_become_jobs(app, client):
    from rq.job import Job

    from tasks.queue import READY, dispatch_once, job_id

    post(client, "subscribe", openid="o-announce")
    conn = app.extensions["welead"].redis_slow
    with app.extensions["welead"].db.sessions() as s:
        oid = s.scalar(select(Outbox.id))
    assert [int(x) for x in conn.lrange(READY, 0, -1)] == [oid]
    assert dispatch_once(conn, wait=0.1) == 1
    assert Job.fetch(job_id(oid), connection=conn).get_status() == "queued"
    assert dispatch_once(conn, wait=0.1) == 0
