"""The notification rows: recorded by the "rep.notify" job, claimed a rep at a time, settled with WeCom's answer.

States: pending (waiting for the rep's next send slot) → sending (claimed for one app message) → sent | failed (a
permanent refusal: 60111 invalid userid, `invaliduser`, 81013...) | unknown (the request went out and no answer came:
never resent). A retryable answer (busy, limits, never sent) puts the rows back to pending. Claims are atomic per row
(UPDATE ... WHERE state = 'pending'), so two workers flushing one rep share its rows without sending one twice.
"""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import exists, select, update
from sqlalchemy.orm import Session

from foundation.clock import iso
from foundation.sql import insert_ignore
from scrm.models import Follower
from scrm.notification_models import FAILED, PENDING, SENDING, SENT, UNKNOWN, RepNotification

STATES = (PENDING, SENDING, SENT, FAILED, UNKNOWN)

_N = RepNotification
STALE = timedelta(minutes=5)  # a row `sending` this long belongs to a worker that died mid-request


def record(session: Session, key: str, rep_id: int, follower_id: int, kind: str, reason: str, rule: str | None,
           about_rep_id: int | None = None) -> None:  # fmt: skip
    """The notification's row, once per key (a re-run of its job finds the row it wrote)."""
    values = {"key": key, "rep_id": rep_id, "follower_id": follower_id, "kind": kind, "reason": reason or "",
              "rule": rule, "about_rep_id": about_rep_id, "state": PENDING, "attempts": 0, "digest": False}  # fmt: skip
    session.execute(insert_ignore(session, RepNotification, ["key"]), values)


def states(session: Session, keys: list[str]) -> dict[str, RepNotification]:
    return {r.key: r for r in session.scalars(select(_N).where(_N.key.in_(keys)))}


def waiting(session: Session, rep_id: int) -> bool:
    return bool(session.scalar(select(exists().where(_N.rep_id == rep_id, _N.state == PENDING))))


def claim(session: Session, rep_id: int, message: str, limit: int, now: datetime) -> list[RepNotification]:
    """Up to `limit` of the rep's pending rows, oldest first, for app message `message`."""
    ids = list(session.scalars(select(_N.id).where(_N.rep_id == rep_id, _N.state == PENDING).order_by(_N.id)
                               .limit(limit)))  # fmt: skip
    if not ids:
        return []
    session.execute(update(_N).where(_N.id.in_(ids), _N.state == PENDING)
                    .values(state=SENDING, message=message, claimed_at=now, attempts=_N.attempts + 1)
                    .execution_options(synchronize_session=False))  # fmt: skip
    return list(session.scalars(select(_N).where(_N.message == message, _N.state == SENDING).order_by(_N.id)))


def unclaim(session: Session, ids: list[int]) -> None:
    """Rows that did not fit in the message wait for the next one (their attempt is not counted)."""
    if ids:
        session.execute(update(_N).where(_N.id.in_(ids), _N.state == SENDING)
                        .values(state=PENDING, message=None, claimed_at=None, attempts=_N.attempts - 1)
                        .execution_options(synchronize_session=False))  # fmt: skip


def settle(session: Session, ids: list[int], state: str, **values: Any) -> None:
    session.execute(update(_N).where(_N.id.in_(ids)).values(state=state, **values)
                    .execution_options(synchronize_session=False))  # fmt: skip


def fail_waiting(session: Session, rep_id: int, **values: Any) -> int:
    """The rep cannot receive app messages (not a member, outside the app): what waits for them fails too."""
    stmt = update(_N).where(_N.rep_id == rep_id, _N.state == PENDING).values(state=FAILED, **values)
    return session.execute(stmt.execution_options(synchronize_session=False)).rowcount


def give_up_stale(session: Session, rep_id: int, now: datetime) -> int:
    """Rows left `sending` by a dead worker: WeCom may have delivered them, so they become unknown, not resent."""
    stmt = (
        update(_N)
        .where(_N.rep_id == rep_id, _N.state == SENDING, _N.claimed_at < now - STALE)
        .values(state=UNKNOWN, error="the worker stopped during the request; not resent (WeCom may have it)")
        .execution_options(synchronize_session=False)
    )
    return session.execute(stmt).rowcount


def serialize(row: RepNotification, openid: str | None = None) -> dict[str, Any]:
    return {
        "id": row.id, "key": row.key, "rep": row.rep_id, "userid": row.userid, "follower": row.follower_id,
        "openid": openid, "kind": row.kind, "reason": row.reason, "rule": row.rule, "about_rep": row.about_rep_id,
        "state": row.state, "message": row.message, "digest": row.digest, "attempts": row.attempts,
        "errcode": row.errcode, "error": row.error, "created_at": iso(row.created_at), "sent_at": iso(row.sent_at),
    }  # fmt: skip


def page(
    session: Session, rep_id: int | None, state: str | None, kind: str | None, after: int, limit: int
) -> list[dict]:
    """Newest first, keyset-paged by id (`after`: the last id of the previous page)."""
    query = select(_N, Follower.openid).join(Follower, Follower.id == _N.follower_id)
    for column, value in ((_N.rep_id, rep_id), (_N.state, state), (_N.kind, kind)):
        if value is not None:
            query = query.where(column == value)
    if after:
        query = query.where(_N.id < after)
    return [serialize(row, openid) for row, openid in session.execute(query.order_by(_N.id.desc()).limit(limit))]
