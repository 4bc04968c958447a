"""Shared by tests/test_assignment*.py and tests/test_team_codes*.py: reps, codes, callbacks at fixed instants, and
the state assignment is judged by (owners, timeline entries, outbox rows, daily loads)."""

from __future__ import annotations

from collections import Counter
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import select

from scrm.assignment_models import RepDayLoad
from scrm.models import Activity, Follower, Interaction, Outbox, Rep
from scrm.playbook import store
from tests.helpers import post

# Wednesday 2026-01-07 10:00 in Asia/Shanghai (02:00 UTC): callbacks carry CreateTimes from here, one second apart.
T0 = int(datetime(2026, 1, 7, 2, 0, tzinfo=UTC).timestamp())
WORKDAY = {"weekly": {d: ["09:00-18:00"] for d in ("mon", "tue", "wed", "thu", "fri")}}


def svc(app):
    return app.extensions["welead"]


def at(seconds: int = 0) -> datetime:
    """T0 + `seconds`, as the naive UTC the database stores."""
    return datetime.fromtimestamp(T0 + seconds, UTC).replace(tzinfo=None)


class Clock:
    """Distinct CreateTimes for callbacks (events dedup on FromUserName + CreateTime + Event)."""

    def __init__(self, start: int = T0) -> None:
        self.now = start

    def __call__(self) -> int:
        self.now += 1
        return self.now


def add_rep(app, userid: str, **fields: Any) -> int:
    """A confirmed, active rep (unless `fields` say otherwise) written directly: the reps API is not under test."""
    with svc(app).db.transaction() as s:
        rep = Rep(userid=userid, name=fields.pop("name", userid), **fields)
        s.add(rep)
        s.flush()
        return rep.id


def change_rep(app, rep_id: int, **fields: Any) -> None:
    with svc(app).db.transaction() as s:
        rep = s.get(Rep, rep_id)
        for name, value in fields.items():
            setattr(rep, name, value)


def load_playbook(app, text: str) -> None:
    with svc(app).db.transaction() as s:
        store.load(s, text)


def scan(client, openid: str, scene: str, created: int, *, first: bool = True, apply: bool = True):
    """A subscribe through the code (or, `first=False`, the SCAN of someone already following)."""
    kind = "subscribe" if first else "scan"
    return post(client, kind, openid=openid, scene=scene, create_time=created, apply=apply)


def wecom_add(client, external_userid: str, userid: str, state: str, created: int, apply: bool = True):
    return post(client, "wecom-add-contact", external_userid=external_userid, userid=userid, state=state,
                create_time=created, apply=apply)  # fmt: skip


def follower(app, openid: str) -> Follower:
    with svc(app).db.sessions() as s:
        found = s.scalar(select(Follower).where(Follower.openid == openid))
        assert found is not None, openid
        return found


def owners(app) -> Counter:
    """How many followers each rep id owns (None: unowned)."""
    with svc(app).db.sessions() as s:
        return Counter(s.scalars(select(Follower.owner_id)))


def activities(app, openid: str, kind: str) -> list[dict[str, Any]]:
    with svc(app).db.sessions() as s:
        query = (
            select(Activity.data)
            .join(Follower, Follower.id == Activity.follower_id)
            .where(Follower.openid == openid, Activity.kind == kind)
            .order_by(Activity.id)
        )
        return list(s.scalars(query))


def outbox(app, task: str) -> list[Outbox]:
    with svc(app).db.sessions() as s:
        return list(s.scalars(select(Outbox).where(Outbox.task == task).order_by(Outbox.id)))


def loads(app) -> dict[int, int]:
    """Leads given per rep on T0's local day (rep_day_loads)."""
    with svc(app).db.sessions() as s:
        return {r.rep_id: r.assigned for r in s.scalars(select(RepDayLoad))}


def failed(app) -> list[str]:
    with svc(app).db.sessions() as s:
        return list(s.scalars(select(Interaction.apply_error).where(Interaction.apply_error.is_not(None))))
