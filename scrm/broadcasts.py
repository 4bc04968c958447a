"""Broadcasts: one library message to a segment, fanned out into deliveries page by page, never all at once.

The fan-out (scrm.fanout) reads the segment in follower-id order inside the database, and for each page inserts one
delivery per follower with INSERT ... SELECT ... ON CONFLICT DO NOTHING on the key `b:<broadcast>:<openid>` and
advances `cursor` (the last follower id) with a compare-and-set, in one transaction. So it can die and resume, run
twice at once, or be re-run on purpose, and nobody gets two rows.
"""

from __future__ import annotations

import secrets
import time
from datetime import datetime
from typing import Any

from sqlalchemy import ColumnElement, case, func, select, update
from sqlalchemy.orm import Session

from foundation.clock import utcnow
from foundation.sql import insert_ignore
from scrm import audience, deliveries, delivery_queue, delivery_reads, fanout, followers, guards, link_reads
from scrm.delivery_models import CANCELLED, DONE, FINAL, PAUSED, RUNNING, Broadcast
from scrm.guards import SendRules
from scrm.message_templates import MASS, Library, TemplateError, render
from scrm.models import Follower

PAGE = 25_000  # deliveries inserted per fan-out transaction (one INSERT ... SELECT; on SQLite ~0.2 s of the lock)
MASS_BATCH = 10_000  # openids per mass-send call (WeChat's maximum); mass calls are few a day
RENDER_SAMPLE = 200  # followers a new broadcast's template is rendered for before anything is created


class InvalidBroadcast(ValueError):
    """The request cannot become a broadcast (unknown template, channel not allowed, bad segment...)."""


def job_name() -> str:
    """A new send job's id: time-ordered (fixed-width hex nanoseconds first), so the rows of new jobs go in at the
    end of the (state, job) index instead of all over it (PostgreSQL, 1M rows: that index's cost fell by a third)."""
    return f"send-{time.time_ns():016x}-{secrets.token_hex(4)}"


def _where(session: Session, segment: Any) -> ColumnElement[bool]:
    """The segment's condition; an empty filter is refused (a broadcast to everyone says so: `{"all": true}`)."""
    try:
        if audience.resolve(session, segment) in ({}, None):
            raise audience.SegmentError('an empty filter; say {"all": true} to mean every follower')
        return audience.where(session, segment)
    except audience.SegmentError as exc:
        raise InvalidBroadcast(f"segment: {exc}") from None


def _insert(session: Session, values: dict[str, Any]) -> int | None:
    return session.scalar(insert_ignore(session, Broadcast, ["key"], returning="id"), values)


def create(
    session: Session,
    lib: Library,
    *,
    template: str,
    segment: Any,
    data: dict[str, Any],
    channel: str | None = None,
    key: str | None = None,
    name: str = "",
    created_by: str | None = None,
    error_budget: float = 0.1,
    breaker_window: int = 200,
) -> tuple[Broadcast, bool, list[str]]:
    """A running broadcast (fan-out pending), or the existing one with the same `key` (False: nothing new), and the
    warnings to show before anything is sent (some followers the template cannot render for, none subscribed).

    Refused up front (InvalidBroadcast): an unknown template or channel, a bad or empty segment, a template that
    renders for none of the followers checked.
    """
    if key:
        found = session.scalar(select(Broadcast).where(Broadcast.key == key))
        if found is not None:
            return found, False, []
    try:
        tpl = lib.get(template)
    except TemplateError as exc:
        raise InvalidBroadcast(str(exc)) from None
    channel = channel or tpl.channels[0]
    if channel not in tpl.channels:
        raise InvalidBroadcast(f"{template!r} cannot go by {channel!r}: allowed {', '.join(tpl.channels)}")
    segment = _stored(segment)
    where = _where(session, segment)
    size, subscribed = _sizes(session, where)
    if size == 0:
        raise InvalidBroadcast("segment: matches no followers, nothing to send (check it with `flask segment count`)")
    warnings = _dry_run(session, lib, template, channel, where, data)
    if subscribed == 0:
        warnings.append(f"none of the {size} followers of the segment is subscribed: every delivery will be blocked")
    now = utcnow()
    new_id = _insert(
        session,
        {
            "key": key,
            "name": name or template,
            "template": template,
            "channel": channel,
            "segment": segment,
            "data": data,
            "state": RUNNING,
            "cursor": 0,
            "total": 0,
            "audience": size,
            "error_budget": error_budget,
            "breaker_window": breaker_window,
            "created_by": created_by,
            "created_at": now,
            "updated_at": now,
        },
    )
    if new_id is None:  # a concurrent create with the same key won
        return session.scalar(select(Broadcast).where(Broadcast.key == key)), False, []
    return session.get(Broadcast, new_id), True, warnings


