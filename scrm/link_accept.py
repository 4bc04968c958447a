"""The redirect's half of a click: ONE insert, like a callback (scrm.accept), and nothing else.

A click by a known follower is an interaction (`kind` link_click) the applier applies: timeline, the link's tags and
points, the `link_clicked` trigger, the `link_clicks` row click-through is counted from. A click nobody can be
named for adds one to the link's anonymous counter instead: no follower is invented.
"""

from __future__ import annotations

from typing import Any

from sqlalchemy import bindparam, select, update

from foundation.clock import utcnow
from foundation.db import Database
from scrm.accept import insert, page_row, playbook_version
from scrm.link_models import Link
from scrm.links import Target
from scrm.models import Follower

KIND = "link_click"
_ANON = (
    update(Link.__table__)
    .where(Link.__table__.c.id == bindparam("lid"))
    .values(anonymous_clicks=Link.__table__.c.anonymous_clicks + 1)
)
_KNOWN = select(Follower.__table__.c.id).where(Follower.__table__.c.openid == bindparam("openid"))


def click(db: Database, target: Target, openid: str, carrier: dict[str, Any]) -> int | None:
    """Record a follower's click; the new interaction's id. Every click is its own row (a burst is all kept in the
    timeline; click-through counts a follower once per message)."""
    payload = {"link": target.id, "name": target.name, "campaign": target.campaign, "url": target.url,
               "carrier": carrier}  # fmt: skip
    row = page_row(KIND, openid, target.url, payload, utcnow(), playbook_version(db))
    with db.write() as conn:
        return insert(conn, row)


def anonymous(db: Database, target: Target) -> None:
    with db.write() as conn:
        conn.execute(_ANON, {"lid": target.id})


def known(db: Database, openid: str) -> bool:
    """Is `openid` a follower WeLead has recorded? (OA web authorization gives an openid to anyone who opens a page
    inside WeChat, follower or not.) One indexed read."""
    with db.reader.connect() as conn:
        return conn.execute(_KNOWN, {"openid": openid}).first() is not None
