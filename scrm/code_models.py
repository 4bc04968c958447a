"""QR codes and WeCom contact ways that assign whoever uses them: a rep's personal code and team live codes (渠道活码).

One row per code. Its scene (OA QR code) and state (WeCom contact way) are the same string, `rep:<rep id>` for a
personal code and `team:<code id>` for a team code, so a callback names the code it came through.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import Boolean, ForeignKey, Integer, String, Text, UniqueConstraint, true
from sqlalchemy.orm import Mapped, mapped_column

from foundation.clock import utcnow
from foundation.db import Base, Json


class ContactCode(Base):
    """`members` (team codes): [{"rep_id": 3, "weight": 2}, ...]; a member without a weight takes the rep's own.
    `wecom_users`: the userids the contact way lists now (recomputed at schedule boundaries, midnight and caps)."""

    __tablename__ = "contact_codes"
    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    kind: Mapped[str] = mapped_column(String(8))  # "rep" | "team"
    name: Mapped[str] = mapped_column(String(128), default="")
    rep_id: Mapped[int | None] = mapped_column(ForeignKey("reps.id"))  # personal codes: whose
    members: Mapped[list[dict[str, Any]]] = mapped_column(Json, default=list)
    backup_rep_id: Mapped[int | None] = mapped_column(ForeignKey("reps.id"))
    tags: Mapped[list[str]] = mapped_column(Json, default=list)
    welcome: Mapped[str | None] = mapped_column(Text)
    oa_ticket: Mapped[str | None] = mapped_column(String(255))
    oa_url: Mapped[str | None] = mapped_column(String(255))
    wecom_config_id: Mapped[str | None] = mapped_column(String(64))
    wecom_qr_code: Mapped[str | None] = mapped_column(String(255))
    wecom_users: Mapped[list[str]] = mapped_column(Json, default=list)
    wecom_synced_at: Mapped[datetime | None]
    active: Mapped[bool] = mapped_column(Boolean, default=True, server_default=true())
    created_at: Mapped[datetime] = mapped_column(default=utcnow)

    __table_args__ = (UniqueConstraint("kind", "rep_id", name="uq_contact_codes_personal"),)

    @property
    def scene(self) -> str:
        """The OA scene and the WeCom state (≤ 30 characters either way)."""
        return f"rep:{self.rep_id}" if self.kind == "rep" else f"team:{self.id}"
