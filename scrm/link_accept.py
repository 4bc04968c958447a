"""The redirect's half of a click: ONE insert, like a callback (scrm.accept), and nothing else.

A click by a known follower is an interaction (`kind` link_click) the applier applies: timeline, the link's tags and
points, the `link_clicked` trigger, the `link_clicks` row click-through is counted from. A click nobody can be
named for adds one to the link's anonymous counter instead: no follower is invented.
"""

from __future__ import annotations

import hashlib
import secrets
import time
from typing import Any

from sqlalchemy import bindparam, select, update

from foundation.clock import utcnow
from foundation.db import Database
from foundation.sql import insert_ignore
from scrm.accept import shard
from scrm.link_models import Link
from scrm.links import Target
from scrm.models import Follower, Interaction
from scrm.playbook import store

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
    now = utcnow()
    with db.lazy_reader() as conn:
        found = store.current(conn)  # type: ignore[arg-type]  # cached: one primary-key read a second at most
    with db.write() as conn:
        return conn.execute(insert_ignore(conn, Interaction, ["dedup_key"], "id"), _row(target, openid, carrier, now,
                            found[0] if found else None)).scalar()  # fmt: skip


def anonymous(db: Database, target: Target) -> None:
    with db.write() as conn:
        conn.execute(_ANON, {"lid": target.id})


def known(db: Database, openid: str) -> bool:
    """Is `openid` a follower WeLead has recorded? (OA web authorization gives an openid to anyone who opens a page
    inside WeChat, follower or not.) One indexed read."""
    with db.reader.connect() as conn:
        return conn.execute(_KNOWN, {"openid": openid}).first() is not None


def _row(target: Target, openid: str, carrier: dict[str, Any], now: Any, version: int | None) -> dict[str, Any]:
    nonce = f"{KIND}:{target.id}:{openid}:{time.time_ns()}:{secrets.token_hex(4)}"
    payload = {"link": target.id, "name": target.name, "campaign": target.campaign, "url": target.url,
               "carrier": carrier}  # fmt: skip
    return {
        "dedup_key": hashlib.sha1(nonce.encode()).hexdigest(), "channel": "oa", "kind": KIND, "follower_id": None,
        "openid": openid, "event_key": target.url, "msg_id": None, "content": None, "payload": payload, "at": now,
        "received_at": now, "scene": None, "decision": None, "playbook_version": version, "shard": shard(openid),
    }  # fmt: skip
