"""Shared by the lead-form and staff tests: events and booths, messages through the simulator, what was stored."""

from __future__ import annotations

import itertools
import re
import time
from datetime import timedelta
from typing import Any

from defusedxml import ElementTree
from sqlalchemy import select

from foundation.clock import utcnow
from scrm.event_models import Booth, Event
from scrm.lead_capture import LEADS
from scrm.models import Interaction
from scrm.staff_duty import DUTY
from tests.helpers import post

_msg = itertools.count(9_100_000)
_clock = itertools.count(int(time.time()) - 50_000)


def svc(app):
    return app.extensions["welead"]


def make_event(app, slug: str = "expo", booths: tuple[str, ...] = ("A1", "A2"), form: Any = None) -> dict[str, int]:
    """An event with booths (slug → id), written as the events API would store them."""
    now = utcnow()
    with svc(app).db.transaction() as s:
        event = Event(slug=slug, name=f"{slug} 2026", starts_at=now - timedelta(hours=2),
                      ends_at=now + timedelta(days=1), form=form)  # fmt: skip
        s.add(event)
        s.flush()
        ids = {"event": event.id}
        for slug_ in booths:
            booth = Booth(event_id=event.id, slug=slug_, name=f"Booth {slug_}")
            s.add(booth)
            s.flush()
            ids[slug_] = booth.id
    return ids


def scan(client, openid: str, scene: str, kind: str = "scan", **options) -> str:
    r = post(client, kind, openid=openid, scene=scene, create_time=next(_clock), **options)
    assert r.status_code == 200
    return r.get_data(as_text=True)


def say(client, openid: str, text: str, msg_id: int | None = None, **options) -> str:
    r = post(client, "text", openid=openid, content=text, msg_id=msg_id or next(_msg), **options)
    assert r.status_code == 200
    return r.get_data(as_text=True)


def content(xml: str) -> str | None:
    """The reply's text as a WeChat client reads it (the XML parsed: split CDATA sections joined)."""
    if not xml.startswith("<xml>"):
        return None
    node = ElementTree.fromstring(xml).find("Content")
    return node.text if node is not None else None


def leads(app) -> list[dict[str, Any]]:
    with svc(app).db.sessions() as s:
        return [dict(r._mapping) for r in s.connection().execute(select(LEADS).order_by(LEADS.c.id))]


def duties(app) -> list[dict[str, Any]]:
    with svc(app).db.sessions() as s:
        return [dict(r._mapping) for r in s.connection().execute(select(DUTY).order_by(DUTY.c.id))]


def last_decision(app, openid: str) -> dict[str, Any]:
    with svc(app).db.sessions() as s:
        query = select(Interaction.decision).where(Interaction.openid == openid).order_by(Interaction.id.desc())
        return s.scalars(query).first()


LINK = re.compile(r'href="(http[^"]+/forms/lead\?t=([^"]+))"')


def fill(client, openid: str, *answers: str) -> list[str]:
    """Answer the form's questions in order; the replies' texts."""
    return [content(say(client, openid, a)) or "" for a in answers]
