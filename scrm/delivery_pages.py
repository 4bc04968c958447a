"""Claiming and recording deliveries a page at a time: the send path's statements, set-based.

A page (the rows of one send job, up to tasks.send.PAGE) is claimed with one UPDATE ... RETURNING; the guards read
its followers, their opt-out tag and their send history with one query each; a template renders once per distinct
context (a broadcast's template that does not use `follower` or `event` renders once per page), and the request
bodies are written with one executemany. WeChat's answers are recorded with one executemany UPDATE and one INSERT of
the timeline entries. Rows off that path (a guard's refusal, a render error, a retry, an error, a status callback
that came first) go through the ORM state machine of scrm.deliveries one by one, exactly as before.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Sequence
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import Row, bindparam, or_, select, update
from sqlalchemy.orm import Session

from scrm import deliveries, followers, guards
from scrm.deliveries import Outgoing, Result
from scrm.delivery_models import ERROR, QUEUED, RUNNING, SENDING, SENT, UNKNOWN, Broadcast, Delivery
from scrm.link_stamp import Stamper
from scrm.message_templates import CUSTOM, TEMPLATE, Library, TemplateError, render, request_body
from scrm.models import Activity, Follower, FollowerTag, Tag

_T = Delivery.__table__
CLAIMED = (Delivery.id, Delivery.key, Delivery.follower_id, Delivery.openid, Delivery.channel, Delivery.template,
           Delivery.args, Delivery.broadcast_id, Delivery.in_doubt, Delivery.attempts,
           Delivery.attempted_at, Delivery.source)  # fmt: skip
_WRITE_BODY = (
    _T.update()
    .where(_T.c.id == bindparam("b_id"))
    .values(payload=bindparam("b_payload"), attempts=bindparam("b_attempts"), attempted_at=bindparam("b_at"))
)
_WRITE_SENT = (
    _T.update()
    .where(_T.c.id == bindparam("b_id"))
    .values(state=SENT, msgid=bindparam("b_msgid"), sent_at=bindparam("b_now"), updated_at=bindparam("b_now"),
            error_code=None, reason=bindparam("b_reason"), detail=bindparam("b_detail"), in_doubt=False, job=None)
)  # fmt: skip


def claim(session: Session, ids: Sequence[int], now: datetime) -> list[Row]:
    """queued → sending for this worker in one statement: the rows it won (not taken, not final, due, broadcast
    running), by id. Two workers claiming the same ids split them; neither gets a row twice."""
    running = select(Broadcast.id).where(Broadcast.state == RUNNING)
    stmt = (
        update(Delivery)
        .where(Delivery.id.in_(list(ids)), Delivery.state == QUEUED)
        .where(or_(Delivery.send_after.is_(None), Delivery.send_after <= now))
        .where(or_(Delivery.broadcast_id.is_(None), Delivery.broadcast_id.in_(running)))
        .values(state=SENDING, updated_at=now)
        .returning(*CLAIMED)
        .execution_options(synchronize_session=False)
    )
    return sorted(session.execute(stmt).all(), key=lambda r: r.id)


class _Page:
    """What the guards and the renderer need for a page's followers, each read once."""

    def __init__(self, session: Session, rows: list[Row], rules: guards.SendRules, lib: Library, now: datetime):
        ids = sorted({r.follower_id for r in rows})
        self.shown: dict[int, dict[str, Any]] = {}
        if any("follower" in _variables(lib, r.template) for r in rows):
            people = list(session.scalars(select(Follower).where(Follower.id.in_(ids))))
            self.people: dict[int, Any] = {f.id: f for f in people}
            self.shown = {f.id: d for f, d in zip(people, followers.serialize(session, people), strict=True)}
            self.tags = {fid: d["tags"] for fid, d in self.shown.items()}
        else:
            found = session.execute(select(Follower.id, Follower.subscribed).where(Follower.id.in_(ids)))
            self.people = {r.id: r for r in found}
            self.tags = {fid: [rules.opt_out_tag] for fid in _tagged(session, ids, rules.opt_out_tag)}
        channels = {r.channel for r in rows}
        self.past = guards.history(session, ids, rules, now, channels)
        bids = {r.broadcast_id for r in rows if r.broadcast_id is not None}
        found_data = session.execute(select(Broadcast.id, Broadcast.data).where(Broadcast.id.in_(bids))) if bids else []
        self.data = {bid: dict(data or {}) for bid, data in found_data}
        self.rendered: dict[tuple, dict[str, Any]] = {}


def _variables(lib: Library, name: str) -> frozenset[str]:
    try:
        return lib.get(name).variables
    except TemplateError:
        return frozenset()


def _tagged(session: Session, follower_ids: list[int], tag: str) -> list[int]:
    """Which of these followers carry `tag` (the opt-out check needs nothing else of their tags)."""
    query = (
        select(FollowerTag.follower_id)
        .join(Tag, Tag.id == FollowerTag.tag_id)
        .where(Tag.name == tag, FollowerTag.follower_id.in_(follower_ids))
    )
    return list(session.scalars(query))


def _no_mark(phase: str) -> None:
    return None


