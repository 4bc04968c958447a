"""Faults during a broadcast, with real worker processes: kill -9 a worker, restart Redis, 10% of sends busy.

WeChat's side (the sandbox) runs as an app of its own on the session's Redis, so its record of what was sent
survives the restart of the Redis WeLead uses. "Exactly once" is read from that record: distinct msgids per openid
(a resend under the same client_msg_id gets the first msgid back: WeChat delivered one message).
"""

from __future__ import annotations

import os
import subprocess
import time
from collections.abc import Callable, Iterator

import pytest
import redis

from scrm.delivery_models import Delivery
from tasks.pump import pump
from tests.conftest import ENV_VARS
from tests.helpers import FlaskProcesses, running_url, serve
from tests.messaging_kit import FAST, add_followers, drain, pending, rows, with_messaging
from wechat.sandbox_state import K, SandboxControl
from welead.app import create_app
from welead.embedded import EmbeddedRedis

RULES = {**FAST, "rate": 60.0, "batch": 10}
ENV = {
    "WELEAD_QUIET_HOURS": "off",
    "WELEAD_SEND_RATE": "60",
    "WELEAD_SEND_BATCH": "10",
    "WELEAD_RETRY_BASE": "0.02",
    "WELEAD_RETRY_CAP": "0.05",
    "WELEAD_SEND_HEARTBEAT": "2",
    "WELEAD_SEND_LOST_AFTER": "1",
}
SEND = "oa/message/template/send"


@pytest.fixture
def redis_url(killable_redis: EmbeddedRedis) -> str:
    """WeLead's Redis in this module: one the tests may kill and restart."""
    return running_url(killable_redis)


@pytest.fixture
def wechat(settings, redis_server) -> Iterator[tuple[str, SandboxControl]]:
    """The sandbox served over HTTP by its own app, on the session Redis."""
    side = create_app(settings.replace(redis_url=redis_server.url))
    control = SandboxControl(redis.Redis.from_url(redis_server.url))
    control.reset()
    try:
        with serve(side) as base:
            yield base, control
    finally:  # its pooled connections closed now, not by the garbage collector in some later test
        side.extensions["welead"].close()


@pytest.fixture
def settings(settings):
    return with_messaging(settings, **RULES)


@pytest.fixture
def wired(app, wechat):
    """The app calls the sandbox app; returns the sandbox control."""
    base, control = wechat
    svc = app.extensions["welead"]
    svc.settings = svc.settings.replace(
        wechat_api_base=f"{base}/sandbox/oa/cgi-bin/", wecom_api_base=f"{base}/sandbox/wecom/cgi-bin/"
    )
    return control


class Workers(FlaskProcesses):
    """`flask worker` processes against this test's database and Redis."""

    def __init__(self, app, tmp_path) -> None:
        s = app.extensions["welead"].settings
        env = {k: v for k, v in os.environ.items() if k not in ENV_VARS and not k.startswith("WELEAD_")}
        env.update(
            ENV,
            DATABASE_URL=s.database_url,
            REDIS_URL=app.extensions["welead"].redis_url,
            WECHAT_API_BASE=s.wechat_api_base,
            WECOM_API_BASE=s.wecom_api_base,
            PYTHONUNBUFFERED="1",
        )
        super().__init__(env, tmp_path, "worker", "worker")


@pytest.fixture
def workers(app, tmp_path) -> Iterator[Workers]:
    w = Workers(app, tmp_path)
    yield w
    w.stop()


