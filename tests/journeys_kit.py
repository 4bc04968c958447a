"""Shared by the journey tests: a playbook loaded, followers made, runs started and stepped at chosen times."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import func, select

from scrm import guards, journeys, tags
from scrm.journey_models import JourneyRun, JourneyStep
from scrm.models import Activity, Follower, Outbox
from scrm.playbook import store

NO_QUIET = guards.SendRules.load(environ={}, overrides={"quiet_hours": "off"})


def db(app):
    return app.extensions["welead"].db


def load(app, text: str) -> None:
    with db(app).transaction() as session:
        store.load(session, text)


def follower(app, openid: str, *tagged: str, subscribed: bool = True) -> int:
    with db(app).transaction() as session:
        row = Follower(openid=openid, subscribed=subscribed)
        session.add(row)
        session.flush()
        for name in tagged:
            tags.add(session, row.id, name)
        return row.id


def tag(app, openid: str, name: str, at: datetime | None = None) -> None:
    with db(app).transaction() as session:
        fid = session.scalar(select(Follower.id).where(Follower.openid == openid))
        tags.add(session, fid, name, at)


def start(app, openid: str, journey: str, now: datetime, key: str | None = None, **kw: Any) -> journeys.Outcome:
    with db(app).transaction() as session:
        out = journeys.start(
            session, openid, journey, key or f"t:{openid}:{now}", now=now, rules=kw.pop("rules", NO_QUIET), **kw
        )
    assert out is not None
    return out


def step(app, now: datetime, rules: guards.SendRules = NO_QUIET, limit: int = 500) -> journeys.Outcome:
    with db(app).transaction() as session:
        return journeys.run_due(session, now=now, limit=limit, rules=rules)


def run_of(app, openid: str, journey: str | None = None) -> JourneyRun:
    with db(app).sessions() as session:
        query = (
            select(JourneyRun).join(Follower, Follower.id == JourneyRun.follower_id).where(Follower.openid == openid)
        )
        if journey:
            query = query.where(JourneyRun.journey == journey)
        row = session.scalars(query.order_by(JourneyRun.id.desc())).first()
        session.expunge_all()
        return row


def executed(app, openid: str) -> list[tuple[str, str]]:
    with db(app).sessions() as session:
        return journeys.executed(session, run_of(app, openid).id)


def templates(app, openid: str | None = None) -> list[str]:
    with db(app).sessions() as session:
        rows = session.scalars(select(Outbox).where(Outbox.task == "template.send").order_by(Outbox.id))
        return [r.args["template"] for r in rows if openid is None or r.args["openid"] == openid]


def count(app, model: Any, *where: Any) -> int:
    with db(app).sessions() as session:
        return session.scalar(select(func.count()).select_from(model).where(*where))


def step_notes(app) -> int:
    return count(app, Activity, Activity.kind == "journey_step")


def step_rows(app) -> int:
    return count(app, JourneyStep)
