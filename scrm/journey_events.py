"""What journeys ask about a follower beyond the playbook's conditions: did an event happen since a time (event waits,
`happened`), should the run exit (unsubscribed, opted out, handed over), and when a wait ends."""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime, time, timedelta

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from scrm.handover_models import Transfer
from scrm.hours import ZONE
from scrm.models import Activity, Follower, FollowerTag, Interaction, Tag
from scrm.playbook.grammar_journey import Wait

MESSAGES = ("text", "image", "voice", "video", "shortvideo", "location", "link")
HANDOFF = "handoff"  # the timeline entry of a chatbot handoff to a human (scrm.faq_effects)
FORM_ENTRY = "lead_captured"  # the timeline entry every submitted form leaves (scrm.lead_capture)
POLL = timedelta(seconds=60)  # how often a run waiting for an event looks for it (until its timeout)


def _latest(event: str, follower_ids: list[int]):
    """Each follower's latest time of `event` (it happened since `since` ⇔ its latest is at or after `since`)."""
    kind, _, arg = event.partition(":")
    if kind == "tag":
        joined = FollowerTag.__table__.join(Tag.__table__, Tag.id == FollowerTag.tag_id)
        query = select(FollowerTag.follower_id, func.max(FollowerTag.added_at)).select_from(joined).where(
            FollowerTag.follower_id.in_(follower_ids), Tag.name == arg)  # fmt: skip
        return query.group_by(FollowerTag.follower_id)
    if kind in ("form_submitted", "activity"):
        entry = arg if kind == "activity" else FORM_ENTRY
        where = [Activity.follower_id.in_(follower_ids), Activity.kind == entry]
        return select(Activity.follower_id, func.max(Activity.at)).where(*where).group_by(Activity.follower_id)
    i = Interaction
    where = [i.follower_id.in_(follower_ids)]
    if kind == "message":
        where.append(i.kind.in_(MESSAGES))
    elif kind == "subscribed":
        where.append(i.kind == "subscribe")
    else:  # click:<KEY>
        where += [i.kind == "click", i.event_key == arg]
    return select(i.follower_id, func.max(i.at)).where(*where).group_by(i.follower_id)


class Seen:
    """`happened` for a batch of runs: each event's latest time per follower, read once for the whole batch (one
    grouped query per event the batch asks about), plus what the batch itself did and has not written yet
    (`pending(follower_id, event)`: a tag it attached, a timeline entry it noted; those are at `now`, never before
    a run's `since`)."""

    def __init__(self, session: Session, follower_ids: list[int], pending: Callable[[int, str], bool]) -> None:
        self.session, self.follower_ids, self.pending = session, follower_ids, pending
        self._latest: dict[str, dict[int, datetime]] = {}

    def happened(self, follower_id: int, event: str, since: datetime) -> bool:
        latest = self._latest.get(event)
        if latest is None:
            rows = self.session.connection().execute(_latest(event, self.follower_ids)) if self.follower_ids else []
            latest = self._latest[event] = {fid: at for fid, at in rows if at is not None}
        at = latest.get(follower_id)
        return (at is not None and at >= since) or self.pending(follower_id, event)


def exit_reason(
    follower: Follower, exits: list[str], tags: set[str], opt_out_tag: str, started: datetime, moved: datetime | None
) -> str | None:
    """The first of `exits` that applies to the follower now, or None; `moved`: the follower's latest handover."""
    for name in exits:
        if name == "unsubscribed" and not follower.subscribed and follower.unsubscribed_at is not None:
            return name
        if name == "opted_out" and opt_out_tag in tags:
            return name
        if name == "handed_over" and moved is not None and moved >= started:
            return name
    return None


def handovers(session: Session, follower_ids: list[int]) -> dict[int, datetime]:
    """Each follower's latest handover, for a batch of runs in two queries: a move to another rep (scrm.handover) or
    a handoff from the chatbot to a human (its `handoff` timeline entry, scrm.faq_effects)."""
    if not follower_ids:
        return {}
    moved = (
        select(Transfer.follower_id, func.max(Transfer.created_at))
        .where(Transfer.follower_id.in_(follower_ids))
        .group_by(Transfer.follower_id)
    )
    handoffs = (
        select(Activity.follower_id, func.max(Activity.at))
        .where(Activity.follower_id.in_(follower_ids), Activity.kind == HANDOFF)
        .group_by(Activity.follower_id)
    )
    latest: dict[int, datetime] = {}
    for query in (moved, handoffs):
        for fid, at in session.execute(query):
            latest[fid] = max(at, latest.get(fid, at))
    return latest


def next_local(base: datetime, hhmm: str) -> datetime:
    """The first `hhmm` Asia/Shanghai strictly after `base` (naive UTC in, naive UTC out)."""
    local = base.replace(tzinfo=UTC).astimezone(ZONE)
    hour, minute = (int(x) for x in hhmm.split(":"))
    candidate = datetime.combine(local.date(), time(hour, minute), tzinfo=ZONE)
    if candidate <= local:
        candidate = datetime.combine(local.date() + timedelta(days=1), time(hour, minute), tzinfo=ZONE)
    return candidate.astimezone(UTC).replace(tzinfo=None)


def at_local(day_of: datetime, hhmm: str | None) -> datetime:
    """`day_of` (naive UTC) moved to `hhmm` Asia/Shanghai on its local day (unchanged without a time)."""
    if hhmm is None:
        return day_of
    local = day_of.replace(tzinfo=UTC).astimezone(ZONE)
    hour, minute = (int(x) for x in hhmm.split(":"))
    moved = datetime.combine(local.date(), time(hour, minute), tzinfo=ZONE)
    return moved.astimezone(UTC).replace(tzinfo=None)


def wait_until(wait: Wait, base: datetime, event_start: datetime | None) -> datetime | None:
    """When a duration or `until` wait entered at `base` ends; None for an `until` relative to an event the run does
    not know (the caller exits the run)."""
    if wait.for_ is not None:
        return base + timedelta(seconds=wait.for_)
    if isinstance(wait.until, str):
        return next_local(base, wait.until)
    if wait.until is not None:
        if event_start is None:
            return None
        return at_local(event_start + timedelta(seconds=wait.until.event_start), wait.until.at)
    return None
