"""What a lead form does once applied: the effects of a form finished in the chat or sent from its H5 page, from
exactly what the request stored (scrm.form_submit.submitted_of), and of the staff actions decided with it.

For a submitted form, in the applier's transaction:
- the `form_submitted` playbook trigger (`form` = the event's slug; facts `event`, `booth`);
- one `event_leads` row (unique per interaction: a re-applied batch writes nothing twice), the mobile as 11 digits;
- the lead routed to the booth's on-duty staff (scrm.staff_duty): round-robin through the reps' assignment
  (scrm.assignment, pool `booth:<booth id>`) when every one of them is an eligible rep, else the one with the
  fewest of today's leads at that booth (ties: the longest without one, then the first registered);
- the staff told through WeCom: a picked rep becomes the owner of an unowned lead (its `assigned` notice); anyone
  else with a WeCom account gets a `lead` notice naming the booth and the answers; staff without one are noted.
"""

from __future__ import annotations

import logging
from datetime import datetime, timedelta
from typing import TYPE_CHECKING, Any

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from foundation.sql import insert_ignore
from scrm import assign_effects, assignment, event_lookup, hours, notices, staff_duty
from scrm.event_models import EventLead
from scrm.form_submit import submitted_of
from scrm.notice_text import clip

if TYPE_CHECKING:
    from scrm.ingest import Visit

log = logging.getLogger(__name__)
LEADS = EventLead.__table__
_L = LEADS.c
COLUMNS = {"name": ("name", 128), "company": ("company", 128), "mobile": ("mobile", 16)}  # by field kind
VIAS = ("chat", "h5")


def apply(visit: Visit) -> None:
    """The staff action and the submitted form a decision carries (the applier calls this for every interaction)."""
    decision = visit.decision or {}
    staff = decision.get("staff")
    if isinstance(staff, dict):
        staff_duty.apply(visit, staff)
    submitted = submitted_of(decision)
    if submitted is not None and visit.follower is not None:
        captured(visit, submitted)


def captured(visit: Visit, submitted: dict[str, Any]) -> None:
    slug, booth = str(submitted.get("event") or ""), submitted.get("booth")
    visit.signal("form_submitted", form=slug, event=slug, booth=booth)
    info = event_lookup.read_event(visit.session.connection(), slug) if slug else None
    if info is None:
        log.warning("form for unknown event %r from %s: no lead row", slug, visit.event.openid)
        visit.note("lead_captured", {"event": slug, "booth": booth, "lead": None, "why": "unknown event"})
        return
    booth_id = info.booths.get(str(booth))[0] if booth is not None and str(booth) in info.booths else None
    at = visit.event.at
    staff_id, rep_id, picked = route(visit.session, booth_id, at) if booth_id is not None else (None, None, False)
    row = _row(visit, info.id, booth_id, submitted, staff_id, rep_id, at)
    visit.session.connection().execute(insert_ignore(visit.session, EventLead, ["interaction_id"]), row)
    _profile(visit, row)
    told = _tell(visit, rep_id, picked, info.name, str(booth or ""), row)
    note = {"event": slug, "booth": booth, "staff": staff_id, "rep": rep_id, "via": submitted.get("via"), "told": told}
    visit.note("lead_captured", note)


def _row(visit: Visit, event_id: int, booth_id: int | None, submitted: dict[str, Any], staff_id: int | None,
         rep_id: int | None, at: datetime) -> dict[str, Any]:  # fmt: skip
    answers = {str(k): str(v) for k, v in (submitted.get("fields") or {}).items()}
    kinds = submitted.get("kinds") or {}
    row = {"event_id": event_id, "booth_id": booth_id, "follower_id": visit.follower.id if visit.follower else None,
           "fields": answers, "staff_id": staff_id, "rep_id": rep_id, "interaction_id": visit.interaction_id,
           "at": at, "name": None, "company": None, "mobile": None,
           "via": submitted.get("via") if submitted.get("via") in VIAS else "chat"}  # fmt: skip
    for kind, (col, limit) in COLUMNS.items():
        names = [n for n, k in kinds.items() if k == kind] or [kind]
        value = next((answers[n] for n in names if answers.get(n)), None)
        row[col] = value[:limit] if value else None
    return row


def route(session: Session, booth_id: int, at: datetime) -> tuple[int | None, int | None, bool]:
    """(staff id, rep id, picked by the reps' round-robin) of whoever gets a lead at the booth; Nones: nobody."""
    crew = staff_duty.on_duty(session, booth_id, at)
    if not crew:
        return None, None, False
    reps = {rep: sid for sid, rep in crew if rep is not None}
    if len(reps) == len(crew):
        rep = assignment.pick(session, [(r, None) for r in reps], at, f"booth:{booth_id}")
        if rep is not None:
            return reps[rep], rep, True
    sid = _least_loaded(session, booth_id, [s for s, _ in crew], at)
    return sid, dict(crew)[sid], False


def _least_loaded(session: Session, booth_id: int, staff_ids: list[int], at: datetime) -> int:
    since = hours.next_midnight(at) - timedelta(days=1)
    query = (
        select(_L.staff_id, func.count(), func.max(_L.id))
        .where(_L.booth_id == booth_id, _L.staff_id.in_(staff_ids), _L.at >= since)
        .group_by(_L.staff_id)
    )
    load = {sid: (n, last) for sid, n, last in session.connection().execute(query)}
    return min(staff_ids, key=lambda sid: (*load.get(sid, (0, 0)), sid))


def _profile(visit: Visit, row: dict[str, Any]) -> None:
    """Name and company fill the follower's profile where it has none (rep cards show them); never the mobile."""
    follower = visit.follower
    if follower is None:
        return
    profile = dict(follower.profile or {})
    fill = {k: row[k] for k in ("name", "company") if row.get(k) and not profile.get(k)}
    if fill:
        follower.profile = {**profile, **fill}


def _tell(visit: Visit, rep_id: int | None, picked: bool, event: str, booth: str, row: dict[str, Any]) -> str:
    """Notify whoever got the lead; what was done (`owner`, `notice`, `nobody`)."""
    follower = visit.follower
    if rep_id is None or follower is None:
        return "nobody"
    at = visit.event.at
    if picked and follower.owner_id is None:
        why = assign_effects.Why(via="booth")
        assign_effects.give(visit, follower, rep_id, at, why, visit.interaction_id, picked=True)
        return "owner"
    who = " · ".join(clip(str(row[k]), 40) for k in ("name", "company", "mobile") if row.get(k))
    reason = f"{clip(event, 40)} booth {clip(booth, 20)}: {who}"
    notices.notify(visit, follower, rep_id, "lead", visit.interaction_id, reason=reason)
    return "notice"
