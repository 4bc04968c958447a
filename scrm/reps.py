"""Sales reps as an admin manages them: add, change, confirm, deactivate, list, and the JSON the API serves.

Every rule lives here so the API and the CLI refuse the same things with the same words: a WeCom userid is unique
(409), a weight is 1-100, a manager is another existing rep and never one's own report (no cycles), caps are
non-negative, working hours are what scrm.hours reads. Deactivating a rep stamps `deactivated_at` and queues
"rep.reassign" for its open leads in the same transaction, once per deactivation (the outbox key carries the time).
"""

from __future__ import annotations

import re
from datetime import timedelta
from typing import Any

from sqlalchemy import ColumnElement, and_, func, select
from sqlalchemy.orm import Session

from foundation.clock import iso, utcnow
from scrm import hours as schedule
from scrm import outbox
from scrm.code_models import ContactCode
from scrm.models import Activity, Follower, Rep

WEIGHT_MIN, WEIGHT_MAX = 1, 100
CAP_MAX = 1_000_000
MAX_ID = 2**31 - 1  # reps.id is a 32-bit integer
NAME_MAX = 128
# WeCom member ids: 1-64 bytes of letters, digits and _-@. , starting with a letter or a digit.
USERID = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.@-]{0,63}$")
STATUSES = ("active", "unconfirmed", "inactive")
EDITABLE = ("userid", "name", "active", "confirmed", "weight", "manager_id", "daily_cap", "open_cap", "hours")
REASSIGN = "rep.reassign"


class RepError(ValueError):
    """A change the rules refuse; `status` is the HTTP status the API answers (400 bad input, 404, 409 conflict)."""

    def __init__(self, message: str, status: int = 400) -> None:
        super().__init__(message)
        self.status = status


# --- reading ----------------------------------------------------------------------------------------------------------


def find(session: Session, rep_id: int) -> Rep | None:
    """The rep, or None; ids beyond the 32-bit column are no rep (PostgreSQL would refuse the comparison)."""
    return session.get(Rep, rep_id) if 0 < rep_id <= MAX_ID else None


def get(session: Session, rep_id: int) -> Rep:
    """The rep, or RepError 404."""
    rep = find(session, rep_id)
    if rep is None:
        raise RepError(f"no rep {rep_id}", 404)
    return rep


def status(rep: Rep) -> str:
    """ "inactive" (deactivated), "unconfirmed" (first seen in a WeCom callback, awaiting an admin) or "active"."""
    if not rep.active:
        return "inactive"
    return "active" if rep.confirmed else "unconfirmed"


def _status_clause(name: str) -> ColumnElement[bool]:
    if name == "inactive":
        return Rep.active.is_(False)
    return and_(Rep.active.is_(True), Rep.confirmed.is_(name == "active"))


def page(
    session: Session, *, status: str | None = None, after: int = 0, limit: int = 100, only: int | None = None
) -> tuple[list[Rep], int | None]:
    """Reps by id (keyset), optionally of one status or one id; the next cursor or None."""
    if status is not None and status not in STATUSES:
        raise RepError(f"status must be one of {', '.join(STATUSES)}")
    query = select(Rep).where(Rep.id > min(after, MAX_ID))
    if status is not None:
        query = query.where(_status_clause(status))
    if only is not None:
        query = query.where(Rep.id == only)
    rows = list(session.scalars(query.order_by(Rep.id).limit(limit + 1)))
    return rows[:limit], rows[limit - 1].id if len(rows) > limit else None


def open_lead(rep_column: Any = Follower.owner_id) -> ColumnElement[bool]:
    """What an open lead is: a follower the rep owns who can still be reached (followed, or the contact kept)."""
    return and_(rep_column.is_not(None), Follower.subscribed.is_(True))


def open_leads(session: Session, rep_ids: list[int]) -> dict[int, int]:
    rows = session.execute(
        select(Follower.owner_id, func.count())
        .where(Follower.owner_id.in_(rep_ids), open_lead())
        .group_by(Follower.owner_id)
    )
    return {rep: count for rep, count in rows}


