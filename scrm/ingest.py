"""Applying one inbound interaction: the `Visit` the applier builds for it (the follower, the interaction already
recorded by the request, the reply rules the request fired), and the state changes effects make through it.
Nothing here knows about XML or HTTP.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

from sqlalchemy import select, update
from sqlalchemy.orm import Session

from foundation.clock import utcnow
from foundation.sql import insert_ignore
from scrm import outbox
from scrm.models import Activity, Follower, Rep
from scrm.playbook.shared import Shared

_F = Follower.__table__


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
    def has_follower(self) -> bool:
        """WeCom app messages come from corp members, not followers: recorded, no follower row."""
        return bool(self.openid) and (self.channel == "oa" or self.kind == "change_external_contact")

    @property
    def at(self) -> datetime:
        if self.created <= 0:
            return utcnow()
        return datetime.fromtimestamp(self.created, UTC).replace(tzinfo=None)


# Callbacks about the follower that the follower did not make: they do not count as activity (segments' active_after).
NOT_ACTIVITY = frozenset({"templatesendjobfinish", "masssendjobfinish", "unsubscribe"})


class Visit:
    """The unit of work for one interaction inside an applier batch. `decided`: the reply rules the request fired."""

    def __init__(
        self,
        session: Session,
        event: Event,
        follower: Follower | None,
        interaction_id: int,
        decided: frozenset[str] | None = None,
    ) -> None:
        self.session = session
        self.event = event
        self.follower = follower
        self.interaction_id = interaction_id
        self.decided = decided
        self.decision: dict[str, Any] | None = None  # the stored decision (the chatbot's part: scrm.faq_effects)
        self.outbox_ids: list[int] = []
        self.answers: list[dict[str, Any]] = []  # replies the rules rendered again (the request already sent one)
        self.signals: list[tuple[str, dict[str, Any]]] = []  # playbook triggers raised by effects (checked_in...)
        self.firing: str | None = None  # the rule being fired when an effect raised
        self.shared: Shared | None = None  # what the applier batch's engine runs share
        self.book: Any = None  # the playbook version applying this interaction (its `assignment` setting)
        self.idle: timedelta | None = None  # how long the follower had been quiet before this (scrm.notices.returned)
        if follower is not None and event.kind not in NOT_ACTIVITY:
            if follower.last_active_at is not None:
                self.idle = event.at - follower.last_active_at
            follower.last_active_at = max(follower.last_active_at or event.at, event.at)

    # --- effects (scrm.effects) -------------------------------------------------------------------------------------

    def subscribe(self, scene: str | None) -> None:
        f = self._require()
        self.reachable(True)
        if scene and not f.source:
            f.source = scene
        openid = self.event.openid  # the identity's own profile (unionid), also when it is merged into another
        self.enqueue("profile.fetch", {"openid": openid}, key=f"profile:{openid}:{self.interaction_id}")

    def unsubscribe(self) -> None:
        self.reachable(False)

    def reachable(self, subscribed: bool) -> None:
        """Whether the identity the event came from can be reached. Per identity, not per person: when the event's
        openid is merged into the follower (scrm.merge), the identity's own row records it, not the primary's."""
        f, at = self._require(), self.event.at
        values = {"subscribed": subscribed, "subscribed_at" if subscribed else "unsubscribed_at": at}
        if f.openid == self.event.openid:
            for name, value in values.items():
                setattr(f, name, value)
        else:
            self.session.connection().execute(update(_F).where(_F.c.openid == self.event.openid).values(values))

    def scanned(self, scene: str | None) -> None:
        f = self._require()
        if scene and not f.source:
            f.source = scene

    def contact_added(self, rep_userid: str, state: str | None) -> None:
        """A WeCom external contact added a rep: the contact is reachable (who owns it: scrm.assign_effects)."""
        f = self._require()
        if f.openid == self.event.openid:  # not the primary this contact is merged into (scrm.merge)
            f.channel = "wecom"
        self.reachable(True)
        eid = self.event.openid  # externalcontact/get: the contact's unionid and profile
        self.enqueue("profile.fetch_wecom", {"external_userid": eid}, key=f"profile:{eid}:{self.interaction_id}")
        if state and not f.source:
            f.source = state

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
        if self.shared is not None:  # written with the applier's batch; its ids come from there
            self.shared.enqueue(task, args, key, utcnow())
            return
        # The outbox row needs nothing the session holds: the follower's pending changes are flushed once, at commit.
        with self.session.no_autoflush:
            oid = outbox.add(self.session, task, args, key=key)
        if oid is not None:
            self.outbox_ids.append(oid)

    def _require(self) -> Follower:
        if self.follower is None:
            raise RuntimeError(f"{self.event.kind} needs a follower")
        return self.follower


def rep_id(session: Session, userid: str) -> int:
    """The rep's id, creating the rep on first sight, unconfirmed (WeCom members appear in callbacks before anyone
    lists them: they keep what WeCom gave them, and take no assignment until an admin confirms them)."""
    found = session.scalar(select(Rep.id).where(Rep.userid == userid))
    if found is None:
        session.execute(insert_ignore(session, Rep, ["userid"]), {"userid": userid, "name": userid, "confirmed": False})
        found = session.scalar(select(Rep.id).where(Rep.userid == userid))
    assert found is not None
    return found
