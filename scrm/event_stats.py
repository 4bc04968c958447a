"""What event staff read: check-ins per booth per hour, visitors, leads, conversion; the leads as rows for CSV and
XLSX with phone numbers masked for those who may not see them.

Hours are local (Asia/Shanghai), where the event happens. Conversion is the share of the event's unique visitors
(followers with a check-in) who left a lead. Mobile numbers are stored normalised (11 digits) and shown as
138****1234 except to admins and the event's own staff (the API decides who, `unmasked`).
"""

from __future__ import annotations

import csv
import io
from collections import defaultdict
from datetime import datetime
from typing import Any

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from foundation.clock import iso
from scrm.event_models import Booth, Checkin, Event, EventLead, EventStaff
from scrm.hours import local
from scrm.models import Follower

LEAD_COLUMNS = ("at", "booth", "booth_name", "name", "company", "mobile", "openid", "staff", "via", "fields")
FORMULA_START = ("=", "+", "-", "@", "\t", "\r")  # a spreadsheet would run these as formulas (CSV injection)


def mask(mobile: str | None) -> str | None:
    """138****1234: the carrier prefix and the last four digits."""
    if not mobile:
        return mobile
    return mobile[:3] + "*" * max(len(mobile) - 7, 0) + mobile[-4:] if len(mobile) > 7 else "*" * len(mobile)


def _hour(at: datetime) -> str:
    return local(at).strftime("%Y-%m-%dT%H:00")


def stats(session: Session, event: Event) -> dict[str, Any]:
    """The event's figures: per booth (check-ins by local hour, scans, late, leads) and overall."""
    booths = {b.id: b for b in session.scalars(select(Booth).where(Booth.event_id == event.id).order_by(Booth.id))}
    per: dict[int, dict[str, Any]] = {bid: _empty(b) for bid, b in booths.items()}
    rows = session.execute(
        select(Checkin.booth_id, Checkin.first_at, Checkin.scans, Checkin.late).where(Checkin.event_id == event.id)
    )
    for booth_id, first_at, scans, late in rows:
        entry = per[booth_id]
        entry["checkins"] += 1
        entry["scans"] += scans
        entry["late"] += bool(late)
        entry["by_hour"][_hour(first_at)] += 1
    leads = dict(session.execute(_count_by_booth(EventLead, event.id)).all())
    for booth_id, count in leads.items():
        if booth_id in per:
            per[booth_id]["leads"] = count
    visitors = _distinct(session, Checkin.follower_id, Checkin.event_id == event.id)
    converted = _converted(session, event.id)
    return {
        "event": event.slug,
        "unique_visitors": visitors,
        "checkins": sum(p["checkins"] for p in per.values()),
        "scans": sum(p["scans"] for p in per.values()),
        "late": sum(p["late"] for p in per.values()),
        "leads": sum(leads.values()),
        "converted_visitors": converted,
        "conversion": round(converted / visitors, 4) if visitors else 0.0,
        "booths": [{**p, "by_hour": dict(sorted(p["by_hour"].items()))} for p in per.values()],
    }


def _empty(booth: Booth) -> dict[str, Any]:
    return {"booth": booth.slug, "name": booth.name, "checkins": 0, "scans": 0, "late": 0, "leads": 0,
            "by_hour": defaultdict(int)}  # fmt: skip


def _count_by_booth(model: Any, event_id: int) -> Any:
    return select(model.booth_id, func.count()).where(model.event_id == event_id).group_by(model.booth_id)


def _distinct(session: Session, column: Any, *where: Any) -> int:
    return session.scalar(select(func.count(func.distinct(column))).where(*where)) or 0


def _converted(session: Session, event_id: int) -> int:
    """Visitors (checked in) who also left a lead at the event."""
    visited = select(Checkin.follower_id).where(Checkin.event_id == event_id)
    return _distinct(session, EventLead.follower_id, EventLead.event_id == event_id, EventLead.follower_id.in_(visited))


def lead_rows(session: Session, event: Event, unmasked: bool) -> list[dict[str, Any]]:
    """The event's leads, oldest first, as export rows."""
    query = (
        select(EventLead, Booth.slug, Booth.name, Follower.openid, EventStaff.name)
        .join(Follower, Follower.id == EventLead.follower_id)
        .outerjoin(Booth, Booth.id == EventLead.booth_id)
        .outerjoin(EventStaff, EventStaff.id == EventLead.staff_id)
        .where(EventLead.event_id == event.id)
        .order_by(EventLead.at, EventLead.id)
    )
    out = []
    for lead, booth, booth_name, openid, staff in session.execute(query):
        extra = {k: v for k, v in (lead.fields or {}).items() if k not in ("name", "company", "mobile")}
        out.append({
            "at": iso(lead.at), "booth": booth, "booth_name": booth_name, "name": lead.name,
            "company": lead.company, "mobile": lead.mobile if unmasked else mask(lead.mobile), "openid": openid,
            "staff": staff, "via": lead.via, "fields": extra,
        })  # fmt: skip
    return out


def _cell(value: Any) -> Any:
    """A value a spreadsheet shows as text: formulas defused, the extra fields as `key: value` pairs."""
    if isinstance(value, dict):
        value = "; ".join(f"{k}: {v}" for k, v in value.items())
    if isinstance(value, str) and value.startswith(FORMULA_START):
        return "'" + value
    return value


def to_csv(rows: list[dict[str, Any]]) -> bytes:
    """UTF-8 with a BOM, so Excel opens Chinese names correctly."""
    out = io.StringIO()
    writer = csv.writer(out)
    writer.writerow(LEAD_COLUMNS)
    for row in rows:
        writer.writerow([_cell(row[c]) if row[c] is not None else "" for c in LEAD_COLUMNS])
    return ("\ufeff" + out.getvalue()).encode("utf-8")


def to_xlsx(rows: list[dict[str, Any]], title: str) -> bytes:
    """One sheet named after the event, a header row, every cell stored as text (no formula is ever written)."""
    from openpyxl import Workbook  # imported here: only exports need it
    from openpyxl.cell.cell import ILLEGAL_CHARACTERS_RE

    book = Workbook(write_only=True)
    sheet = book.create_sheet(title=_sheet_title(title))
    sheet.append(list(LEAD_COLUMNS))
    for row in rows:
        cells = [_cell(row[c]) for c in LEAD_COLUMNS]
        sheet.append([ILLEGAL_CHARACTERS_RE.sub("", c) if isinstance(c, str) else c for c in cells])
    out = io.BytesIO()
    book.save(out)
    return out.getvalue()


def _sheet_title(title: str) -> str:
    cleaned = "".join("_" if ch in "[]:*?/\\" else ch for ch in title).strip("'")
    return (cleaned or "leads")[:31]
