"""Shared by the events tests: an event with booths made through the API, scans through the simulator."""

from __future__ import annotations

import itertools
import time
from datetime import UTC, datetime, timedelta

from sqlalchemy import select

from scrm.event_models import Checkin
from tests.helpers import post
from wechat.simulate import read_reply

_clock = itertools.count(int(time.time()) - 3600)


def iso(at: datetime) -> str:
    return at.replace(tzinfo=UTC).isoformat()


def make_event(client, headers, slug: str = "expo", booths=("A1", "B2"), **body) -> dict:
    now = datetime.now(UTC).replace(tzinfo=None)
    payload = {"slug": slug, "name": body.pop("name", "华东展会 Expo"), "starts_at": iso(now - timedelta(days=1)),
               "ends_at": iso(now + timedelta(days=2)),
               "booths": [{"slug": b, "name": f"展位 {b}"} for b in booths], **body}  # fmt: skip
    r = client.post("/api/v1/events", json=payload, headers=headers)
    assert r.status_code == 201, r.json
    return r.json


def scan(client, openid: str, scene: str, kind: str = "scan", at: int | None = None, apply: bool = True) -> str:
    """A booth scan (SCAN, or `subscribe` via the code for a new follower); the reply's XML."""
    r = post(client, kind, openid=openid, scene=scene, create_time=at or next(_clock), apply=apply)
    assert r.status_code == 200
    return read_reply(r.data, client.application.extensions["welead"].settings, "oa")


def checkins(app) -> list[Checkin]:
    with app.extensions["welead"].db.sessions() as session:
        return list(session.scalars(select(Checkin).order_by(Checkin.id)))
