"""Journey tables: versioned definitions, runs (which version, where, due when), and step executions.

A run references the journey version it started on and finishes on it, whatever the playbook says later. Each
step a run executes writes one `journey_steps` row, unique per (run, step path), in the transaction of the step's
effects: a step retried, run twice by overlapping runners or after a crash cannot act twice.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import DateTime, ForeignKey, Index, Integer, String, Text, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column

from foundation.clock import utcnow
from foundation.db import Base, BigId, Json

RUNNING, FINISHED, CONVERTED, EXITED, STOPPED = "running", "finished", "converted", "exited", "stopped"
STATES = (RUNNING, FINISHED, CONVERTED, EXITED, STOPPED)


class JourneyVersion(Base):
    """One definition of a journey; a new one is stored when a playbook load changes the journey."""

    __tablename__ = "journey_versions"
    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    journey: Mapped[str] = mapped_column(String(32))
    version: Mapped[int] = mapped_column(Integer)
    checksum: Mapped[str] = mapped_column(String(64))
    spec: Mapped[dict[str, Any]] = mapped_column(Json)
    playbook_version: Mapped[int | None] = mapped_column(Integer)
    created_at: Mapped[datetime] = mapped_column(DateTime, default=utcnow)

    __table_args__ = (UniqueConstraint("journey", "version", name="uq_journey_versions"),)


class JourneyRun(Base):
    """One follower in one journey. `position` is the path of the next step ("3", "2.yes.0"), due at `due_at`;
    `since` is when the current wait began (event waits look for events after it)."""

    __tablename__ = "journey_runs"
    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    follower_id: Mapped[int] = mapped_column(ForeignKey("followers.id"))
    journey: Mapped[str] = mapped_column(String(32))
    key: Mapped[str] = mapped_column(String(191), unique=True)
    step: Mapped[int] = mapped_column(Integer, default=0)  # steps executed (kept for runs started before 0019)
    state: Mapped[str] = mapped_column(String(16), default=RUNNING)
    started_at: Mapped[datetime] = mapped_column(DateTime, default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(DateTime, default=utcnow)
    reason: Mapped[str | None] = mapped_column(Text)
    version: Mapped[int | None] = mapped_column(Integer)
    position: Mapped[str | None] = mapped_column(String(64))
    due_at: Mapped[datetime | None] = mapped_column(DateTime)
    since: Mapped[datetime | None] = mapped_column(DateTime)
    context: Mapped[dict[str, Any] | None] = mapped_column(Json)

    __table_args__ = (
        Index("ix_journey_runs_follower", "follower_id"),
        Index("ix_journey_runs_due", "state", "due_at", "id"),  # the runner's order: an index range (0024)
        Index("ix_journey_runs_journey", "journey", "version", "state"),
    )


class JourneyStep(Base):
    """A step a run executed, and which way it went (done, skipped, yes, no, waiting, happened, timeout)."""

    __tablename__ = "journey_steps"
    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    run_id: Mapped[int] = mapped_column(BigId, ForeignKey("journey_runs.id"))
    path: Mapped[str] = mapped_column(String(64))
    outcome: Mapped[str] = mapped_column(String(16))
    at: Mapped[datetime] = mapped_column(DateTime)

    __table_args__ = (UniqueConstraint("run_id", "path", name="uq_journey_steps"),)
