"""Deliveries as the API and the broadcast reports read them: one row's JSON, keyset pages, counts and reasons."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import Select, and_, func, or_, select
from sqlalchemy.orm import Session

from foundation.clock import iso
from scrm.delivery_models import (
    BLOCKED,
    ERROR,
    FAILED,
    QUEUED,
    SKIPPED,
    UNKNOWN,
    Delivery,
)


def serialize(row: Delivery) -> dict[str, Any]:
    return {
        "id": row.id,
        "key": row.key,
        "openid": row.openid,
        "channel": row.channel,
        "template": row.template,
        "broadcast": row.broadcast_id,
        "source": row.source,
        "state": row.state,
        "reason": row.reason,
        "detail": row.detail,
        "error_code": row.error_code,
        "msgid": row.msgid,
        "attempts": row.attempts,
        "retries": row.retries,
        "payload": row.payload,
        "send_after": iso(row.send_after),
        "created_at": iso(row.created_at),
        "sent_at": iso(row.sent_at),
        "done_at": iso(row.done_at),
        "updated_at": iso(row.updated_at),
    }


def page(
    session: Session,
    *,
    follower_id: int | None = None,
    state: str | None = None,
    broadcast_id: int | None = None,
    before: int | None = None,
    limit: int = 50,
) -> tuple[list[dict], int | None]:
    """Newest first, keyset-paged by id (`next` is the `before` of the next page)."""
    query: Select = select(Delivery)
    for column, value in (
        (Delivery.follower_id, follower_id),
        (Delivery.state, state),
        (Delivery.broadcast_id, broadcast_id),
    ):
        if value is not None:
            query = query.where(column == value)
    if before is not None:
        query = query.where(Delivery.id < before)
    rows = list(session.scalars(query.order_by(Delivery.id.desc()).limit(limit + 1)))
    more = len(rows) > limit
    rows = rows[:limit]
    return [serialize(r) for r in rows], (rows[-1].id if more and rows else None)


def counts(session: Session, broadcast_id: int) -> dict[str, int]:
    rows = session.execute(
        select(Delivery.state, func.count()).where(Delivery.broadcast_id == broadcast_id).group_by(Delivery.state)
    )
    return {state: int(n) for state, n in rows}


NOT_THROUGH = (BLOCKED, SKIPPED, ERROR, UNKNOWN, FAILED)


def reasons(session: Session, broadcast_id: int) -> dict[str, dict[str, int]]:
    """Why rows did not get through, per state: {"skipped": {"frequency_cap": 12}, "queued": {"quiet_hours": 40}}.

    Queued rows appear when they carry a reason (deferred by quiet hours or the daily quota, waiting for a retry):
    a broadcast that waits says why instead of sitting at 0%.
    """
    waiting = and_(Delivery.state == QUEUED, Delivery.reason.is_not(None))
    rows = session.execute(
        select(Delivery.state, Delivery.reason, func.count())
        .where(Delivery.broadcast_id == broadcast_id, or_(Delivery.state.in_(NOT_THROUGH), waiting))
        .group_by(Delivery.state, Delivery.reason)
    )
    out: dict[str, dict[str, int]] = {}
    for state, reason, n in rows:
        out.setdefault(state, {})[reason or "unspecified"] = int(n)
    return out


def waiting_until(session: Session, broadcast_id: int, now: datetime) -> datetime | None:
    """When the earliest deferred row of the broadcast may go (quiet hours, quota, backoff), or None."""
    return session.scalar(
        select(func.min(Delivery.send_after)).where(
            Delivery.broadcast_id == broadcast_id, Delivery.state == QUEUED, Delivery.send_after > now
        )
    )


def retries(session: Session, broadcast_id: int) -> int:
    return int(session.scalar(select(func.sum(Delivery.retries)).where(Delivery.broadcast_id == broadcast_id)) or 0)
