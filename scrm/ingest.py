"""One inbound interaction, one transaction: follower upsert, the interaction row (deduplicated), state changes and
outbox rows. Handlers drive it through `Visit`; nothing here knows about XML or HTTP.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from functools import cache
from typing import Any

from sqlalchemy import bindparam, select
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.orm import Session

from foundation.clock import utcnow
from foundation.db import Database
from foundation.sql import insert_ignore
from scrm import outbox, playbook
from scrm.models import Activity, Follower, Interaction, Rep


@dataclass(frozen=True)
class Event:
    """What scrm needs of an inbound callback; handlers build it from wechat.Inbound."""

    channel: str
    kind: str
    openid: str
    dedup_key: str
    created: int
    event_key: str | None = None
    msg_id: str | None = None
    content: str | None = None
    scene: str | None = None
    payload: dict[str, Any] = field(default_factory=dict)

    @property
    def at(self) -> datetime:
        if self.created <= 0:
            return utcnow()
        return datetime.fromtimestamp(self.created, UTC).replace(tzinfo=None)


# Callbacks about the follower that the follower did not make: they do not count as activity (segments' active_after).
NOT_ACTIVITY = frozenset({"templatesendjobfinish", "masssendjobfinish", "unsubscribe"})

_FOLLOWER = select(Follower).where(Follower.openid == bindparam("openid"))


@cache
def _new_follower(dialect: str) -> Any:
    """INSERT ... ON CONFLICT (openid) DO NOTHING RETURNING the follower, as an ORM object."""
    stmt = (postgresql if dialect == "postgresql" else sqlite).insert(Follower)
    return stmt.on_conflict_do_nothing(index_elements=["openid"]).returning(Follower)


class Visit:
    """The unit of work for one inbound event. `duplicate` is True when WeChat already delivered it: no effects."""

    def __init__(self, session: Session, event: Event, *, with_follower: bool = True) -> None:
        self.session = session
        self.event = event
        self.follower: Follower | None = self._follower() if with_follower else None
        self.interaction_id = self._record()
        self.duplicate = self.interaction_id is None
        self.outbox_ids: list[int] = []
        self.answers: list[dict[str, Any]] = []  # passive replies chosen by handlers/rules: {"text": ...}
        self.signals: list[tuple[str, dict[str, Any]]] = []  # playbook triggers raised by effects (checked_in...)
        if not self.duplicate and self.follower is not None and event.kind not in NOT_ACTIVITY:
            self.follower.last_active_at = max(self.follower.last_active_at or event.at, event.at)

    def _follower(self) -> Follower:
        ev, session = self.event, self.session
        follower = session.scalar(_FOLLOWER, {"openid": ev.openid})
        if follower is None:  # new: insert and load in one statement; a concurrent insert wins, then read it
            row = {"openid": ev.openid, "channel": ev.channel, "profile": {}}
            follower = session.scalar(_new_follower(session.get_bind().dialect.name), row)
            if follower is None:
                follower = session.scalar(_FOLLOWER, {"openid": ev.openid})
        assert follower is not None
        return follower

    def _record(self) -> int | None:
        ev = self.event
        row = {
            "dedup_key": ev.dedup_key,
            "channel": ev.channel,
            "kind": ev.kind,
            "follower_id": self.follower.id if self.follower else None,
            "openid": ev.openid,
            "event_key": ev.event_key,
            "msg_id": ev.msg_id,
            "content": ev.content,
            "payload": ev.payload,
            "at": ev.at,
        }
        stmt = insert_ignore(self.session, Interaction, ["dedup_key"], "id")
        return self.session.connection().execute(stmt, row).scalar()

    # --- effects used by handlers -------------------------------------------------------------------------------

    def subscribe(self, scene: str | None) -> None:
        f = self._require()
        f.subscribed = True
        f.subscribed_at = self.event.at
        if scene and not f.source:
            f.source = scene
        self.enqueue(
            "profile.fetch",
            {"openid": f.openid},
            key=f"profile:{f.openid}:{self.interaction_id}",
        )

    def unsubscribe(self) -> None:
        f = self._require()
        f.subscribed = False
        f.unsubscribed_at = self.event.at

    def scanned(self, scene: str | None) -> None:
        f = self._require()
        if scene and not f.source:
            f.source = scene

    def contact_added(self, rep_userid: str, state: str | None) -> None:
        """A WeCom external contact added a rep: the contact is reachable and owned by that rep unless owned."""
        f = self._require()
        f.channel = "wecom"
        f.subscribed = True
        f.subscribed_at = self.event.at
        if state and not f.source:
            f.source = state
        if rep_userid and f.owner_id is None:
            f.owner_id = rep_id(self.session, rep_userid)
            self.note("owner_assigned", {"rep": f.owner_id, "via": "wecom_contact"})

    def note(self, kind: str, data: dict[str, Any]) -> None:
        """A timeline entry caused by this interaction."""
        f = self._require()
        self.session.add(
            Activity(
                follower_id=f.id,
                kind=kind,
                at=utcnow(),
                interaction_id=self.interaction_id,
                data=data,
            )
        )

    def signal(self, kind: str, **facts: Any) -> None:
        """Raise a playbook trigger (form_submitted, checked_in...); rules run after the effect, in this transaction."""
        self.signals.append((kind, facts))

    def enqueue(self, task: str, args: dict[str, Any], key: str | None = None) -> None:
        # The outbox row needs nothing the session holds: the follower's pending changes are flushed once, at commit.
        with self.session.no_autoflush:
            oid = outbox.add(self.session, task, args, key=key)
        if oid is not None:
            self.outbox_ids.append(oid)

    def _require(self) -> Follower:
        if self.follower is None:
            raise RuntimeError(f"{self.event.kind} needs a follower")
        return self.follower


def process(db: Database, event: Event, effect: Callable[[Visit], None] | None, *, with_follower: bool = True) -> Visit:
    """Record `event`, apply `effect`, then the playbook's rules, in one transaction; a duplicate applies nothing."""
    with db.transaction() as session:
        visit = Visit(session, event, with_follower=with_follower)
        if not visit.duplicate and effect is not None:
            effect(visit)
        if not visit.duplicate:
            playbook.run(visit)
        return visit


def rep_id(session: Session, userid: str) -> int:
    """The rep's id, creating the rep on first sight (WeCom members appear in callbacks before anyone lists them)."""
    found = session.scalar(select(Rep.id).where(Rep.userid == userid))
    if found is None:
        session.execute(insert_ignore(session, Rep, ["userid"]), {"userid": userid, "name": userid})
        found = session.scalar(select(Rep.id).where(Rep.userid == userid))
    assert found is not None
    return found
