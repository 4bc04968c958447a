"""Tables of events and booths (migration 0015): events, booths, check-ins, event staff, duty shifts, leads.

A booth's OA code carries the scene `booth:<event>:<booth>`, its staff code `staff:<event>:<booth>` (scrm.scenes).
A check-in is one row per follower and booth: the first and last scan, how many scans, and whether the first one
came after the event had ended. Leads are written by the form flow (one per interaction that completed a form);
the events module only reads them (stats, export). Times are naive UTC like the rest of the schema.
"""

from __future__ import annotations

from datetime import date, datetime
from typing import Any

from sqlalchemy import Boolean, Date, ForeignKey, Index, Integer, String, UniqueConstraint, false
from sqlalchemy.orm import Mapped, mapped_column

from foundation.clock import utcnow
from foundation.db import Base, BigId, Json


class Event(Base):
    """`code_kind`: "temporary" booth codes expire at `ends_at` (WeChat allows 30 days at most), "permanent" ones
    never do but count against the account's 100,000. `form`: the lead form (None = name → company → mobile)."""

    __tablename__ = "events"
    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    slug: Mapped[str] = mapped_column(String(24), unique=True)
    name: Mapped[str] = mapped_column(String(128), default="")
    starts_at: Mapped[datetime]
    ends_at: Mapped[datetime]
    code_kind: Mapped[str] = mapped_column(String(12), default="temporary")
    form: Mapped[dict[str, Any] | None] = mapped_column(Json)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(default=utcnow)


class Booth(Base):
    """`reply`: what a scan answers, {"text": "..."} or {"news": [{"title", "description", "url", "picurl"}]};
    None = templates/events/booth.txt. The two codes are created by a task against WeChat's qrcode/create."""

    __tablename__ = "booths"
    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    event_id: Mapped[int] = mapped_column(ForeignKey("events.id"))
    slug: Mapped[str] = mapped_column(String(24))
    name: Mapped[str] = mapped_column(String(128), default="")
    reply: Mapped[dict[str, Any] | None] = mapped_column(Json)
    booth_ticket: Mapped[str | None] = mapped_column(String(255))
    booth_url: Mapped[str | None] = mapped_column(String(255))
    staff_ticket: Mapped[str | None] = mapped_column(String(255))
    staff_url: Mapped[str | None] = mapped_column(String(255))
    codes_expire_at: Mapped[datetime | None]  # None: permanent codes (or none made yet)
    codes_error: Mapped[str | None] = mapped_column(String(255))
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(default=utcnow)

    __table_args__ = (UniqueConstraint("event_id", "slug", name="uq_booths_event_slug"),)


class Checkin(Base):
    """One follower at one booth. `scans` counts every booth scan (the first included); `late`: the first scan came
    after the event's end; `late_scans` counts the scans after the end (first or repeat)."""

    __tablename__ = "checkins"
    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    follower_id: Mapped[int] = mapped_column(ForeignKey("followers.id"))
    event_id: Mapped[int] = mapped_column(ForeignKey("events.id"))
    booth_id: Mapped[int] = mapped_column(ForeignKey("booths.id"))
    first_at: Mapped[datetime]
    last_at: Mapped[datetime]
    scans: Mapped[int] = mapped_column(Integer, default=1)
    late: Mapped[bool] = mapped_column(Boolean, default=False, server_default=false())
    late_scans: Mapped[int] = mapped_column(Integer, default=0, server_default="0")
    interaction_id: Mapped[int | None] = mapped_column(ForeignKey("interactions.id"))  # the first scan (None: migrated)

    __table_args__ = (
        UniqueConstraint("follower_id", "booth_id", name="uq_checkins_follower_booth"),
        Index("ix_checkins_event_first", "event_id", "first_at"),
    )


class EventStaff(Base):
    """Someone who works an event: a rep, or anyone matched by OA openid or WeCom userid."""

    __tablename__ = "event_staff"
    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    event_id: Mapped[int] = mapped_column(ForeignKey("events.id"))
    rep_id: Mapped[int | None] = mapped_column(ForeignKey("reps.id"))
    openid: Mapped[str | None] = mapped_column(String(64))
    userid: Mapped[str | None] = mapped_column(String(64))
    name: Mapped[str] = mapped_column(String(128), default="")
    created_at: Mapped[datetime] = mapped_column(default=utcnow)

    __table_args__ = (
        UniqueConstraint("event_id", "openid", name="uq_event_staff_openid"),
        UniqueConstraint("event_id", "userid", name="uq_event_staff_userid"),
        Index("ix_event_staff_openid", "openid"),
    )


class StaffDuty(Base):
    """A staff member on duty at a booth for one local day (Asia/Shanghai); `off_at` None = still on duty."""

    __tablename__ = "staff_duty"
    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    staff_id: Mapped[int] = mapped_column(ForeignKey("event_staff.id"))
    event_id: Mapped[int] = mapped_column(ForeignKey("events.id"))
    booth_id: Mapped[int] = mapped_column(ForeignKey("booths.id"))
    day: Mapped[date] = mapped_column(Date)
    on_at: Mapped[datetime]
    off_at: Mapped[datetime | None]

    __table_args__ = (Index("ix_staff_duty_booth_day", "booth_id", "day"),)


class EventLead(Base):
    """A completed lead form. `mobile` is normalised (11 digits, +86 stripped); reads mask it (scrm.event_leads)."""

    __tablename__ = "event_leads"
    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    event_id: Mapped[int] = mapped_column(ForeignKey("events.id"))
    booth_id: Mapped[int | None] = mapped_column(ForeignKey("booths.id"))
    follower_id: Mapped[int] = mapped_column(ForeignKey("followers.id"))
    fields: Mapped[dict[str, Any]] = mapped_column(Json, default=dict)
    name: Mapped[str | None] = mapped_column(String(128))
    company: Mapped[str | None] = mapped_column(String(128))
    mobile: Mapped[str | None] = mapped_column(String(16))
    via: Mapped[str] = mapped_column(String(8), default="chat")  # "chat" | "h5"
    staff_id: Mapped[int | None] = mapped_column(ForeignKey("event_staff.id"))
    rep_id: Mapped[int | None] = mapped_column(ForeignKey("reps.id"))
    interaction_id: Mapped[int | None] = mapped_column(ForeignKey("interactions.id"), unique=True)
    at: Mapped[datetime]

    __table_args__ = (Index("ix_event_leads_event_at", "event_id", "at"),)
