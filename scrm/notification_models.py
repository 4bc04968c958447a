"""What WeLead told reps and customers in WeCom: notifications to reps (app messages) and welcome messages.

`RepNotification`: one row per (lead, reason, crossing, recipient). Its `key` is the outbox key of the "rep.notify" job
that raised it (plus `>manager` for the manager's copy), so retries of the job find the same row. Rows of one rep
leave together when WeCom's per-member limit forces a digest; `message` names the app message that carried them.

`WelcomeMessage`: one row per WelcomeCode (WeCom lets one message through per code, within 20 s of the event).
"""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import Boolean, ForeignKey, Index, Integer, String, Text, false
from sqlalchemy.orm import Mapped, mapped_column

from foundation.clock import utcnow
from foundation.db import Base, BigId

# RepNotification.state
PENDING, SENDING, SENT, FAILED, UNKNOWN = "pending", "sending", "sent", "failed", "unknown"
# WelcomeMessage.status
QUEUED, W_SENT, ALREADY_SENT, EXPIRED, SKIPPED, ERROR = "queued", "sent", "already_sent", "expired", "skipped", "error"


class RepNotification(Base):
    __tablename__ = "rep_notifications"
    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    key: Mapped[str] = mapped_column(String(191), unique=True)
    rep_id: Mapped[int] = mapped_column(ForeignKey("reps.id"))
    follower_id: Mapped[int] = mapped_column(ForeignKey("followers.id"))
    kind: Mapped[str] = mapped_column(String(16))  # assigned | mql | handoff | returned | removed | rule
    reason: Mapped[str] = mapped_column(Text, default="")
    rule: Mapped[str | None] = mapped_column(String(128))
    about_rep_id: Mapped[int | None] = mapped_column(ForeignKey("reps.id"))  # the manager's copy: which rep
    state: Mapped[str] = mapped_column(String(16), default=PENDING)
    userid: Mapped[str | None] = mapped_column(String(64))  # the WeCom member it went to (when it went)
    message: Mapped[str | None] = mapped_column(String(32))  # the app message that carried it
    digest: Mapped[bool] = mapped_column(Boolean, default=False, server_default=false())
    attempts: Mapped[int] = mapped_column(Integer, default=0)
    errcode: Mapped[int | None]
    error: Mapped[str | None] = mapped_column(Text)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    claimed_at: Mapped[datetime | None]
    sent_at: Mapped[datetime | None]

    __table_args__ = (Index("ix_rep_notifications_rep_state", "rep_id", "state"),)


class WelcomeMessage(Base):
    __tablename__ = "welcome_messages"
    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    code: Mapped[str] = mapped_column(String(191), unique=True)  # WeCom's WelcomeCode
    external_userid: Mapped[str] = mapped_column(String(64), index=True)
    userid: Mapped[str] = mapped_column(String(64))  # the rep the customer added
    scene: Mapped[str | None] = mapped_column(String(64))  # the contact way's state (rep:<id>, team:<id>)
    contact_code_id: Mapped[int | None] = mapped_column(ForeignKey("contact_codes.id"))
    text: Mapped[str | None] = mapped_column(Text)
    status: Mapped[str] = mapped_column(String(16), default=QUEUED, index=True)
    attempts: Mapped[int] = mapped_column(Integer, default=0)
    errcode: Mapped[int | None]
    error: Mapped[str | None] = mapped_column(Text)
    event_at: Mapped[datetime]  # the callback's CreateTime: WeCom's 20-second window starts here
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    sent_at: Mapped[datetime | None]
