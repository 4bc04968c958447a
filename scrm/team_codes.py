"""Team live codes (渠道活码): one OA QR code and one WeCom contact way (scene/state `team:<code id>`) for several reps.

The OA code assigns at scan time with the picker (scrm.assignment, pool `team:<code id>`). WeCom picks among the
users the contact way lists and knows nothing of caps or working hours, so WeLead keeps that list to the members
eligible now (`plan`): the "codes.sync" job (tasks.codes) recomputes it and calls update_contact_way at each
schedule boundary of a member, at local midnight (daily caps reset) and when an assignment fills a member's cap.
Each sync queues the next boundary as an outbox row with `run_after`. Nobody eligible: the backup rep; no backup
either: the members who are active and confirmed, whatever their hours (a contact way cannot list nobody).

The rules for what a code may hold live here, so the API and the CLI refuse the same things with the same words.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from foundation.clock import iso, utcnow
from scrm import assignment, hours, outbox
from scrm.code_models import ContactCode
from scrm.code_rules import check_code
from scrm.models import Rep

KIND = "team"
TASK = "codes.sync"
KINDS = ("oa", "wecom")
MEMBERS_MAX = 100  # WeCom: a contact way lists at most 100 users
TAGS_MAX, TAG_MAX = 20, 64
WELCOME_MAX = 4000  # WeCom: send_welcome_msg text.content, at most 4000 bytes
NAME_MAX = 128
WEIGHT_MIN, WEIGHT_MAX = 1, 100
EDITABLE = ("name", "members", "backup_rep_id", "tags", "welcome", "active")


class TeamCodeError(ValueError):
    """A change the rules refuse; `status` is what the API answers (400 bad input, 404 no such code, 409)."""

    def __init__(self, message: str, status: int = 400) -> None:
        super().__init__(message)
        self.status = status


@dataclass(frozen=True)
class Plan:
    """What the contact way should list at `at`, why (`eligible`, `backup`, `members`), and when to look again."""

    users: list[str]
    reason: str
    eligible: list[int]
    next_sync: datetime


def scene(code_id: int) -> str:
    return check_code(f"{KIND}:{code_id}")


def parse_scene(value: str | None) -> tuple[str, int] | None:
    """("rep", id) or ("team", id) for the scenes/states WeLead's codes carry; None for anything else."""
    kind, _, ident = (value or "").partition(":")
    if kind in ("rep", KIND) and ident.isascii() and ident.isdigit() and len(ident) < 10:  # not "³", not > INT
        return kind, int(ident)
    return None


def find(session: Session, code_id: int) -> ContactCode | None:
    code = session.get(ContactCode, code_id)
    return code if code is not None and code.kind == KIND else None


def get(session: Session, code_id: int) -> ContactCode:
    """The team code, or TeamCodeError 404."""
    code = find(session, code_id)
    if code is None:
        raise TeamCodeError(f"no team code {code_id}", 404)
    return code


def members(code: ContactCode) -> list[tuple[int, int | None]]:
    """(rep id, weight or None for the rep's own), as the picker takes them."""
    return [(int(m["rep_id"]), m.get("weight")) for m in code.members or []]


def listing(session: Session, rep_id: int) -> list[int]:
    """Active team codes that have `rep_id` as a member (few codes: read and filtered here)."""
    query = select(ContactCode.id, ContactCode.members).where(ContactCode.kind == KIND, ContactCode.active.is_(True))
    rows = session.execute(query.order_by(ContactCode.id))
    return [cid for cid, ms in rows if any(int(m.get("rep_id", -1)) == rep_id for m in ms or [])]


# --- what the contact way lists -----------------------------------------------------------------------------------