def prepare(
    session: Session,
    ids: Sequence[int],
    rules: guards.SendRules,
    lib: Library,
    now: datetime,
    mark: Callable[[str], None] = _no_mark,
    stamp: Stamper | None = None,
) -> list[Outgoing]:
    """Claim a page and run each row through the guards and the renderer: what to send now. The rest are settled
    (blocked, skipped, error, unknown) or deferred (quiet hours) in the same transaction. `mark(phase)` is called
    after each step, for the caller's CPU accounting (claim, guards, render, state write). `stamp`: the URLs get
    the recipient's signed attribution (scrm.link_stamp)."""
    rows = claim(session, ids, now)
    mark("claim")
    if not rows:
        return []
    page, zone = _Page(session, rows, rules, lib, now), rules.zone()
    mark("guards")
    out: list[Outgoing] = []
    refused: dict[int, tuple[str, str, str, datetime | None]] = {}  # id -> (state, reason, detail, until)
    writes: list[dict[str, Any]] = []
    for row in rows:
        verdict = _refusal(session, row, page, rules, now)
        mark("guards")
        if verdict is None:
            payload = _payload(row, page, lib, now, zone)
            mark("render")
            if isinstance(payload, str):
                verdict = (ERROR, "render", payload, None)
        if verdict is not None:
            refused[row.id] = verdict
            continue
        if row.channel in (TEMPLATE, CUSTOM):  # the next row of this follower in the page sees this one
            page.past.recent[row.follower_id] = page.past.recent.get(row.follower_id, 0) + 1
        if stamp is not None and row.channel in (TEMPLATE, CUSTOM):
            token = stamp.token(row.openid, d=row.id, b=row.broadcast_id)
            payload = stamp.payload(session.connection(), payload, token)
        cmid = deliveries.client_msg_id(row.key)
        body = request_body(row.openid, payload, cmid) if row.channel == TEMPLATE else payload
        at = row.attempted_at if row.in_doubt else now
        writes.append({"b_id": row.id, "b_payload": body, "b_attempts": row.attempts + 1, "b_at": at})
        out.append(Outgoing(row.id, row.openid, row.channel, payload, cmid, row.broadcast_id, row.follower_id,
                            row.template))  # fmt: skip
    if writes:
        session.connection().execute(_WRITE_BODY, writes)
    if refused:
        _settle_refused(session, refused, now)
    mark("state write")
    return out


def _refusal(session: Session, row: Row, page: _Page, rules: guards.SendRules, now: datetime) -> tuple | None:
    """(state, reason, detail, until) when a guard stops the row or its worker died past WeChat's dedup window."""
    follower = page.people[row.follower_id]
    verdict = guards.check(session, row, follower, page.tags.get(row.follower_id, []), page.past, rules, now)
    if verdict is not None:
        return verdict.state, verdict.reason, verdict.detail, verdict.until
    late = now - (row.attempted_at or now) > timedelta(seconds=rules.resend_window)
    if row.in_doubt and (row.channel != TEMPLATE or late):
        detail = "its worker died mid-send and WeChat's dedup window has passed (or there is none)"
        return UNKNOWN, "worker_lost", detail, None
    return None


def _payload(row: Row, page: _Page, lib: Library, now: datetime, zone: Any) -> dict[str, Any] | str:
    """The rendered message, or the render error's text. A context without `follower` is the same for every row of
    the page that shares template, channel, data and event (`now` is the page's): rendered once for all of them."""
    data = page.data.get(row.broadcast_id, {}) if row.broadcast_id else (row.args.get("data") or {})
    shown = page.shown.get(row.follower_id)
    key = None
    if shown is None:
        key = (row.template, row.channel, json.dumps([data, row.args.get("event")], sort_keys=True, default=str))
        if key in page.rendered:
            return page.rendered[key]
    try:
        tpl = lib.get(row.template)
        payload = render(tpl, row.channel, deliveries.context(row, shown or {}, data, now, zone))
    except TemplateError as exc:
        return str(exc)
    if key is not None:
        page.rendered[key] = payload
    return payload


def _settle_refused(session: Session, refused: dict[int, tuple], now: datetime) -> None:
    for row in session.scalars(select(Delivery).where(Delivery.id.in_(list(refused)))):
        state, reason, detail, until = refused[row.id]
        if state == QUEUED:
            deliveries.requeue(session, row, until, now, reason=reason, detail=detail)
        else:
            deliveries.settle(session, row, state, now, reason=reason, detail=detail)


def record(
    session: Session, results: list[tuple[Outgoing, Result]], rules: guards.SendRules, now: datetime
) -> list[tuple[int | None, str]]:
    """Apply WeChat's answers to a page's sending rows: the sent ones in one UPDATE and one INSERT of their timeline
    entries, the others (and a sent one whose status callback came first) through scrm.deliveries.record.
    Returns (broadcast id, state) per row."""
    early = deliveries.early_finish(session, [r.msgid for _, r in results if r.state == SENT and r.msgid])
    fast = [(o, r) for o, r in results if r.state == SENT and (r.msgid or "") not in early]
    rest = [(o.id, r) for o, r in results if r.state != SENT or (r.msgid or "") in early]
    if fast:
        conn = session.connection()
        conn.execute(_WRITE_SENT, [{"b_id": o.id, "b_msgid": r.msgid, "b_now": now, "b_reason": r.reason,
                                    "b_detail": r.detail} for o, r in fast])  # fmt: skip
        conn.execute(Activity.__table__.insert(), [_sent_note(o, r, now) for o, r in fast])
    settled = deliveries.record(session, rest, rules, now) if rest else []
    return [(o.broadcast_id, SENT) for o, _ in fast] + [(row.broadcast_id, row.state) for row in settled]


def _sent_note(out: Outgoing, result: Result, now: datetime) -> dict[str, Any]:
    """The timeline entry scrm.deliveries.settle writes for a sent row, as a row of the INSERT."""
    data: dict[str, Any] = {"delivery": out.id, "template": out.template, "channel": out.channel, "state": SENT}
    extra = (("broadcast", out.broadcast_id), ("msgid", result.msgid), ("reason", result.reason))
    data.update({k: v for k, v in extra if v})
    return {"follower_id": out.follower_id, "kind": f"message_{SENT}", "at": now, "interaction_id": None, "data": data}
