"""Tables of the knowledge base (migration 0014): FAQ versions, their entries, and the questions the bot missed.

Every change (a file loaded, one entry added, edited or deleted through the API) is a new version holding all its
entries, so the version a reply was decided with stays readable and the highest version is the active one.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import Float, ForeignKey, Index, Integer, String, Text
from sqlalchemy.orm import Mapped, mapped_column

from foundation.clock import utcnow
from foundation.db import Base, BigId, Json


class FaqVersion(Base):
    __tablename__ = "faq_versions"
    version: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=False)
    checksum: Mapped[str] = mapped_column(String(64))
    entries: Mapped[int] = mapped_column(Integer)
    change: Mapped[str] = mapped_column(String(160))  # "load faq_demo.yaml", "put price", "delete hours"...
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    created_by: Mapped[str | None] = mapped_column(String(128))


class FaqEntry(Base):
    __tablename__ = "faq_entries"
    version: Mapped[int] = mapped_column(ForeignKey("faq_versions.version"), primary_key=True)
    entry_id: Mapped[str] = mapped_column(String(64), primary_key=True)
    position: Mapped[int] = mapped_column(Integer)
    questions: Mapped[list[str]] = mapped_column(Json)
    answer: Mapped[str] = mapped_column(Text)
    tags: Mapped[list[str]] = mapped_column(Json, default=list)
    points: Mapped[int | None] = mapped_column(Integer)
    extra: Mapped[dict[str, Any] | None] = mapped_column(Json)  # fields of the file WeLead keeps but does not use


class FaqMiss(Base):
    """A question the bot could not answer (recorded by the applier, once per interaction)."""

    __tablename__ = "faq_misses"
    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    interaction_id: Mapped[int] = mapped_column(ForeignKey("interactions.id"), unique=True)
    openid: Mapped[str] = mapped_column(String(64))
    text: Mapped[str] = mapped_column(Text)
    norm: Mapped[str] = mapped_column(String(512))
    faq_version: Mapped[int | None] = mapped_column(Integer)
    score: Mapped[float | None] = mapped_column(Float)
    at: Mapped[datetime]

    __table_args__ = (Index("ix_faq_misses_at", "at"),)