def plan(session: Session, code: ContactCode, at: datetime) -> Plan:
    """The users the contact way should list at `at`, and the next instant that may change it."""
    ids = [rep for rep, _ in members(code)]
    reps = {r.id: r for r in session.scalars(select(Rep).where(Rep.id.in_([*ids, code.backup_rep_id or -1])))}
    ready = assignment.eligible(session, ids, at)
    if ready:
        users, reason = [reps[r].userid for r in ready], "eligible"
    elif code.backup_rep_id in reps and _usable(reps[code.backup_rep_id]):
        users, reason = [reps[code.backup_rep_id].userid], "backup"
    else:
        users, reason = [reps[r].userid for r in ids if r in reps and _usable(reps[r])], "members"
    edges = [hours.next_change(reps[r].hours, at) for r in ids if r in reps and _usable(reps[r])]
    soonest = min([e for e in edges if e is not None] + [hours.next_midnight(at)])
    return Plan(users, reason, ready, soonest)


def _usable(rep: Rep) -> bool:
    return bool(rep.active and rep.confirmed)


def synced(code: ContactCode, users: list[str], at: datetime) -> None:
    code.wecom_users, code.wecom_synced_at = list(users), at


def schedule(session: Session, code_id: int, when: datetime) -> int | None:
    """The sync at the next boundary: one outbox row per (code, instant), pushed by the sweeper once due."""
    key = f"{TASK}:at:{code_id}:{when.isoformat(timespec='seconds')}"
    return outbox.add(session, TASK, {"code_id": code_id}, key=key, run_after=when)


def resync(session: Session, code_id: int, cause: str) -> int | None:
    """A sync as soon as a worker takes it (the code was edited, a member filled a cap): `cause` makes its key."""
    return outbox.add(session, TASK, {"code_id": code_id}, key=f"{TASK}:{cause}:{code_id}")


# --- creating and changing ----------------------------------------------------------------------------------------


def create(session: Session, body: Any) -> ContactCode:
    """A new team code from the API/CLI body (its WeChat halves are made afterwards: welead.code_making)."""
    if not isinstance(body, dict):
        raise TeamCodeError("a JSON object is expected")
    if "members" not in body:
        raise TeamCodeError("members is required: [{rep_id, weight}, ...]")
    code = ContactCode(kind=KIND, name="team code", members=[], tags=[], wecom_users=[], active=True)
    code.created_at = utcnow()
    _apply(session, code, body)
    session.add(code)
    session.flush()
    scene(code.id)
    return code


def update(session: Session, code: ContactCode, body: Any) -> ContactCode:
    if not isinstance(body, dict):
        raise TeamCodeError("a JSON object is expected")
    _apply(session, code, body)
    session.flush()
    return code


def _apply(session: Session, code: ContactCode, body: dict[str, Any]) -> None:
    unknown = sorted(set(body) - set(EDITABLE))
    if unknown:
        raise TeamCodeError(f"unknown field {unknown[0]!r} (one of {', '.join(EDITABLE)})")
    if "name" in body:
        code.name = _name(body["name"])
    if "members" in body:
        code.members = _members(session, body["members"])
    if "backup_rep_id" in body:
        code.backup_rep_id = _backup(session, body["backup_rep_id"])
    if "tags" in body:
        code.tags = _tags(body["tags"])
    if "welcome" in body:
        code.welcome = _welcome(body["welcome"])
    if "active" in body:
        if not isinstance(body["active"], bool):
            raise TeamCodeError("active must be true or false")
        code.active = body["active"]


def _name(value: Any) -> str:
    if not isinstance(value, str) or not 1 <= len(value.strip()) <= NAME_MAX:
        raise TeamCodeError(f"name: 1 to {NAME_MAX} characters")
    return value.strip()