def _stored(segment: Any) -> Any:
    """A query string or JSON text becomes its filter (the same forms as `flask segment count`)."""
    try:
        return audience.normalise(segment)
    except audience.SegmentError as exc:
        raise InvalidBroadcast(f"segment: {exc}") from None


def _sizes(session: Session, where: Any) -> tuple[int, int]:
    """(followers, subscribed followers) of the segment, in one count."""
    row = session.execute(
        select(func.count(), func.sum(case((Follower.subscribed.is_(True), 1), else_=0))).where(where)
    ).one()
    return int(row[0] or 0), int(row[1] or 0)


def _sample(session: Session, where: Any, channel: str) -> list[Follower]:
    """The segment's first and last followers by id (index reads, no scan): a mass text is the same for all."""
    n = 1 if channel == MASS else RENDER_SAMPLE // 2
    first = session.scalars(select(Follower).where(where).order_by(Follower.id).limit(n)).all()
    last = session.scalars(select(Follower).where(where).order_by(Follower.id.desc()).limit(n)).all()
    seen = {f.id: f for f in (*first, *reversed(last))}
    return list(seen.values())


def _dry_run(
    session: Session, lib: Library, template: str, channel: str, where: Any, data: dict[str, Any]
) -> list[str]:
    """Render for a sample of the segment now, so missing data fails the request, not 100k sends; a template that
    fails for some of them only is a warning (those deliveries end as error/render)."""
    people = _sample(session, where, channel)
    shown = followers.serialize(session, people) if channel != MASS else [{} for _ in people]
    failed: list[tuple[str, str]] = []
    for person, follower in zip(people, shown, strict=True):
        try:
            render(lib.get(template), channel, {"follower": follower, "event": {}, "data": data, "now": utcnow()})
        except TemplateError as exc:
            failed.append((person.openid, str(exc)))
    if not failed:
        return []
    openid, error = failed[0]
    if len(failed) == len(people):
        raise InvalidBroadcast(f"{template!r} does not render for {openid}: {error}")
    return [f"{template!r} does not render for {len(failed)} of the {len(people)} followers checked "
            f"(first {openid}: {error}); their deliveries will end as error/render"]  # fmt: skip


def batch_size(broadcast: Broadcast, batch: int) -> int:
    """Deliveries per send job: a mass send takes up to 10,000 openids in one call."""
    return MASS_BATCH if broadcast.channel == MASS else batch


def plan(session: Session, broadcast_id: int, batch: int) -> fanout.Plan | None:
    """What the fan-out of a running broadcast not fanned out yet needs; None when there is nothing to fan out."""
    b = get(session, broadcast_id)
    if b.state != RUNNING or b.fanned_out_at is not None:
        return None
    return fanout.Plan(b.id, b.channel, b.template, _where(session, b.segment), b.cursor, batch_size(b, batch),
                       job_name())  # fmt: skip


def count_audience(session: Session, broadcast_id: int) -> int:
    """How many followers the segment has (once, at the start of the fan-out: the progress bar's total)."""
    b = session.get(Broadcast, broadcast_id)
    if b.audience is None:
        b.audience = int(session.scalar(select(func.count()).select_from(Follower).where(_where(session, b.segment))))
    return b.audience


def fanned_out(session: Session, broadcast_id: int, cursor: int, now: datetime) -> bool:
    """The stream ended: mark the fan-out complete, unless another fan-out moved the cursor past ours."""
    moved = session.execute(
        update(Broadcast)
        .where(Broadcast.id == broadcast_id, Broadcast.cursor == cursor, Broadcast.fanned_out_at.is_(None))
        .values(fanned_out_at=now, updated_at=now)
        .execution_options(synchronize_session=False)
    ).rowcount
    return moved == 1


# --- control --------------------------------------------------------------------------------------------------------


def get(session: Session, broadcast_id: int) -> Broadcast:
    b = session.get(Broadcast, broadcast_id)
    if b is None:
        raise deliveries.NotFound(f"no broadcast {broadcast_id}")
    return b


def pause(session: Session, broadcast_id: int, reason: str) -> bool:
    """running → paused with the reason shown by the status; False if it was not running."""
    b = get(session, broadcast_id)
    if b.state != RUNNING:
        return False
    b.state, b.pause_reason, b.updated_at = PAUSED, reason, utcnow()
    return True


def resume(session: Session, broadcast_id: int) -> bool:
    """paused → running; its queued rows lose their old jobs so the pump pushes them again."""
    b = get(session, broadcast_id)
    if b.state != PAUSED:
        return False
    b.state, b.pause_reason, b.updated_at = RUNNING, None, utcnow()
    delivery_queue.release_broadcast(session, b.id)
    return True