def wait_for(what: Callable[[], bool], app, timeout: float = 60.0) -> None:
    """Poll `what`, running the pump as the scheduler would (tolerating a Redis that is down)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if what():
            return
        try:
            with app.app_context():
                pump()
        except redis.RedisError:
            pass
        time.sleep(0.3)
    raise AssertionError(f"timed out; deliveries by state: {states(app)}")


def states(app) -> dict[str, int]:
    out: dict[str, int] = {}
    for r in rows(app):
        out[r.state] = out.get(r.state, 0) + 1
    return out


def sent_count(control: SandboxControl) -> int:
    return len(control.sent(SEND, ok_only=True))


def once_each(control: SandboxControl, openids: list[str]) -> None:
    msgids: dict[str, set] = {}
    for rec in control.sent(SEND, ok_only=True):
        msgids.setdefault(rec["body"]["touser"], set()).add(rec["answer"]["msgid"])
    assert {o: len(ids) for o, ids in msgids.items()} == dict.fromkeys(openids, 1)


def broadcast(client, auth_headers, key: str) -> int:
    body = {"segment": {"tag": "vip"}, "template": "event_checkin", "data": {}, "key": key}
    r = client.post("/api/v1/broadcasts", json=body, headers=auth_headers)
    assert r.status_code == 202, r.json
    return r.json["id"]


def kill_mid_request(proc: subprocess.Popen, control: SandboxControl) -> None:
    """SIGKILL the worker while its request is inside the sandbox: recorded (WeChat has it), not yet answered."""
    control.set_delay(0.5, SEND)
    seen = control.redis.llen(K.sent)
    deadline = time.monotonic() + 10
    while control.redis.llen(K.sent) == seen and time.monotonic() < deadline:
        time.sleep(0.002)
    proc.kill()
    proc.wait(5)
    control.set_delay(0, SEND)


def test_worker_killed_mid_broadcast(app, client, auth_headers, wired, workers):
    openids = add_followers(app, 150, tags=("vip",))
    first = workers.start()
    broadcast(client, auth_headers, "kill-test")
    wait_for(lambda: sent_count(wired) >= 40, app)
    kill_mid_request(first, wired)  # no cleanup: its job stays "started", its chunk "sending", in doubt
    assert states(app).get("sending", 0) >= 1
    workers.start()
    wait_for(lambda: pending(app) == 0, app)
    assert states(app) == {"sent": 150}
    once_each(wired, openids)
    resent = [r for r in rows(app) if r.attempts > 1]  # its chunk was in doubt: sent again, same client_msg_id
    assert resent
    twice = [c for c in wired.sent(SEND, ok_only=True) if c["body"]["touser"] in {r.openid for r in resent}]
    by_openid: dict[str, list] = {}
    for call in twice:
        by_openid.setdefault(call["body"]["touser"], []).append(call["answer"]["msgid"])
    assert any(len(ids) == 2 for ids in by_openid.values())  # the one inside WeChat when the worker died...
    assert all(len(set(ids)) == 1 for ids in by_openid.values())  # ...got its first msgid back: one message


def test_redis_restarted_mid_broadcast(app, client, auth_headers, wired, workers, killable_redis):
    openids = add_followers(app, 200, tags=("vip",))
    workers.start()
    workers.start()
    broadcast(client, auth_headers, "redis-test")
    wait_for(lambda: sent_count(wired) >= 60, app)
    killable_redis.kill()  # RQ's queue, the jobs, heartbeats, the token bucket: all gone
    time.sleep(1.0)
    killable_redis.start()
    wait_for(lambda: pending(app) == 0, app, timeout=90)
    assert states(app) == {"sent": 200}
    once_each(wired, openids)


def test_ten_percent_busy_all_delivered_with_retries_counted(app, client, auth_headers, live):
    from tests.messaging_kit import sandbox

    app.extensions["welead"].settings = with_messaging(app.extensions["welead"].settings, rate=2000.0, batch=25)
    openids = add_followers(app, 300, tags=("vip",))
    control = sandbox(app)
    control.fail_fraction(0.1, SEND)
    bid = broadcast(client, auth_headers, "busy-test")
    drain(app, timeout=60)
    status = client.get(f"/api/v1/broadcasts/{bid}", headers=auth_headers).json
    busy = [r for r in control.sent(SEND) if r["errcode"] == -1]
    assert status["state"] == "done" and status["counts"] == {"sent": 300}
    assert status["retries"] == len(busy) > 0
    once_each(control, openids)


def test_cli_send_waits_with_a_progress_bar(app, runner, wired, workers):
    add_followers(app, 40, tags=("vip",))
    workers.start()
    out = runner.invoke(args=["broadcast", "send", "--segment", '{"tag": "vip"}', "--template", "event_checkin"])
    assert out.exit_code == 0, out.output
    assert "enqueue" in out.output and "send" in out.output and "broadcast 1: done" in out.output
    assert '"sent": 40' in out.output and sent_count(wired) == 40
    assert all(r.state == "sent" for r in rows(app, Delivery.broadcast_id == 1))
