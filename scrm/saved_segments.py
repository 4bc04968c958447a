"""Saved segments: named filters (scrm.segments), stored normalised, evaluated whenever they are used."""

from __future__ import annotations

from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from foundation import safe_json
from foundation.clock import iso, utcnow
from scrm.delivery_models import CANCELLED, DONE, Broadcast
from scrm.playbook.models import Segment
from scrm.segments import SegmentError, normalised, parse_filter, where

SEGMENT_IDS = 2**31 - 1  # segments.id is an INTEGER


def save(session: Session, name: str, spec: Any, by: str | None = None) -> Segment:
    """Store a named filter (validated, normalised); SegmentError when the name is taken or the filter is bad."""
    if not name or len(name) > 128:
        raise SegmentError("name: 1-128 characters")
    f = parse_filter(spec)
    where(session, f)  # patterns and stage names must compile too
    if session.scalar(select(Segment.id).where(Segment.name == name)) is not None:
        raise SegmentError(f"name: a segment named {name!r} exists")
    row = Segment(name=name, filter=normalised(f), created_at=utcnow(), created_by=by)
    session.add(row)
    session.flush()
    return row


def saved(session: Session) -> list[Segment]:
    return list(session.scalars(select(Segment).order_by(Segment.name)))


def find(session: Session, ref: str | int) -> Segment | None:
    """A saved segment by id (ASCII digits) or name; None for an id beyond the column's range."""
    if isinstance(ref, str) and ref.isascii() and ref.isdigit():
        ref = int(ref) if len(ref) <= 10 else -1
    if isinstance(ref, int) and not isinstance(ref, bool):
        return session.get(Segment, ref) if 0 < ref <= SEGMENT_IDS else None
    return session.scalar(select(Segment).where(Segment.name == ref))


class InUse(SegmentError):
    """A broadcast still fanning out names the segment."""


def delete(session: Session, ref: str | int) -> Segment | None:
    """Remove a saved segment (by id or name) and return it; None when there is none. InUse while a broadcast
    that has not finished fanning out names it (it reads the segment page by page): cancel it, or wait."""
    row = find(session, ref)
    if row is None:
        return None
    users = _broadcasts_naming(session, row)
    if users:
        raise InUse(f"segment {row.name!r} is used by broadcast(s) {', '.join(map(str, users))}, still fanning out")
    session.delete(row)
    session.flush()
    return row


def _broadcasts_naming(session: Session, row: Segment) -> list[int]:
    pending = select(Broadcast.id, Broadcast.segment).where(
        Broadcast.fanned_out_at.is_(None), Broadcast.state.not_in((DONE, CANCELLED))
    )
    return [bid for bid, segment in session.execute(pending) if segment in (row.name, row.id, str(row.id))]


def describe(row: Segment) -> dict[str, Any]:
    """The row as JSON; a non-finite number stored before they were refused is shown as null."""
    return {"id": row.id, "name": row.name, "filter": safe_json.finite(row.filter), "created_at": iso(row.created_at),
            "created_by": row.created_by}  # fmt: skip
