"""Leads handed from one rep to another: one Transfer row per lead moved (or refused), OA and WeCom alike.

An OA lead changes owner in WeLead only, so its row is born `done`. A WeCom external contact changes owner in WeCom
too (externalcontact/transfer_customer, or the resigned variant), which takes up to 24 hours and may be refused, so
its row walks a small state machine:

    pending → sending → waiting (WeCom accepted; takeover within 24 h) → done (status 1)
                      ↘ unknown (no answer: asked again only after transfer_result says WeCom has no record)
    any of them → failed (per-customer errcode, or transfer_result status 3 refused / 4 takeover limit)

`key` names the cause and the lead, so a rerun or a second scheduler never moves a lead twice for one cause.
WeCom allows two on-the-job transfers of a customer in 90 days: rows with errcode 0 are the count.
"""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import ForeignKey, Index, Integer, SmallInteger, String, Text
from sqlalchemy.orm import Mapped, mapped_column

from foundation.clock import utcnow
from foundation.db import Base, BigId

PENDING, SENDING, UNKNOWN, WAITING, DONE, FAILED = "pending", "sending", "unknown", "waiting", "done", "failed"
OPEN = (PENDING, SENDING, UNKNOWN, WAITING)  # the lead is on its way to the takeover
ONJOB, RESIGNED = "onjob", "resigned"  # 在职继承, 离职继承


class Transfer(Base):
    __tablename__ = "transfers"
    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    key: Mapped[str] = mapped_column(String(191), unique=True)
    follower_id: Mapped[int] = mapped_column(ForeignKey("followers.id"))
    channel: Mapped[str] = mapped_column(String(8))
    external_userid: Mapped[str | None] = mapped_column(String(64))  # WeCom contacts only
    cause: Mapped[str] = mapped_column(String(16))  # "deactivated" | "pool"
    mode: Mapped[str | None] = mapped_column(String(8))  # ONJOB | RESIGNED; None for OA leads
    from_rep_id: Mapped[int] = mapped_column(ForeignKey("reps.id"))
    to_rep_id: Mapped[int | None] = mapped_column(ForeignKey("reps.id"))
    state: Mapped[str] = mapped_column(String(12))
    errcode: Mapped[int | None] = mapped_column(Integer)  # WeCom's per-customer (or per-call) code; 0 = accepted
    status: Mapped[int | None] = mapped_column(SmallInteger)  # transfer_result: 1 done 2 waiting 3 refused 4 limit
    error: Mapped[str | None] = mapped_column(Text)
    attempts: Mapped[int] = mapped_column(Integer, default=0, server_default="0")
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    sent_at: Mapped[datetime | None]
    settled_at: Mapped[datetime | None]
    takeover_at: Mapped[datetime | None]  # WeCom's takeover_time (the future one while waiting)

    __table_args__ = (
        Index("ix_transfers_from_rep", "from_rep_id", "id"),
        Index("ix_transfers_to_rep", "to_rep_id", "id"),
        Index("ix_transfers_follower", "follower_id", "created_at"),
        Index("ix_transfers_customer", "external_userid", "sent_at"),
    )
