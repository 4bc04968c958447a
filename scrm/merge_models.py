"""Tables of contact merges (scrm.merge): one row per merge of two identities of a person, and exactly which rows
moved from the secondary to the primary, so that an undo can move those rows back and nothing else.
Created by migration 0009.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import BigInteger, ForeignKey, Index, String, text
from sqlalchemy.orm import Mapped, mapped_column

from foundation.clock import utcnow
from foundation.db import Base, BigId, Json

MERGED, UNDONE = "merged", "undone"
ACTIVE = text("state = 'merged'")


class ContactMerge(Base):
    """The secondary identity (`secondary_id`) was merged into the primary. `before` keeps both rows' state
    (owner, stage, source) as it was, for the undo; `moved` counts the rows that moved, by kind."""

    __tablename__ = "contact_merges"
    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    primary_id: Mapped[int] = mapped_column(ForeignKey("followers.id"), index=True)
    secondary_id: Mapped[int] = mapped_column(ForeignKey("followers.id"), index=True)
    unionid: Mapped[str | None] = mapped_column(String(64), index=True)
    reason: Mapped[str] = mapped_column(String(16))  # unionid | manual
    state: Mapped[str] = mapped_column(String(8), default=MERGED)
    before: Mapped[dict[str, Any]] = mapped_column(Json, default=dict)
    moved: Mapped[dict[str, Any]] = mapped_column(Json, default=dict)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    created_by: Mapped[str | None] = mapped_column(String(128))
    undone_at: Mapped[datetime | None]
    undone_by: Mapped[str | None] = mapped_column(String(128))

    __table_args__ = (
        # One live merge per secondary, whatever races: the database says no to a second.
        Index("uq_contact_merges_live", "secondary_id", unique=True, sqlite_where=ACTIVE, postgresql_where=ACTIVE),
    )


class MergeMove(Base):
    """One row that moved to the primary: `kind` names the table (interaction, activity, score_event: `row_id` is
    its id; tag: `row_id` is the tag id of the secondary's follower_tags row)."""

    __tablename__ = "contact_merge_moves"
    merge_id: Mapped[int] = mapped_column(ForeignKey("contact_merges.id"), primary_key=True)
    kind: Mapped[str] = mapped_column(String(16), primary_key=True)
    row_id: Mapped[int] = mapped_column(BigInteger, primary_key=True, autoincrement=False)
