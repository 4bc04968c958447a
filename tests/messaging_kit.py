"""Shared by the delivery, broadcast, template, rate-limit and notify tests: settings, followers, draining the queue."""

from __future__ import annotations

import time
from typing import Any

from sqlalchemy import select

from foundation.clock import utcnow
from scrm.delivery_models import PENDING, Delivery
from scrm.models import Follower, FollowerTag, Tag
from tasks.pump import pump
from tasks.worker import run_worker
from wechat.sandbox_state import SandboxControl

# Tests must not depend on the hour they run at, nor wait for real backoffs and heartbeats.
FAST = {
    "quiet_hours": "off",
    "rate": 2000.0,
    "retry_base": 0.02,
    "retry_cap": 0.05,
    "heartbeat": 2,
    "lost_after": 1,
}


def with_messaging(settings: Any, **rules: Any) -> Any:
    extra = dict(settings.extra or {})
    extra["messaging"] = {**FAST, **rules}
    return settings.replace(extra=extra)


def svc(app):
    return app.extensions["welead"]


def sandbox(app) -> SandboxControl:
    return SandboxControl(svc(app).redis_slow)


def add_followers(app, n: int, prefix: str = "o-", tags: tuple[str, ...] = (), subscribed: bool = True) -> list[str]:
    """`n` followers in one transaction (bulk insert), optionally tagged."""
    openids = [f"{prefix}{i:06d}" for i in range(n)]
    now = utcnow()
    with svc(app).db.transaction() as s:
        s.execute(
            Follower.__table__.insert(),
            [
                {
                    "openid": o,
                    "channel": "oa",
                    "subscribed": subscribed,
                    "stage": "new",
                    "profile": {},
                    "created_at": now,
                    "subscribed_at": now,
                }
                for o in openids
            ],
        )
        for name in tags:
            tag = s.scalar(select(Tag).where(Tag.name == name))
            if tag is None:
                tag = Tag(name=name, created_at=now)
                s.add(tag)
                s.flush()
            ids = s.scalars(select(Follower.id).where(Follower.openid.in_(openids)))
            s.execute(
                FollowerTag.__table__.insert(), [{"follower_id": i, "tag_id": tag.id, "added_at": now} for i in ids]
            )
    return openids


def rows(app, *where) -> list[Delivery]:
    with svc(app).db.sessions() as s:
        return list(s.scalars(select(Delivery).where(*where).order_by(Delivery.id)))


def pending(app) -> int:
    return len(rows(app, Delivery.state.in_(PENDING)))


def drain(app, timeout: float = 30.0) -> None:
    """Run a burst worker and the pump until no delivery is queued or sending (deferrals excepted by the caller)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        run_worker(app, burst=True)
        with app.app_context():
            pump()
        if not pending(app):
            return
        time.sleep(0.05)
    raise AssertionError(f"deliveries still pending after {timeout}s: {pending(app)}")


def template_sends(app) -> list[dict]:
    return sandbox(app).sent("oa/message/template/send")


def messages_per_openid(app) -> dict[str, set]:
    """Distinct msgids WeChat handed out per follower: a repeat under the same client_msg_id is not a new message."""
    out: dict[str, set] = {}
    for rec in template_sends(app):
        if rec["errcode"] == 0:
            out.setdefault(rec["body"]["touser"], set()).add(rec["answer"]["msgid"])
    return out
