"""Setting the scene for the handover tests: reps, leads owned by them (in bulk, straight into the database, with the
"owner_assigned" entry the assignment writes), deactivation as the reps API does it, and what came of it."""

from __future__ import annotations

import itertools
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import insert, select

from foundation.clock import utcnow
from scrm import outbox
from scrm.handover_models import Transfer
from scrm.models import Activity, Follower, Rep
from tasks.queue import push
from tasks.worker import run_worker
from wechat.sandbox_state import SandboxControl

_BATCHES = itertools.count()


def svc(app):
    return app.extensions["welead"]


def sandbox(app) -> SandboxControl:
    return SandboxControl(svc(app).redis_slow)


def add_rep(app, userid: str, *, weight: int = 1, open_cap: int | None = None, active: bool = True) -> int:
    with svc(app).db.transaction() as s:
        rep = Rep(userid=userid, name=userid.title(), weight=weight, open_cap=open_cap, active=active)
        s.add(rep)
        s.flush()
        return rep.id


def add_leads(
    app,
    owner: int,
    count: int,
    *,
    channel: str = "oa",
    prefix: str | None = None,
    stage: str = "new",
    subscribed: bool = True,
    assigned_at: datetime | None = None,
) -> list[int]:
    """`count` followers owned by `owner`, assigned at `assigned_at` (now); their ids."""
    prefix = prefix or f"{'wm' if channel == 'wecom' else 'o'}-{owner}-{next(_BATCHES)}-"
    at = assigned_at or utcnow()
    rows = [
        {"openid": f"{prefix}{i}", "channel": channel, "subscribed": subscribed, "stage": stage, "owner_id": owner,
         "profile": {}, "created_at": at}
        for i in range(count)
    ]  # fmt: skip
    with svc(app).db.transaction() as s:
        s.execute(insert(Follower), rows)
        ids = list(s.scalars(select(Follower.id).where(Follower.openid.in_([r["openid"] for r in rows]))))
        notes = [{"follower_id": i, "kind": "owner_assigned", "at": at, "data": {"rep": owner, "via": "test"}}
                 for i in ids]  # fmt: skip
        s.execute(insert(Activity), notes)
    return sorted(ids)


def act(app, follower_id: int, rep: int, at: datetime) -> None:
    """The rep did something on the lead's card (what the rep pages record)."""
    with svc(app).db.transaction() as s:
        s.add(Activity(follower_id=follower_id, kind="rep_action", at=at, data={"rep": rep, "action": "called"}))


def deactivate(app, rep_id: int, *, resigned: bool = False) -> int:
    """What the reps API does: inactive, stamped, "rep.reassign" queued once per deactivation."""
    with svc(app).db.transaction() as s:
        rep = s.get(Rep, rep_id)
        rep.active, rep.deactivated_at = False, utcnow()
        args: dict[str, Any] = {"rep_id": rep_id, **({"resigned": True} if resigned else {})}
        oid = outbox.add(s, "rep.reassign", args, key=f"rep.reassign:{rep_id}:{rep.deactivated_at.isoformat()}")
    push(svc(app).redis_slow, [oid])
    return oid


def run_jobs(app) -> None:
    run_worker(app, burst=True)


def owners(app, ids: list[int]) -> dict[int, int | None]:
    with svc(app).db.sessions() as s:
        return dict(s.execute(select(Follower.id, Follower.owner_id).where(Follower.id.in_(ids))).all())


def transfers(app, *where: Any) -> list[Transfer]:
    with svc(app).db.sessions() as s:
        return list(s.scalars(select(Transfer).where(*where).order_by(Transfer.id)))


def timeline(app, follower_id: int, kind: str) -> list[dict[str, Any]]:
    with svc(app).db.sessions() as s:
        query = select(Activity.data).where(Activity.follower_id == follower_id, Activity.kind == kind)
        return list(s.scalars(query.order_by(Activity.id)))


def days_ago(days: float) -> datetime:
    return utcnow() - timedelta(days=days)
