"""The delivery state machine: every transition is a conditional UPDATE, so two workers can never own one row.

queued → sending (claimed by one worker) → sent (WeChat's msgid) → delivered | failed (TEMPLATESENDJOBFINISH);
or blocked, skipped (a guard said no), error (a permanent code, or retries used up), unknown (the request went out
and the answer was lost: never resent blindly), cancelled (its broadcast was). A retry or a deferral puts the row
back to queued with `send_after`. The follower's timeline gets an Activity for every final outcome.
"""

from __future__ import annotations

import hashlib
import random
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from foundation.clock import utcnow
from foundation.sql import insert_ignore
from scrm import guards
from scrm.delivery_models import (
    BLOCKED,
    DELIVERED,
    ERROR,
    FAILED,
    QUEUED,
    SENDING,
    SENT,
    SKIPPED,
    UNKNOWN,
    Delivery,
)
from scrm.ingest import Visit
from scrm.message_templates import MASS, Library, TemplateError
from scrm.models import Activity, Follower, Interaction

TIMELINE_STATES = (SENT, DELIVERED, FAILED, BLOCKED, ERROR, UNKNOWN, SKIPPED)
FAILURE_STATES = (ERROR, UNKNOWN)
NOT_FOLLOWING = 43004


class NotFound(LookupError):
    """No such follower or delivery."""


@dataclass(frozen=True)
class Outgoing:
    """A claimed delivery, ready to go out: what the sender passes to the WeChat client."""

    id: int
    openid: str
    channel: str
    payload: dict[str, Any]
    client_msg_id: str
    broadcast_id: int | None
    follower_id: int = 0
    template: str = ""


@dataclass(frozen=True)
class Result:
    """What came back from WeChat, sorted by the sender: the next state and why."""

    state: str  # sent | blocked | skipped | error | unknown | retry
    msgid: str | None = None
    code: int | None = None
    reason: str | None = None
    detail: str | None = None


def client_msg_id(key: str) -> str:
    """WeChat drops a repeat of the same openid + client_msg_id within 10 minutes: derived from the key, stable."""
    return hashlib.sha1(key.encode()).hexdigest()[:32]


def create(
    session: Session,
    follower: Follower,
    template: str,
    channel: str,
    key: str,
    args: dict[str, Any],
    source: str,
    job: str | None = None,
) -> tuple[Delivery, bool]:
    """The delivery for `key`, created queued unless it exists (then returned as is, `False`)."""
    now = utcnow()
    stmt = insert_ignore(session, Delivery, ["key"], returning="id")
    new_id = session.scalar(
        stmt,
        {
            "key": key,
            "follower_id": follower.id,
            "openid": follower.openid,
            "channel": channel,
            "template": template,
            "args": args,
            "source": source,
            "state": QUEUED,
            "attempts": 0,
            "retries": 0,
            "in_doubt": False,
            "job": job,
            "pushed_at": now if job else None,
            "created_at": now,
            "updated_at": now,
        },
    )
    row = session.scalar(select(Delivery).where(Delivery.key == key))
    assert row is not None
    return row, new_id is not None


def new_message(
    session: Session,
    lib: Library,
    *,
    openid: str,
    template: str,
    data: dict[str, Any],
    key: str,
    source: str,
    channel: str | None = None,
    event: dict[str, Any] | None = None,
    job: str | None = None,
) -> tuple[Delivery, bool]:
    """One library message to one follower (API, playbook, chatbot): checked, then queued under `key`."""
    follower = session.scalar(select(Follower).where(Follower.openid == openid))
    if follower is None:
        raise NotFound(f"no follower {openid!r}")
    tpl = lib.get(template)
    channel = channel or tpl.channels[0]
    if channel == MASS or channel not in tpl.channels:
        allowed = ", ".join(c for c in tpl.channels if c != MASS)
        raise TemplateError(f"{template!r} cannot go to one follower by {channel!r} (allowed: {allowed})")
    args: dict[str, Any] = {"data": data}
    if event:
        args["event"] = event
    return create(session, follower, template, channel, key, args, source, job=job)


def _note(session: Session, row: Delivery, now: datetime) -> None:
    data = {"delivery": row.id, "template": row.template, "channel": row.channel, "state": row.state}
    data.update({k: v for k, v in (("broadcast", row.broadcast_id), ("msgid", row.msgid), ("reason", row.reason)) if v})
    session.add(Activity(follower_id=row.follower_id, kind=f"message_{row.state}", at=now, data=data))


def settle(session: Session, row: Delivery, state: str, now: datetime, **fields: Any) -> None:
    """Move an owned row to `state` with its reason/code/msgid, and put the outcome on the timeline."""
    row.state, row.updated_at = state, now
    for name, value in fields.items():
        setattr(row, name, value)
    if state != QUEUED:
        row.in_doubt = False
        row.job = None
    if state in (DELIVERED, FAILED, BLOCKED, ERROR, UNKNOWN, SKIPPED):
        row.done_at = now
    if state in TIMELINE_STATES:
        _note(session, row, now)


