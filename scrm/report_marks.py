"""What the funnel and the rep leaderboard used to derive from the timeline at read time, stored as it happens.

- `stage_entries`: per follower and stage, the first time a `stage_changed` entry moved it there (its `data.to`).
  The funnel reads "reached" (the highest stage it was ever moved to) and the time between stages from it.
  With it the follower's creation (`born`), so the cohort's entries are one range of an index.
- `lead_assignments`: one row per `owner_assigned` entry naming a rep, with `followed_up_at`, the first
  `rep_action` of that rep on that lead at or after the assignment (NULL until there is one), and the lead's
  stage now (`stage`, a copy of `followers.stage`). The leaderboard reads leads, MQLs, follow-ups and the time to
  first follow-up from it alone: looking up 74k leads' follower rows cost more than the rest of the report.

Both are kept by database triggers on `activities` (and on `followers.stage`), in the transaction that writes the
entry. Why triggers and not a call in the applier: these three kinds of entries are written by seven code paths, ORM
and Core (the rules engine's notes, ingest visits, the ORM fallback of scrm.assign_effects, lead transfers in
scrm.handover, merges in scrm.merge, the rep pages in scrm.rep_actions, and tests and benches writing timeline rows
directly); a merge and its undo move entries between followers with one UPDATE. A trigger sees every one of them, so
the stored numbers equal the timeline's by construction and a new writer cannot forget them. On PostgreSQL the
triggers are statement-level with transition tables (one set-based statement per batch the applier inserts); SQLite
has only row triggers, which is fine at the sizes SQLite serves.

The definitions are exactly those of scrm.report_people's docstring; `backfill` rebuilds both tables from the
timeline (migration 0023, and bench/reports.py after a bulk load with the triggers off).
"""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import Connection, ForeignKey, Index, String, and_, delete, func, insert, select
from sqlalchemy.orm import Mapped, mapped_column

from foundation.db import Base, BigId
from scrm import report_triggers
from scrm.models import Activity, Follower

STAGE_CHANGED, ASSIGNED, REP_ACTION = "stage_changed", "owner_assigned", "rep_action"
KINDS = (STAGE_CHANGED, ASSIGNED, REP_ACTION)


class StageEntry(Base):
    """The first time a follower was moved into a stage (by any `stage_changed` entry on its timeline)."""

    __tablename__ = "stage_entries"
    follower_id: Mapped[int] = mapped_column(ForeignKey("followers.id"), primary_key=True)
    stage: Mapped[str] = mapped_column(String(32), primary_key=True)
    at: Mapped[datetime]
    born: Mapped[datetime]  # the follower's created_at (never changes): the funnel's cohort without its row

    __table_args__ = (Index("ix_stage_entries_born", "born", "follower_id", "stage", "at"),)


class LeadAssignment(Base):
    """An `owner_assigned` entry naming a rep, and the first follow-up of that rep on that lead at or after it."""

    __tablename__ = "lead_assignments"
    activity_id: Mapped[int] = mapped_column(BigId, ForeignKey("activities.id"), primary_key=True,
                                             autoincrement=False)  # fmt: skip
    follower_id: Mapped[int] = mapped_column(ForeignKey("followers.id"))
    rep_id: Mapped[int]
    at: Mapped[datetime]
    followed_up_at: Mapped[datetime | None]
    stage: Mapped[str | None] = mapped_column(String(32))  # the lead's stage now (its follower row's, kept in step)

    __table_args__ = (
        Index("ix_lead_assignments_at", "at", "rep_id", "follower_id", "followed_up_at", "stage"),
        Index("ix_lead_assignments_lead", "follower_id", "rep_id", "at"),
    )


_A, _F = Activity.__table__.c, Follower.__table__.c
_SE, _LA = StageEntry.__table__, LeadAssignment.__table__


def backfill(conn: Connection) -> None:
    """Rebuild both tables from the timeline, set-based (one statement each): what the triggers would have
    written had they seen every entry."""
    conn.execute(delete(_LA))
    conn.execute(delete(_SE))
    to = _A.data["to"].as_string()
    firsts = (
        select(_A.follower_id, to, func.min(_A.at), _F.created_at)
        .join(Follower, Follower.id == _A.follower_id)
        .where(_A.kind == STAGE_CHANGED, to.is_not(None))
        .group_by(_A.follower_id, to, _F.created_at)
    )
    conn.execute(insert(_SE).from_select(["follower_id", "stage", "at", "born"], firsts))
    act = Activity.__table__.alias("act")
    rep = _A.data["rep"].as_integer()
    by_rep = and_(act.c.follower_id == _A.follower_id, act.c.kind == REP_ACTION, act.c.at >= _A.at,
                  act.c.data["rep"].as_integer() == rep)  # fmt: skip
    rows = (
        select(_A.id, _A.follower_id, rep, _A.at, func.min(act.c.at), _F.stage)
        .select_from(Activity.__table__.join(Follower, Follower.id == _A.follower_id).outerjoin(act, by_rep))
        .where(_A.kind == ASSIGNED, rep.is_not(None))
        .group_by(_A.id, _A.follower_id, rep, _A.at, _F.stage)
    )
    columns = ["activity_id", "follower_id", "rep_id", "at", "followed_up_at", "stage"]
    conn.execute(insert(_LA).from_select(columns, rows))


def install(conn: Connection) -> None:
    """Create the triggers (and on PostgreSQL their functions) for this connection's dialect."""
    for statement in report_triggers.CREATE[conn.dialect.name]:
        conn.exec_driver_sql(statement)


def uninstall(conn: Connection) -> None:
    """Drop them (a bulk load that backfills afterwards, the downgrade)."""
    for statement in report_triggers.DROP[conn.dialect.name]:
        conn.exec_driver_sql(statement)