def cancel(session: Session, broadcast_id: int) -> int | None:
    """Cancel and mark every queued row cancelled (rows already sending finish); None if already over."""
    b = get(session, broadcast_id)
    if b.state in (CANCELLED, DONE):
        return None
    now = utcnow()
    b.state, b.updated_at, b.finished_at = CANCELLED, now, now
    return delivery_queue.cancel_queued(session, b.id, now)


def finish_if_done(session: Session, broadcast_id: int) -> bool:
    """running, fanned out and nothing queued or sending → done."""
    b = session.get(Broadcast, broadcast_id)
    if b is None or b.state != RUNNING or b.fanned_out_at is None or delivery_queue.pending(session, b.id):
        return False
    now = utcnow()
    b.state, b.finished_at, b.updated_at = DONE, now, now
    return True


def unfinished(session: Session) -> list[tuple[int, bool]]:
    """Running broadcasts: (id, fanned out?) for the pump to finish or to restart a stalled fan-out."""
    rows = session.execute(select(Broadcast.id, Broadcast.fanned_out_at).where(Broadcast.state == RUNNING))
    return [(bid, fanned is not None) for bid, fanned in rows]


def status(session: Session, broadcast_id: int) -> dict[str, Any]:
    """Counts per state, progress, why rows were skipped, and why it paused (the breaker says so here)."""
    b = get(session, broadcast_id)
    counts = delivery_reads.counts(session, b.id)
    final = sum(n for state, n in counts.items() if state in FINAL)
    return {
        "id": b.id,
        "key": b.key,
        "name": b.name,
        "template": b.template,
        "channel": b.channel,
        "segment": b.segment,
        "data": b.data,
        "state": b.state,
        "pause_reason": b.pause_reason,
        "audience": b.audience,
        "total": b.total,
        "fanned_out": b.fanned_out_at is not None,
        "counts": counts,
        "finished": final,
        "progress": round(final / b.total, 4) if b.total else 0.0,
        "retries": delivery_reads.retries(session, b.id),
        "reasons": delivery_reads.reasons(session, b.id),
        "waiting_until": followers.iso(delivery_reads.waiting_until(session, b.id, utcnow())),
        "error_budget": b.error_budget,
        "breaker_window": b.breaker_window,
        "created_by": b.created_by,
        "created_at": followers.iso(b.created_at),
        "finished_at": followers.iso(b.finished_at),
        "clicks": link_reads.broadcast(session, b.id),  # delivered → clicked (scrm.link_reads)
    }


DEFERRALS = {"quiet_hours": "quiet hours", "daily_quota": "the daily template quota"}


def deferred(status: dict[str, Any]) -> bool:
    """Fanned out, nothing in flight, and every queued row deferred for hours (quiet hours, quota): watching it
    would show a bar at 0% until then."""
    queued = status["counts"].get("queued", 0)
    waiting = sum(n for reason, n in status["reasons"].get("queued", {}).items() if reason in DEFERRALS)
    in_flight = status["counts"].get("sending", 0)
    return status["fanned_out"] and queued > 0 and waiting == queued and not in_flight and bool(status["waiting_until"])


def local_time(at: datetime, rules: SendRules) -> str:
    """A naive UTC time as the marketer reads it: `08:00 Asia/Shanghai` (with the date when it is not today)."""
    local, today = guards.local_now(rules, at), guards.local_now(rules, utcnow())
    shown = local.strftime("%H:%M") if local.date() == today.date() else local.strftime("%Y-%m-%d %H:%M")
    return f"{shown} {rules.timezone}"


def waiting_note(status: dict[str, Any], rules: SendRules) -> str | None:
    """`waiting until 08:00 Asia/Shanghai (quiet hours)` for a running broadcast whose queued rows were deferred."""
    queued = status["reasons"].get("queued", {})
    if status["state"] != RUNNING or not status["waiting_until"] or not queued:
        return None
    reason = max(queued, key=lambda r: queued[r])
    until = datetime.fromisoformat(status["waiting_until"].removesuffix("Z"))
    return f"waiting until {local_time(until, rules)} ({DEFERRALS.get(reason, reason)})"


def listing(session: Session, limit: int = 50) -> list[dict[str, Any]]:
    rows = session.scalars(select(Broadcast).order_by(Broadcast.id.desc()).limit(limit))
    return [
        {
            "id": b.id,
            "name": b.name,
            "template": b.template,
            "channel": b.channel,
            "state": b.state,
            "total": b.total,
            "created_at": followers.iso(b.created_at),
        }
        for b in rows
    ]
