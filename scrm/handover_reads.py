"""Reading the moves: what the API lists about the leads handed from and to a rep, and what failed and why."""

from __future__ import annotations

from typing import Any

from sqlalchemy import or_, select
from sqlalchemy.orm import Session

from foundation.clock import iso
from scrm.handover_models import Transfer
from scrm.models import Follower

STATES = ("pending", "sending", "unknown", "waiting", "done", "failed")
CAUSES = ("deactivated", "pool")


def page(
    session: Session,
    *,
    rep: int | None = None,
    state: str | None = None,
    cause: str | None = None,
    follower: str | None = None,
    after: int = 0,
    limit: int = 100,
) -> tuple[list[dict[str, Any]], int | None]:
    """Moves by id, filtered (`rep`: handed from or to that rep); (items, the next cursor or None)."""
    query = select(Transfer, Follower.openid).join(Follower, Follower.id == Transfer.follower_id)
    if rep is not None:
        query = query.where(or_(Transfer.from_rep_id == rep, Transfer.to_rep_id == rep))
    if state is not None:
        query = query.where(Transfer.state == state)
    if cause is not None:
        query = query.where(Transfer.cause == cause)
    if follower is not None:
        query = query.where(Follower.openid == follower)
    rows = session.execute(query.where(Transfer.id > after).order_by(Transfer.id).limit(limit + 1)).all()
    items = [serialize(t, openid) for t, openid in rows[:limit]]
    return items, rows[limit - 1][0].id if len(rows) > limit else None


def serialize(t: Transfer, openid: str) -> dict[str, Any]:
    return {
        "id": t.id, "openid": openid, "channel": t.channel, "external_userid": t.external_userid, "cause": t.cause,
        "mode": t.mode, "from_rep": t.from_rep_id, "to_rep": t.to_rep_id, "state": t.state, "errcode": t.errcode,
        "status": t.status, "error": t.error, "attempts": t.attempts, "created_at": iso(t.created_at),
        "sent_at": iso(t.sent_at), "settled_at": iso(t.settled_at), "takeover_at": iso(t.takeover_at),
    }  # fmt: skip
