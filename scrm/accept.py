"""The request's half of an inbound event: decide the passive reply, then ONE insert of the interaction.

No ORM session, no follower writes, no effects: the applier (scrm.applier) does those later, in batches. A retried
callback hits the unique dedup key and gets back what the first delivery decided, so it answers the same.
"""

from __future__ import annotations

import hashlib
import secrets
import time
import zlib
from dataclasses import dataclass
from typing import Any

import redis
from sqlalchemy import bindparam, select

from foundation.clock import utcnow
from foundation.db import Database
from foundation.sql import insert_ignore
from scrm import booth_replies, chatbot, event_turns
from scrm.chatbot_llm import Policy
from scrm.ingest import Event
from scrm.models import Interaction
from scrm.playbook import store
from scrm.playbook.decide import decide

SHARDS = 64  # followers are hashed into this many partitions; appliers lock whole partitions
_I = Interaction.__table__
_STORED = select(_I.c.decision).where(_I.c.dedup_key == bindparam("key"))


@dataclass(frozen=True, slots=True)
class Accepted:
    id: int | None  # None: a retry of an interaction recorded before
    decision: dict[str, Any] | None

    @property
    def reply(self) -> dict[str, Any] | None:
        return (self.decision or {}).get("reply")


def shard(openid: str) -> int:
    return zlib.crc32(openid.encode("utf-8", "surrogatepass")) % SHARDS


def accept(db: Database, event: Event, fast: redis.Redis | None = None, llm: Policy | None = None) -> Accepted:
    """Decide (reads only), then record in one short write transaction. `fast`: the Redis of the conversation
    state (scrm.conversations; None or unreachable: the chatbot answers without state); `llm`: language-model
    answers are on (scrm.chatbot_llm)."""
    now = utcnow()
    with db.lazy_reader() as conn:
        decision = decide(conn, event, now)  # type: ignore[arg-type]  # reads through the lazy connection
        stored = decision.as_json()
        stored = booth_replies.decide(conn, event, stored, fast)  # type: ignore[arg-type]  # a booth scan's reply
        bot = event_turns.turn(conn, event, stored, fast)  # type: ignore[arg-type]  # staff codes, booth forms
        bot = bot or chatbot.turn(conn, event, stored, fast, llm=llm)  # type: ignore[arg-type]  # None: the playbook's stands
        if bot is not None:
            stored = bot.decision
        row = _row(event, now, stored, decision.version)
    with db.write() as conn:
        new = insert(conn, row)
    if new is None:  # a retry: answer what the first delivery was answered
        with db.reader.connect() as conn:
            return Accepted(None, conn.execute(_STORED, {"key": event.dedup_key}).scalar())
    if bot is not None:  # only a new interaction moves the conversation on
        chatbot.commit(fast, event.openid, bot)
    return Accepted(new, stored)


def record(db: Database, event: Event, decision: dict[str, Any] | None) -> int | None:
    """The one insert of an interaction decided outside a callback (an H5 form sent); None: recorded before."""
    with db.write() as conn:
        return insert(conn, _row(event, utcnow(), decision, None))


def insert(conn: Any, row: dict[str, Any]) -> int | None:
    """The interaction's one insert; its id, or None when its dedup key was recorded before (a retry)."""
    return conn.execute(insert_ignore(conn, Interaction, ["dedup_key"], "id"), row).scalar()


def playbook_version(db: Database) -> int | None:
    """The active playbook's version, for an interaction recorded outside a callback (cached: one read a second)."""
    with db.lazy_reader() as conn:
        found = store.current(conn)  # type: ignore[arg-type]
    return found[0] if found else None


def page_row(kind: str, openid: str, event_key: str, payload: dict[str, Any], now: Any,
             version: int | None) -> dict[str, Any]:  # fmt: skip
    """An interaction one of WeLead's own pages saw (a click, a page view): WeChat gave it no dedup key, and every
    one is its own row, so the key is a fresh unique one."""
    nonce = f"{kind}:{event_key}:{openid}:{time.time_ns()}:{secrets.token_hex(6)}"
    return {
        "dedup_key": hashlib.sha1(nonce.encode()).hexdigest(), "channel": "oa", "kind": kind, "follower_id": None,
        "openid": openid, "event_key": event_key, "msg_id": None, "content": None, "payload": payload, "at": now,
        "received_at": now, "scene": None, "decision": None, "playbook_version": version, "shard": shard(openid),
    }  # fmt: skip


def _row(event: Event, now: Any, decision: dict[str, Any] | None, version: int | None) -> dict[str, Any]:
    return {
        "dedup_key": event.dedup_key,
        "channel": event.channel,
        "kind": event.kind,
        "follower_id": None,
        "openid": event.openid,
        "event_key": event.event_key,
        "msg_id": event.msg_id,
        "content": event.content,
        "payload": event.payload,
        "at": event.at,
        "received_at": now,
        "scene": event.scene,
        "decision": decision,
        "playbook_version": version,
        "shard": shard(event.openid),
    }