def assigned_today(session: Session, rep_ids: list[int]) -> dict[int, int]:
    """Leads each rep still owns that were assigned to it since local midnight (the "owner_assigned" entries on
    their timelines): read through the owner index, then each lead's timeline index, never the whole table."""
    since = schedule.next_midnight(utcnow()) - timedelta(days=1)
    rows = session.execute(
        select(Follower.owner_id, func.count(func.distinct(Activity.follower_id)))
        .join(Activity, Activity.follower_id == Follower.id)
        .where(Follower.owner_id.in_(rep_ids), Activity.kind == "owner_assigned", Activity.at >= since)
        .where(Activity.data["rep"].as_integer() == Follower.owner_id)
        .group_by(Follower.owner_id)
    )
    return {rep: count for rep, count in rows}


def serialize(session: Session, reps: list[Rep]) -> list[dict[str, Any]]:
    """Rep JSON with two counts: open leads it holds, and leads assigned to it today (both cheap, indexed)."""
    ids = [r.id for r in reps]
    held, today = (open_leads(session, ids), assigned_today(session, ids)) if ids else ({}, {})
    return [_json(r, held.get(r.id, 0), today.get(r.id, 0)) for r in reps]


def _json(r: Rep, held: int, today: int) -> dict[str, Any]:
    return {
        "id": r.id, "userid": r.userid, "name": r.name, "status": status(r), "active": r.active,
        "confirmed": r.confirmed, "weight": r.weight, "manager_id": r.manager_id, "daily_cap": r.daily_cap,
        "open_cap": r.open_cap, "hours": r.hours, "open_leads": held, "assigned_today": today,
        "deactivated_at": iso(r.deactivated_at), "created_at": iso(r.created_at),
    }  # fmt: skip


# --- validating -------------------------------------------------------------------------------------------------------


def _int(value: Any, name: str, low: int, high: int, nullable: bool = False) -> int | None:
    if value is None and nullable:
        return None
    if isinstance(value, bool) or not isinstance(value, int) or not low <= value <= high:
        empty = " or null" if nullable else ""
        raise RepError(f"{name} must be an integer from {low} to {high}{empty}")
    return value


def _bool(value: Any, name: str) -> bool:
    if not isinstance(value, bool):
        raise RepError(f"{name} must be true or false")
    return value


def _userid(value: Any) -> str:
    if not isinstance(value, str) or not USERID.match(value):
        raise RepError("userid: a WeCom member id, 1-64 letters, digits or _-@. starting with a letter or digit")
    return value


def _name(value: Any) -> str:
    if not isinstance(value, str) or len(value.strip()) > NAME_MAX:
        raise RepError(f"name must be text of at most {NAME_MAX} characters")
    return value.strip()


def _hours(value: Any) -> dict[str, Any] | None:
    try:
        return schedule.validate(value)
    except schedule.HoursError as exc:
        raise RepError(str(exc)) from None


_CHECKS = {
    "userid": _userid,
    "name": _name,
    "active": lambda v: _bool(v, "active"),
    "confirmed": lambda v: _bool(v, "confirmed"),
    "weight": lambda v: _int(v, "weight", WEIGHT_MIN, WEIGHT_MAX),
    "manager_id": lambda v: _int(v, "manager_id", 1, MAX_ID, nullable=True),
    "daily_cap": lambda v: _int(v, "daily_cap", 0, CAP_MAX, nullable=True),
    "open_cap": lambda v: _int(v, "open_cap", 0, CAP_MAX, nullable=True),
    "hours": _hours,
}


def clean(fields: Any) -> dict[str, Any]:
    """The fields normalised, or RepError naming the first bad one (unknown fields are refused, not ignored)."""
    if not isinstance(fields, dict):
        raise RepError("a JSON object of rep fields is expected")
    unknown = sorted(set(fields) - set(EDITABLE))
    if unknown:
        raise RepError(f"unknown field(s): {', '.join(unknown)} (known: {', '.join(EDITABLE)})")
    return {key: _CHECKS[key](value) for key, value in fields.items()}


