"""Tables of the playbook capability: versions, score events and their running totals, threshold arms, rule
firings of periodic triggers, saved segments. Created by migration 0002.

`score_events` is the truth (every point explained); `follower_scores` keeps one decayed running total per
follower and model so that reads and segment filters never sum the events: exponential decay is memoryless, so
score(t) = value * 0.5 ** ((t - as_of) / half_life) exactly.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import Float, ForeignKey, Index, Integer, String, Text
from sqlalchemy.orm import Mapped, mapped_column

from foundation.clock import utcnow
from foundation.db import Base, BigId, Json
from scrm.models import Follower, FollowerTag, Tag


class PlaybookVersion(Base):
    """One loaded playbook; the highest version is the active one. Old versions stay readable."""

    __tablename__ = "playbooks"
    version: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=False)
    name: Mapped[str] = mapped_column(String(128))
    checksum: Mapped[str] = mapped_column(String(64))
    source: Mapped[str] = mapped_column(Text)
    spec: Mapped[dict[str, Any]] = mapped_column(Json)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    created_by: Mapped[str | None] = mapped_column(String(128))


class ScoreEvent(Base):
    """Points given by a rule for an interaction (or a periodic trigger), as given at the time."""

    __tablename__ = "score_events"
    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    follower_id: Mapped[int] = mapped_column(ForeignKey("followers.id"))
    model: Mapped[str] = mapped_column(String(32))
    rule: Mapped[str] = mapped_column(String(128))
    interaction_id: Mapped[int | None] = mapped_column(ForeignKey("interactions.id"))
    points: Mapped[int] = mapped_column(Integer)
    at: Mapped[datetime]
    dedup: Mapped[str | None] = mapped_column(String(191), unique=True)

    __table_args__ = (
        Index("ix_score_events_follower_model_at", "follower_id", "model", "at"),
        Index("ix_score_events_follower_rule", "follower_id", "rule", "model", "at"),
    )


class FollowerScore(Base):
    """The decayed total of a follower's score events for one model, as of `as_of` (epoch seconds)."""

    __tablename__ = "follower_scores"
    follower_id: Mapped[int] = mapped_column(ForeignKey("followers.id"), primary_key=True)
    model: Mapped[str] = mapped_column(String(32), primary_key=True)
    value: Mapped[float] = mapped_column(Float)
    as_of: Mapped[float] = mapped_column(Float)
    half_life: Mapped[float | None] = mapped_column(Float)  # seconds; None = no decay

    __table_args__ = (Index("ix_follower_scores_model_value", "model", "value"),)


class ScoreArm(Base):
    """A fired threshold, disarmed until the score falls `margin` below it (hysteresis). No row = armed."""

    __tablename__ = "score_arms"
    follower_id: Mapped[int] = mapped_column(ForeignKey("followers.id"), primary_key=True)
    model: Mapped[str] = mapped_column(String(32), primary_key=True)
    threshold: Mapped[float] = mapped_column(Float, primary_key=True)
    fired_at: Mapped[datetime] = mapped_column(default=utcnow)


class RuleFiring(Base):
    """A periodic trigger (`inactive`) fired for a follower's quiet spell that began at `since`: once per spell."""

    __tablename__ = "rule_firings"
    follower_id: Mapped[int] = mapped_column(ForeignKey("followers.id"), primary_key=True)
    rule: Mapped[str] = mapped_column(String(128), primary_key=True)
    since: Mapped[datetime] = mapped_column(primary_key=True)
    at: Mapped[datetime] = mapped_column(default=utcnow)


class Segment(Base):
    """A saved filter (see scrm.segments); evaluated on demand, never materialised."""

    __tablename__ = "segments"
    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    name: Mapped[str] = mapped_column(String(128), unique=True)
    filter: Mapped[dict[str, Any]] = mapped_column(Json)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    created_by: Mapped[str | None] = mapped_column(String(128))


# Segment filters drive from a tag to its followers: a covering index makes that an index-only scan.
Index("ix_follower_tags_tag_follower", FollowerTag.tag_id, FollowerTag.follower_id)
# LIKE 'prefix%' uses a btree on PostgreSQL only with text_pattern_ops (SQLite's GLOB uses the plain index).
Index("ix_followers_source_pattern", Follower.source, postgresql_ops={"source": "text_pattern_ops"}).ddl_if(
    dialect="postgresql"
)
Index("ix_tags_name_pattern", Tag.name, postgresql_ops={"name": "text_pattern_ops"}).ddl_if(dialect="postgresql")
