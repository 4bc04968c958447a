"""Reading contact merges (scrm.merge): the admin API's and the CLI's listings."""

from __future__ import annotations

from typing import Any

from sqlalchemy import or_, select
from sqlalchemy.orm import Session

from foundation.clock import iso
from scrm.merge_models import ContactMerge
from scrm.models import Follower


def listing(
    session: Session, *, after: int = 0, limit: int = 50, state: str | None = None, follower: int | None = None
) -> tuple[list[dict[str, Any]], int | None]:
    """Merges newest first (keyset by id: `after` is the last id seen), optionally in one state or of one person."""
    query = select(ContactMerge)
    if after:
        query = query.where(ContactMerge.id < after)
    if state:
        query = query.where(ContactMerge.state == state)
    if follower is not None:
        query = query.where(or_(ContactMerge.primary_id == follower, ContactMerge.secondary_id == follower))
    rows = list(session.scalars(query.order_by(ContactMerge.id.desc()).limit(limit + 1)))
    more = len(rows) > limit
    rows = rows[:limit]
    return describe(session, rows), (rows[-1].id if more and rows else None)


def describe(session: Session, rows: list[ContactMerge]) -> list[dict[str, Any]]:
    ids = {i for r in rows for i in (r.primary_id, r.secondary_id)}
    who = {r.id: {"openid": r.openid, "channel": r.channel} for r in session.execute(
        select(Follower.id, Follower.openid, Follower.channel).where(Follower.id.in_(ids)))}  # fmt: skip
    return [
        {"id": r.id, "state": r.state, "reason": r.reason, "unionid": r.unionid, "primary": who.get(r.primary_id),
         "secondary": who.get(r.secondary_id), "moved": r.moved, "before": r.before, "created_at": iso(r.created_at),
         "created_by": r.created_by, "undone_at": iso(r.undone_at), "undone_by": r.undone_by}
        for r in rows
    ]  # fmt: skip


def find(session: Session, merge_id: int) -> ContactMerge | None:
    return session.get(ContactMerge, merge_id)


def identity(session: Session, openid: str) -> Follower | None:
    """The row of `openid` itself (not the person it may be merged into)."""
    return session.scalar(select(Follower).where(Follower.openid == openid))
