"""Check-ins, applied: a booth scan the request recognised (its decision's `booth`) becomes one row per follower
and booth, set-based for the applier's batch.

The batch reads the check-ins of its followers once (one statement, only when it holds a booth scan), decides in
memory which scans are first ones, and writes the new rows in one insert and the repeats in one executemany update
when the batch ends (scrm.playbook.shared `parts`). The first scan at a booth raises the playbook's `checked_in`
trigger (event, booth) once; repeat scans only count (`scans`, `last_at`) and raise nothing, so a rule on
`checked_in` scores a visit once per booth while a `scene:` rule still sees every scan. A first scan after the
event's end is recorded with `late` and raises nothing either; every scan after the end counts in `late_scans`.
An unknown event or booth checks nobody in: the interaction keeps the scene and its decision says `known: false`.
"""

from __future__ import annotations

import logging
from datetime import datetime
from typing import Any

from sqlalchemy import bindparam, select, update
from sqlalchemy.orm import Session

from foundation.clock import utcnow
from foundation.sql import insert_ignore
from scrm.event_models import Checkin
from scrm.ingest import Visit

PART = "checkins"
log = logging.getLogger(__name__)
_C = Checkin.__table__.c
_REPEAT = (
    update(Checkin.__table__)
    .where(_C.id == bindparam("cid"))
    .values(last_at=bindparam("last"), scans=_C.scans + bindparam("n"), late_scans=_C.late_scans + bindparam("l"))
)


class Batch:
    """The check-ins of one applier batch: what exists (read once), what the batch adds and counts."""

    def __init__(self, session: Session, follower_ids: list[int]) -> None:
        self.session = session
        query = select(_C.id, _C.follower_id, _C.booth_id).where(_C.follower_id.in_(follower_ids))
        self.known = {(r.follower_id, r.booth_id): r.id for r in session.execute(query)} if follower_ids else {}
        self.new: dict[tuple[int, int], dict[str, Any]] = {}
        self.repeats: dict[int, dict[str, Any]] = {}

    def scan(self, follower_id: int, facts: dict[str, Any], at: datetime, interaction_id: int) -> bool:
        """Count one scan; True when it is the follower's first at this booth."""
        key, late = (follower_id, int(facts["booth_id"])), bool(facts.get("late"))
        if key in self.new:
            row = self.new[key]
            row.update(last_at=max(row["last_at"], at), scans=row["scans"] + 1, late_scans=row["late_scans"] + late)
            return False
        if key in self.known:
            row = self.repeats.setdefault(self.known[key], {"cid": self.known[key], "last": at, "n": 0, "l": 0})
            row.update(last=max(row["last"], at), n=row["n"] + 1, l=row["l"] + late)
            return False
        self.new[key] = {"follower_id": key[0], "event_id": int(facts["event_id"]), "booth_id": key[1],
                         "first_at": at, "last_at": at, "scans": 1, "late": late, "late_scans": int(late),
                         "interaction_id": interaction_id}  # fmt: skip
        return True

    def flush(self) -> None:
        conn = self.session.connection()
        if self.new:
            conn.execute(insert_ignore(self.session, Checkin, ["follower_id", "booth_id"]), list(self.new.values()))
        if self.repeats:
            conn.execute(_REPEAT, list(self.repeats.values()))
        self.new, self.repeats = {}, {}


def _batch(visit: Visit) -> tuple[Batch, bool]:
    """The batch's check-ins (and whether the caller must flush them: a visit outside an applier batch)."""
    shared = visit.shared
    if shared is None:
        assert visit.follower is not None
        return Batch(visit.session, [visit.follower.id]), True
    found = shared.parts.get(PART)
    if found is None:
        found = shared.parts[PART] = Batch(visit.session, shared.follower_ids)
    return found, False


def scanned(visit: Visit) -> None:
    """The check-in effect of a subscribe or SCAN (scrm.effects); nothing for scans of other codes."""
    facts = (visit.decision or {}).get("booth")
    follower = visit.follower
    if not isinstance(facts, dict) or follower is None:
        return
    if not facts.get("known"):
        log.info("interaction %s: no booth %r: recorded, nobody checked in", visit.interaction_id, visit.event.scene)
        return
    batch, alone = _batch(visit)
    first = batch.scan(follower.id, facts, visit.event.at, visit.interaction_id)
    data = {"event": facts["event"], "booth": facts["booth"], "late": bool(facts.get("late"))}
    _note(visit, "checked_in" if first else "booth_rescan", data)
    if alone:
        batch.flush()
    if first and not facts.get("late"):
        visit.signal("checked_in", event=facts["event"], booth=facts["booth"])


def _note(visit: Visit, kind: str, data: dict[str, Any]) -> None:
    if visit.shared is None:
        visit.note(kind, data)
        return
    assert visit.follower is not None
    visit.shared.notes.append({"follower_id": visit.follower.id, "kind": kind, "at": utcnow(),
                               "interaction_id": visit.interaction_id, "data": data})  # fmt: skip