def requeue(session: Session, row: Delivery, until: datetime | None, now: datetime, **fields: Any) -> None:
    """Back to queued, to be pushed again when due (`until`), in a new job."""
    settle(session, row, QUEUED, now, send_after=until, job=None, pushed_at=None, **fields)


def backoff(retries: int, base: float, cap: float) -> float:
    """Exponential with full jitter: retries of many workers spread out instead of hitting WeChat together."""
    return random.uniform(base / 2, min(cap, base * 2 ** (retries - 1)))


def context(row: Delivery, follower: dict[str, Any], data: dict[str, Any], now: datetime, zone: Any) -> dict[str, Any]:
    """What template expressions see: follower (as the API shows it; nothing for a mass text, which is one for all),
    event, data, now (local time)."""
    return {
        "follower": follower if row.channel != MASS else {},
        "event": row.args.get("event") or {},
        "data": data,
        "now": now.replace(tzinfo=UTC).astimezone(zone),
    }


def release(
    session: Session,
    ids: list[int],
    now: datetime,
    until: datetime | None = None,
    reason: str | None = None,
    detail: str | None = None,
) -> None:
    """Claimed rows that did not go out after all (quota used up, Redis gone): queued again, attempt not counted."""
    for row in session.scalars(select(Delivery).where(Delivery.id.in_(ids), Delivery.state == SENDING)):
        row.attempts = max(0, row.attempts - 1)
        requeue(session, row, until, now, reason=reason or row.reason, detail=detail or row.detail)


def record(
    session: Session, results: list[tuple[int, Result]], rules: guards.SendRules, now: datetime
) -> list[Delivery]:
    """Apply WeChat's answers to sending rows (one transaction for a chunk); retryable failures requeue with backoff
    until the retries run out. Returns the rows, settled."""
    rows = {r.id: r for r in session.scalars(select(Delivery).where(Delivery.id.in_([i for i, _ in results])))}
    early = early_finish(session, [r.msgid for _, r in results if r.state == SENT and r.msgid])
    for did, result in results:
        _record_one(session, rows[did], result, early, rules, now)
    return [rows[did] for did, _ in results]


def _record_one(
    session: Session, row: Delivery, result: Result, early: dict[str, str], rules: guards.SendRules, now: datetime
) -> None:
    fields: dict[str, Any] = {"error_code": result.code, "reason": result.reason, "detail": result.detail}
    if result.state == "retry":
        row.retries += 1
        if row.retries > rules.retry_max:
            settle(session, row, ERROR, now, **{**fields, "reason": "retries_exhausted"})
        else:
            delay = backoff(row.retries, rules.retry_base, rules.retry_cap)
            requeue(session, row, now + timedelta(seconds=delay), now, **fields)
        return
    if result.state == SENT:
        settle(session, row, SENT, now, msgid=result.msgid, sent_at=now, **fields)
        status = early.get(result.msgid or "")
        if status is not None:
            ok = _succeeded(status)
            settle(
                session, row, DELIVERED if ok else FAILED, now, reason=None if ok else "wechat_status", detail=status
            )
        return
    if result.code == NOT_FOLLOWING:
        follower = session.get(Follower, row.follower_id)
        if follower is not None:
            follower.subscribed = False  # we missed the unsubscribe callback: later sends stop at the guard
    settle(session, row, result.state, now, **fields)


def early_finish(session: Session, msgids: list[str]) -> dict[str, str]:
    """The job-finish callback may beat our own commit of `sent`: it is in the interactions table already."""
    if not msgids:
        return {}
    rows = session.execute(
        select(Interaction.msg_id, Interaction.event_key).where(
            Interaction.msg_id.in_(msgids), Interaction.kind.in_(("templatesendjobfinish", "masssendjobfinish"))
        )
    )
    return {str(m): str(status or "") for m, status in rows}


def _succeeded(status: str | None) -> bool:
    return (status or "").strip().lower() in ("success", "send success")


def job_finished(visit: Visit, msgid: str | None, status: str | None) -> int:
    """TEMPLATESENDJOBFINISH / MASSSENDJOBFINISH: sent → delivered | failed by msgid. Idempotent; returns rows moved."""
    if not msgid:
        return 0
    session, now = visit.session, utcnow()
    state = DELIVERED if _succeeded(status) else FAILED
    rows = list(session.scalars(select(Delivery).where(Delivery.msgid == str(msgid), Delivery.state == SENT)))
    for row in rows:
        settle(
            session,
            row,
            state,
            now,
            reason=None if state == DELIVERED else "wechat_status",
            detail=None if state == DELIVERED else status,
        )
    return len(rows)