def _check_userid_free(session: Session, userid: str, rep_id: int | None) -> None:
    owner = session.scalar(select(Rep.id).where(Rep.userid == userid))
    if owner is not None and owner != rep_id:
        raise RepError(f"userid {userid!r} belongs to rep {owner} already", 409)


def _check_userid_change(session: Session, userid: str, rep: Rep) -> None:
    """A new userid must be free, and the rep's WeCom contact way (made for the old member) must not exist yet."""
    _check_userid_free(session, userid, rep.id)
    way = session.scalar(
        select(ContactCode.wecom_config_id).where(ContactCode.kind == "rep", ContactCode.rep_id == rep.id)
    )
    if way:
        raise RepError(f"rep {rep.id} has a WeCom contact way for {rep.userid!r}: its userid cannot change", 409)


def _check_manager(session: Session, rep_id: int | None, manager_id: int) -> None:
    """The manager exists, is not the rep, and is not one of the rep's own reports (walking up never meets it)."""
    chain: dict[int, int | None] = {rid: manager for rid, manager in session.execute(select(Rep.id, Rep.manager_id))}
    if manager_id not in chain:
        raise RepError(f"manager_id: no rep {manager_id}")
    if manager_id == rep_id:
        raise RepError("manager_id: a rep cannot manage itself")
    seen, current = set(), manager_id
    while current is not None and current not in seen:
        if current == rep_id:
            raise RepError(f"manager_id: rep {manager_id} reports to rep {rep_id} already (a cycle)")
        seen.add(current)
        current = chain.get(current)


# --- changing ---------------------------------------------------------------------------------------------------------


def create(session: Session, fields: Any) -> Rep:
    """A new rep, confirmed (an admin added it) unless told otherwise; inactive ones are stamped deactivated."""
    values = clean(fields)
    if "userid" not in values:
        raise RepError("userid is required (the rep's WeCom member id)")
    _check_userid_free(session, values["userid"], None)
    if values.get("manager_id") is not None:
        _check_manager(session, None, values["manager_id"])
    values.setdefault("name", values["userid"])
    rep = Rep(**{"active": True, "confirmed": True, "weight": 1, **values}, created_at=utcnow())
    if not rep.active:
        rep.deactivated_at = utcnow()
    session.add(rep)
    session.flush()
    return rep


def update(session: Session, rep: Rep, fields: Any) -> Rep:
    """Apply a partial change; `active` goes through activate/deactivate so the reassignment is queued."""
    values = clean(fields)
    if "userid" in values and values["userid"] != rep.userid:
        _check_userid_change(session, values["userid"], rep)
    if values.get("manager_id") is not None:
        _check_manager(session, rep.id, values["manager_id"])
    active = values.pop("active", None)
    for key, value in values.items():
        setattr(rep, key, value)
    if active is True:
        activate(rep)
    elif active is False:
        deactivate(session, rep)
    session.flush()
    return rep


def confirm(rep: Rep) -> bool:
    """Accept a rep first seen in a WeCom callback: it takes assignments from now on. False if it already did."""
    changed = not rep.confirmed
    rep.confirmed = True
    return changed


def activate(rep: Rep) -> bool:
    changed = not rep.active
    rep.active, rep.deactivated_at = True, None
    return changed


def deactivate(session: Session, rep: Rep) -> bool:
    """Stop assigning to the rep and queue the reassignment of its open leads; False (nothing queued) if the rep
    was inactive already."""
    if not rep.active:
        return False
    rep.active, rep.deactivated_at = False, utcnow()
    outbox.add(session, REASSIGN, {"rep_id": rep.id}, key=reassign_key(rep))
    return True


def reassign_key(rep: Rep) -> str:
    """One reassignment per deactivation: `rep.reassign:<rep id>:<deactivated_at iso>`."""
    assert rep.deactivated_at is not None
    return f"{REASSIGN}:{rep.id}:{rep.deactivated_at.isoformat()}"
