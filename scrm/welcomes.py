"""Welcome messages to new WeCom customers: which text, and the record of what became of each WelcomeCode.

WeCom puts a WelcomeCode in `add_external_contact` when WeLead may greet the customer: once, within 20 seconds of the
event (a welcome set in WeCom's admin console replaces it: then no code comes). The applier queues a "welcome.send"
job per code (`enqueue`, keyed by the code); tasks.welcome sends it on the priority queue and records the outcome
here. The text is the welcome of the contact code the customer came through (state `rep:<rep id>` for a rep's
personal code, `team:<code id>` for a team code); no code, or a code without a welcome, sends nothing (status
`skipped`): a generic greeting from a code the marketer did not write one for would speak for them.
"""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import select, update
from sqlalchemy.orm import Session

from foundation.clock import iso
from foundation.sql import insert_ignore
from scrm.code_models import ContactCode
from scrm.ingest import Visit
from scrm.notification_models import QUEUED, WelcomeMessage

TASK = "welcome.send"
WINDOW = timedelta(seconds=20)  # WeCom: send_welcome_msg within 20 s of the event, once
FINAL = frozenset({"sent", "already_sent", "expired", "skipped", "error", "unknown"})


def enqueue(visit: Visit) -> bool:
    """Queue the welcome for an add_external_contact that carries a WelcomeCode; False when it carries none."""
    payload = visit.event.payload
    code = str(payload.get("WelcomeCode") or "")
    if not code or len(code) > 170:
        return False
    args = {"code": code, "external_userid": visit.event.openid, "userid": str(payload.get("UserID") or ""),
            "scene": visit.event.scene, "at": visit.event.created}  # fmt: skip
    visit.enqueue(TASK, args, key=f"{TASK}:{code}")
    return True


def contact_code(session: Session, scene: str | None) -> ContactCode | None:
    """The code a `rep:<id>` / `team:<id>` state names; None for any other state (or none)."""
    kind, _, ident = (scene or "").partition(":")
    if not ident.isdigit():
        return None
    if kind == "rep":
        return session.scalar(select(ContactCode).where(ContactCode.kind == "rep", ContactCode.rep_id == int(ident)))
    if kind == "team":
        return session.scalar(select(ContactCode).where(ContactCode.kind == "team", ContactCode.id == int(ident)))
    return None


def record(
    session: Session, code: str, external_userid: str, userid: str, scene: str | None, at: datetime
) -> WelcomeMessage:
    """The code's row, created on the first attempt (a retried job finds it again)."""
    values = {"code": code, "external_userid": external_userid, "userid": userid, "scene": (scene or None),
              "status": QUEUED, "attempts": 0, "event_at": at}  # fmt: skip
    session.execute(insert_ignore(session, WelcomeMessage, ["code"]), values)
    row = session.scalar(select(WelcomeMessage).where(WelcomeMessage.code == code))
    assert row is not None
    return row


def settle(session: Session, code: str, status: str, **values: Any) -> None:
    session.execute(update(WelcomeMessage).where(WelcomeMessage.code == code).values(status=status, **values))


def serialize(row: WelcomeMessage) -> dict[str, Any]:
    latency = (row.sent_at - row.event_at).total_seconds() if row.sent_at else None
    return {
        "id": row.id, "code": row.code, "external_userid": row.external_userid, "userid": row.userid,
        "scene": row.scene, "contact_code": row.contact_code_id, "text": row.text, "status": row.status,
        "attempts": row.attempts, "errcode": row.errcode, "error": row.error, "event_at": iso(row.event_at),
        "sent_at": iso(row.sent_at), "seconds_after_event": latency, "created_at": iso(row.created_at),
    }  # fmt: skip


def page(session: Session, status: str | None, userid: str | None, after: int, limit: int) -> list[dict[str, Any]]:
    """Newest first by id, keyset-paged (`after` = the last id seen, 0 for the first page)."""
    query = select(WelcomeMessage)
    if after:
        query = query.where(WelcomeMessage.id < after)
    if status:
        query = query.where(WelcomeMessage.status == status)
    if userid:
        query = query.where(WelcomeMessage.userid == userid)
    return [serialize(r) for r in session.scalars(query.order_by(WelcomeMessage.id.desc()).limit(limit))]
