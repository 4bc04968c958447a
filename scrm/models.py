"""The core tables: followers, their interactions (kept forever), timeline activity, tags, reps, outbox, API tokens.

Times are naive UTC (see foundation.clock.utcnow). The interactions table is the big one: keyed by a unique dedup key so
WeChat's retries collapse into one row, and indexed by (follower, time) for timelines.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import (
    Boolean,
    ForeignKey,
    Index,
    Integer,
    SmallInteger,
    String,
    Text,
    UniqueConstraint,
    text,
    true,
)
from sqlalchemy.orm import Mapped, mapped_column

from foundation.clock import utcnow
from foundation.db import Base, BigId, Json

UNAPPLIED = text("applied_at IS NULL")
FAILED = text("apply_error IS NOT NULL")


class Rep(Base):
    """A sales rep: a WeCom member who owns leads.

    `confirmed` is False for reps first seen in a WeCom callback: they keep the leads WeCom gave them but take no
    assignment until an admin confirms them. `hours` is the weekly schedule with dated exceptions in the shop's
    timezone (scrm.hours); None means always available. `daily_cap` bounds new leads per local day, `open_cap` the
    open leads a rep holds at once (None: no cap).
    """

    __tablename__ = "reps"
    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    userid: Mapped[str] = mapped_column(String(64), unique=True)
    name: Mapped[str] = mapped_column(String(128), default="")
    active: Mapped[bool] = mapped_column(Boolean, default=True, server_default=true())
    confirmed: Mapped[bool] = mapped_column(Boolean, default=True, server_default=true())
    weight: Mapped[int] = mapped_column(Integer, default=1, server_default="1")
    manager_id: Mapped[int | None] = mapped_column(ForeignKey("reps.id"))
    daily_cap: Mapped[int | None]
    open_cap: Mapped[int | None]
    hours: Mapped[dict[str, Any] | None] = mapped_column(Json)
    deactivated_at: Mapped[datetime | None]
    created_at: Mapped[datetime] = mapped_column(default=utcnow)


class Follower(Base):
    """Someone WeLead talks to: an OA follower (openid) or a WeCom external contact (external_userid).

    One person can have both (same unionid): the secondary row then points at the primary with `merged_into`.
    """

    __tablename__ = "followers"
    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    openid: Mapped[str] = mapped_column(String(64), unique=True)
    channel: Mapped[str] = mapped_column(String(8), default="oa")
    unionid: Mapped[str | None] = mapped_column(String(64), index=True)
    subscribed: Mapped[bool] = mapped_column(Boolean, default=False)
    subscribed_at: Mapped[datetime | None]
    unsubscribed_at: Mapped[datetime | None]
    source: Mapped[str | None] = mapped_column(String(128), index=True)
    stage: Mapped[str] = mapped_column(String(32), default="new", index=True)
    owner_id: Mapped[int | None] = mapped_column(ForeignKey("reps.id"), index=True)
    profile: Mapped[dict[str, Any]] = mapped_column(Json, default=dict)
    profile_fetched_at: Mapped[datetime | None]
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    last_active_at: Mapped[datetime | None] = mapped_column(index=True)
    # Set on the secondary identity of a person (scrm.merge): reads and new events resolve to this row instead.
    merged_into: Mapped[int | None] = mapped_column(BigId, ForeignKey("followers.id"), index=True)


class Interaction(Base):
    """One inbound callback, exactly once: the chat and event archive, and the applier's queue.

    The request writes the row with the passive reply it decided (`decision`) and the playbook version that decided
    it; the applier later sets `follower_id`, applies the effects with that same version and marks `applied_at`
    (with `apply_error` when an effect raised). `shard` partitions followers between appliers.
    """

    __tablename__ = "interactions"
    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    dedup_key: Mapped[str] = mapped_column(String(40), unique=True)
    channel: Mapped[str] = mapped_column(String(8))
    kind: Mapped[str] = mapped_column(String(48))
    follower_id: Mapped[int | None] = mapped_column(ForeignKey("followers.id"))
    openid: Mapped[str] = mapped_column(String(64))
    event_key: Mapped[str | None] = mapped_column(Text)
    msg_id: Mapped[str | None] = mapped_column(String(64))
    content: Mapped[str | None] = mapped_column(Text)
    payload: Mapped[dict[str, Any]] = mapped_column(Json, default=dict)
    at: Mapped[datetime]
    received_at: Mapped[datetime] = mapped_column(default=utcnow)
    scene: Mapped[str | None] = mapped_column(String(128))  # the QR scene / contact-way state, prefix stripped
    decision: Mapped[dict[str, Any] | None] = mapped_column(Json)
    playbook_version: Mapped[int | None]
    shard: Mapped[int] = mapped_column(SmallInteger, default=0, server_default="0")
    applied_at: Mapped[datetime | None]
    apply_error: Mapped[str | None] = mapped_column(Text)

    __table_args__ = (
        Index("ix_interactions_follower_at", "follower_id", "at"),
        Index("ix_interactions_unapplied", "id", sqlite_where=UNAPPLIED, postgresql_where=UNAPPLIED),
        Index("ix_interactions_failed", "id", sqlite_where=FAILED, postgresql_where=FAILED),
        Index("ix_interactions_kind_at", "kind", "at"),
        Index("ix_interactions_msg_id", "msg_id"),
    )


class Activity(Base):
    """A timeline entry that is not an inbound callback: stage change, tag added, delivery, assignment..."""

    __tablename__ = "activities"
    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    follower_id: Mapped[int] = mapped_column(ForeignKey("followers.id"))
    kind: Mapped[str] = mapped_column(String(48))
    at: Mapped[datetime] = mapped_column(default=utcnow)
    interaction_id: Mapped[int | None] = mapped_column(ForeignKey("interactions.id"))
    data: Mapped[dict[str, Any]] = mapped_column(Json, default=dict)

    __table_args__ = (Index("ix_activities_follower_at", "follower_id", "at"),)


class Tag(Base):
    __tablename__ = "tags"
    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    name: Mapped[str] = mapped_column(String(64), unique=True)
    wechat_tag_id: Mapped[int | None]
    created_at: Mapped[datetime] = mapped_column(default=utcnow)


class FollowerTag(Base):
    __tablename__ = "follower_tags"
    follower_id: Mapped[int] = mapped_column(ForeignKey("followers.id"), primary_key=True)
    tag_id: Mapped[int] = mapped_column(ForeignKey("tags.id"), primary_key=True, index=True)
    added_at: Mapped[datetime] = mapped_column(default=utcnow)
    synced_at: Mapped[datetime | None]


class Outbox(Base):
    """Follow-up work written in the same transaction as its cause; pushed to RQ after commit or by the sweeper."""

    __tablename__ = "outbox"
    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    task: Mapped[str] = mapped_column(String(64))
    args: Mapped[dict[str, Any]] = mapped_column(Json, default=dict)
    key: Mapped[str | None] = mapped_column(String(191), unique=True)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    run_after: Mapped[datetime | None]
    pushed_at: Mapped[datetime | None]
    claimed_until: Mapped[datetime | None]
    done_at: Mapped[datetime | None]
    attempts: Mapped[int] = mapped_column(Integer, default=0)
    last_error: Mapped[str | None] = mapped_column(Text)

    __table_args__ = (Index("ix_outbox_pending", "done_at", "pushed_at"),)


class ApiToken(Base):
    """A bearer token for the admin API, stored as its SHA-256; `subject` scopes rep and staff tokens."""

    __tablename__ = "api_tokens"
    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    name: Mapped[str] = mapped_column(String(128))
    role: Mapped[str] = mapped_column(String(16))
    token_hash: Mapped[str] = mapped_column(String(64), unique=True)
    subject: Mapped[str | None] = mapped_column(String(128))
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    revoked_at: Mapped[datetime | None]
    expires_at: Mapped[datetime | None]  # None: never

    __table_args__ = (UniqueConstraint("name", name="uq_api_tokens_name"),)
