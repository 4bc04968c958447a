"""Outbound messages: one Delivery row per message to one follower, and the Broadcasts that fan them out.

The delivery table is the source of truth for what was sent: RQ jobs only carry delivery ids, so a Redis restart
or a killed worker loses nothing (the pump in tasks.pump re-pushes what lost its job). The idempotency key is unique,
so the same message (broadcast id + openid, rule + interaction, an API caller's key) can never become two rows.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import Boolean, Float, Index, Integer, String, Text, text
from sqlalchemy.orm import Mapped, mapped_column

from foundation.clock import utcnow
from foundation.db import Base, BigId, Json

# Delivery states. queued → sending → sent → delivered | failed is the happy path; the rest are terminal.
QUEUED, SENDING, SENT, DELIVERED, FAILED = "queued", "sending", "sent", "delivered", "failed"
BLOCKED, ERROR, UNKNOWN, SKIPPED, CANCELLED = "blocked", "error", "unknown", "skipped", "cancelled"
PENDING = (QUEUED, SENDING)
FINAL = (SENT, DELIVERED, FAILED, BLOCKED, ERROR, UNKNOWN, SKIPPED, CANCELLED)

# Broadcast states.
RUNNING, PAUSED, DONE = "running", "paused", "done"


def _where(condition: str) -> dict[str, Any]:
    return {"sqlite_where": text(condition), "postgresql_where": text(condition)}


_WHERE_SENT, _WHERE_MSGID = _where("sent_at IS NOT NULL"), _where("msgid IS NOT NULL")


class Broadcast(Base):
    """One message to a segment; `cursor` is the last follower id fanned out, so a fan-out resumes where it died."""

    __tablename__ = "broadcasts"
    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    key: Mapped[str | None] = mapped_column(String(191), unique=True)
    name: Mapped[str] = mapped_column(String(128), default="")
    template: Mapped[str] = mapped_column(String(64))
    channel: Mapped[str] = mapped_column(String(16))
    segment: Mapped[Any] = mapped_column(Json)
    data: Mapped[dict[str, Any]] = mapped_column(Json, default=dict)
    state: Mapped[str] = mapped_column(String(16), default=RUNNING)
    pause_reason: Mapped[str | None] = mapped_column(Text)
    audience: Mapped[int | None] = mapped_column(Integer)
    cursor: Mapped[int] = mapped_column(BigId, default=0)
    total: Mapped[int] = mapped_column(Integer, default=0)
    fanned_out_at: Mapped[datetime | None]
    error_budget: Mapped[float] = mapped_column(Float, default=0.1)
    breaker_window: Mapped[int] = mapped_column(Integer, default=200)
    created_by: Mapped[str | None] = mapped_column(String(128))
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(default=utcnow)
    finished_at: Mapped[datetime | None]


class Delivery(Base):
    """One message to one follower, with its state, the exact request sent and WeChat's answer."""

    __tablename__ = "deliveries"
    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    key: Mapped[str] = mapped_column(String(191), unique=True)
    # follower_id and broadcast_id carry no foreign keys: each cost a fan-out a lookup per row (migration 0025)
    follower_id: Mapped[int] = mapped_column(BigId)
    openid: Mapped[str] = mapped_column(String(64))
    channel: Mapped[str] = mapped_column(String(16))  # template | custom | mass
    template: Mapped[str] = mapped_column(String(64))  # the library entry's name
    args: Mapped[dict[str, Any]] = mapped_column(Json, default=dict)  # extra data (broadcast rows: the broadcast's)
    broadcast_id: Mapped[int | None] = mapped_column(Integer)
    source: Mapped[str] = mapped_column(String(64), default="api")
    state: Mapped[str] = mapped_column(String(16), default=QUEUED)
    reason: Mapped[str | None] = mapped_column(String(32))  # a short code: why blocked/skipped/error/deferred
    detail: Mapped[str | None] = mapped_column(Text)
    error_code: Mapped[int | None] = mapped_column(Integer)
    msgid: Mapped[str | None] = mapped_column(String(64))
    payload: Mapped[dict[str, Any] | None] = mapped_column(Json)  # the request body, as sent
    attempts: Mapped[int] = mapped_column(Integer, default=0)  # requests that may have left this machine
    retries: Mapped[int] = mapped_column(Integer, default=0)  # retryable failures (-1, 45009, not sent)
    in_doubt: Mapped[bool] = mapped_column(Boolean, default=False)  # its worker died mid-send
    job: Mapped[str | None] = mapped_column(String(48))  # the RQ job it was pushed in
    send_after: Mapped[datetime | None]
    pushed_at: Mapped[datetime | None]
    attempted_at: Mapped[datetime | None]
    sent_at: Mapped[datetime | None]
    done_at: Mapped[datetime | None]
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(default=utcnow)

    __table_args__ = (
        Index("ix_deliveries_broadcast_state", "broadcast_id", "state"),
        # Partial: a new delivery has neither, and a fan-out writes a million of them (fewer index writes).
        Index("ix_deliveries_follower_sent", "follower_id", "sent_at", **_WHERE_SENT),
        Index("ix_deliveries_state_job", "state", "job"),
        Index("ix_deliveries_msgid", "msgid", **_WHERE_MSGID),
    )