def _members(session: Session, value: Any) -> list[dict[str, Any]]:
    if not isinstance(value, list) or not 1 <= len(value) <= MEMBERS_MAX:
        raise TeamCodeError(f"members: a list of 1 to {MEMBERS_MAX} {{rep_id, weight}} (WeCom's limit per code)")
    out: list[dict[str, Any]] = []
    for i, item in enumerate(value):
        item = {"rep_id": item} if isinstance(item, int) and not isinstance(item, bool) else item
        if not isinstance(item, dict) or set(item) - {"rep_id", "weight"} or "rep_id" not in item:
            raise TeamCodeError(f"members[{i}]: {{rep_id, weight}} (weight optional: the rep's own)")
        rep_id, weight = _int(item["rep_id"], f"members[{i}].rep_id"), item.get("weight")
        if weight is not None and not WEIGHT_MIN <= _int(weight, f"members[{i}].weight") <= WEIGHT_MAX:
            raise TeamCodeError(f"members[{i}].weight must be from {WEIGHT_MIN} to {WEIGHT_MAX}")
        if any(m["rep_id"] == rep_id for m in out):
            raise TeamCodeError(f"members[{i}]: rep {rep_id} is listed twice")
        out.append({"rep_id": rep_id, "weight": weight} if weight is not None else {"rep_id": rep_id})
    known = set(session.scalars(select(Rep.id).where(Rep.id.in_([m["rep_id"] for m in out]))))
    missing = [m["rep_id"] for m in out if m["rep_id"] not in known]
    if missing:
        raise TeamCodeError(f"members: no rep {missing[0]}")
    return out


def _backup(session: Session, value: Any) -> int | None:
    if value is None:
        return None
    rep_id = _int(value, "backup_rep_id")
    if session.get(Rep, rep_id) is None:
        raise TeamCodeError(f"backup_rep_id: no rep {rep_id}")
    return rep_id


def _tags(value: Any) -> list[str]:
    if not isinstance(value, list) or len(value) > TAGS_MAX:
        raise TeamCodeError(f"tags: a list of at most {TAGS_MAX} names")
    for name in value:
        if not isinstance(name, str) or not 1 <= len(name) <= TAG_MAX:
            raise TeamCodeError(f"tags: {name!r} is not a tag name of 1 to {TAG_MAX} characters")
    return list(dict.fromkeys(value))


def _welcome(value: Any) -> str | None:
    if value is None or value == "":
        return None
    if not isinstance(value, str) or len(value.encode()) > WELCOME_MAX:
        raise TeamCodeError(f"welcome: text of at most {WELCOME_MAX} bytes (WeCom's limit), or null")
    return value


def _int(value: Any, name: str) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise TeamCodeError(f"{name} must be a positive integer")
    return value


# --- reading --------------------------------------------------------------------------------------------------------


def complete(code: ContactCode) -> bool:
    return bool(code.oa_ticket) and bool(code.wecom_config_id)


def content(code: ContactCode, kind: str) -> str | None:
    """What a printed code of `kind` encodes: the OA `url`, or the contact way's qr_code."""
    if kind not in KINDS:
        raise TeamCodeError(f"kind must be one of {', '.join(KINDS)}")
    return (code.oa_url if kind == "oa" else code.wecom_qr_code) or None


def describe(code: ContactCode) -> dict[str, Any]:
    oa = {"scene": code.scene, "ticket": code.oa_ticket, "url": code.oa_url} if code.oa_ticket else None
    wecom = None
    if code.wecom_config_id:
        wecom = {"state": code.scene, "config_id": code.wecom_config_id, "qr_code": code.wecom_qr_code,
                 "users": list(code.wecom_users or []), "synced_at": iso(code.wecom_synced_at)}  # fmt: skip
    return {
        "id": code.id, "name": code.name, "scene": code.scene, "active": code.active,
        "members": list(code.members or []), "backup_rep_id": code.backup_rep_id, "tags": list(code.tags or []),
        "welcome": code.welcome, "complete": complete(code), "oa": oa, "wecom": wecom,
        "created_at": iso(code.created_at),
    }  # fmt: skip


def page(session: Session, *, after: int = 0, limit: int = 100) -> tuple[list[ContactCode], int | None]:
    query = select(ContactCode).where(ContactCode.kind == KIND, ContactCode.id > after).order_by(ContactCode.id)
    rows = list(session.scalars(query.limit(limit + 1)))
    return rows[:limit], rows[limit - 1].id if len(rows) > limit else None
