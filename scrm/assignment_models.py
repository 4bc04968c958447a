"""The picker's state (scrm.assignment): each pool's virtual clock, each member's place in it, and the leads each rep
was given per local day (what daily caps are checked against).

A pool is a named group the weighted round-robin runs over: `team:<code id>` for a team code, `mql` for unowned
followers reaching the MQL stage, or any name a caller chooses (the lead pool, reassignment).
"""

from __future__ import annotations

from datetime import date, datetime

from sqlalchemy import Date, Float, ForeignKey, Integer, String
from sqlalchemy.orm import Mapped, mapped_column

from foundation.clock import utcnow
from foundation.db import Base


class AssignmentPool(Base):
    """`clock`: the pool's virtual time at its latest pick (`picks` of them); members who sat out (off hours, capped)
    rejoin at the virtual time, so a rep back from lunch gets their share from then on, not a burst for the time
    they missed."""

    __tablename__ = "assignment_pools"
    name: Mapped[str] = mapped_column(String(64), primary_key=True)
    clock: Mapped[float] = mapped_column(Float, default=0.0)
    picks: Mapped[int] = mapped_column(Integer, default=0)
    updated_at: Mapped[datetime] = mapped_column(default=utcnow)


class AssignmentTurn(Base):
    """A member's virtual finish time in a pool: each lead moves it on by 1/weight; the smallest goes next.
    `seen`: the number of the pool's latest pick the member was eligible for (a gap means they sat out)."""

    __tablename__ = "assignment_turns"
    pool: Mapped[str] = mapped_column(String(64), primary_key=True)
    rep_id: Mapped[int] = mapped_column(ForeignKey("reps.id"), primary_key=True)
    finish: Mapped[float] = mapped_column(Float, default=0.0)
    seen: Mapped[int] = mapped_column(Integer, default=0)
    picks: Mapped[int] = mapped_column(Integer, default=0)


class RepDayLoad(Base):
    """Leads a rep was given on one local day (Asia/Shanghai), however they came: picks, personal codes, WeCom."""

    __tablename__ = "rep_day_loads"
    rep_id: Mapped[int] = mapped_column(ForeignKey("reps.id"), primary_key=True)
    day: Mapped[date] = mapped_column(Date, primary_key=True)
    assigned: Mapped[int] = mapped_column(Integer, default=0)
