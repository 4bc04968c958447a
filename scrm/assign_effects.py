"""Who owns a lead, as the applier applies what the lead did: code scans, WeCom contacts, reaching MQL, `assign`.

- OA subscribe/SCAN with scene `rep:<id>`: that rep (active and confirmed; else the lead stays unowned, with a
  warning and an `assignment_skipped` timeline entry). Scene `team:<id>`: the picker chooses among the code's
  members (pool `team:<id>`); nobody eligible: the code's backup rep.
- WeCom add_external_contact: WeCom already chose the member (UserID); that rep owns the contact, counted against
  their caps (and, for a team code, charged to its pool so OA and WeCom leads share one fair round-robin).
- The stage `mql` reached by an unowned, reachable lead: the picker among every eligible rep (pool `mql`).
- The playbook's `assign` action (scrm.playbook.engine) goes through `give` like everything else.

The playbook setting `assignment` decides what a later code does to an owned lead: `first_touch` (default) keeps
the owner; `last_touch` gives the lead to the latest code's rep (a team code keeps an owner who is one of its
members). Every change of owner is an `owner_assigned` timeline entry {rep, from, to, via, code, rule}, a
"rep.notify" of kind `assigned` (scrm.notices) and, when it fills the rep's cap, a "codes.sync" for each team code
the rep is a member of, so WeCom stops listing them. A code's tags are applied to whoever comes through it.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Protocol

from sqlalchemy import select
from sqlalchemy.orm import Session

from scrm import assignment, hours, notices, tags, team_codes
from scrm.code_models import ContactCode
from scrm.models import Activity, Follower, Rep

log = logging.getLogger(__name__)

FIRST_TOUCH, LAST_TOUCH = "first_touch", "last_touch"
MQL, MQL_POOL = "mql", "mql"
REASON = "new lead assigned"


class Context(Protocol):
    """A scrm.ingest.Visit or a rules-engine context: a session, the interaction (if any), outbox rows."""

    session: Session
    interaction_id: int | None

    def enqueue(self, task: str, args: dict[str, Any], key: str | None = None) -> None: ...


@dataclass(frozen=True)
class Why:
    """How a lead came to its rep: `via` (rep_code, team_code, team_backup, wecom_contact, mql, playbook)."""

    via: str
    code: int | None = None
    rule: str | None = None


def mode(ctx: Any) -> str:
    """The playbook's `assignment` setting for this interaction (first_touch without a playbook)."""
    book = getattr(ctx, "book", None)
    return getattr(getattr(book, "book", None), "assignment", FIRST_TOUCH) or FIRST_TOUCH


# --- the one way a lead changes hands ---------------------------------------------------------------------------


def give(ctx: Context, follower: Follower, rep_id: int, at: datetime, why: Why, crossing: str | int | None = None,
         *, picked: bool = False, pool: str | None = None) -> bool:  # fmt: skip
    """Make `rep_id` the owner: counted (unless the picker already did), recorded, told; False if it already was."""
    old = follower.owner_id
    if old == rep_id:
        return False
    session = ctx.session
    if not picked:
        assignment.charge(session, rep_id, at, pool)
    follower.owner_id = rep_id
    data = {"rep": rep_id, "from": old, "to": rep_id, "via": why.via, "code": why.code}
    if why.rule:
        data["rule"] = why.rule
    _note(ctx, follower, "owner_assigned", data)
    crossing = crossing if crossing is not None else (ctx.interaction_id or at.isoformat(timespec="seconds"))
    notices.notify(ctx, follower, rep_id, "assigned", crossing, reason=REASON)
    if assignment.at_cap(session, rep_id, at):
        _capped(ctx, rep_id, at)
    return True


def _capped(ctx: Context, rep_id: int, at: datetime) -> None:
    """The rep has no room left: every team code listing them syncs its contact way (once per filling lead)."""
    count = assignment.today(ctx.session, rep_id, at)
    for code_id in team_codes.listing(ctx.session, rep_id):
        cause = f"cap:{rep_id}:{hours.local_day(at).isoformat()}:{count}"
        ctx.enqueue(team_codes.TASK, {"code_id": code_id}, key=f"{team_codes.TASK}:{cause}:{code_id}")


def skipped(ctx: Context, follower: Follower, scene: str | None, why: str) -> None:
    """Nobody got the lead: a warning, and a timeline entry saying why."""
    log.warning("lead %s via %r left %s: %s", follower.openid, scene, "unowned" if follower.owner_id is None
                else f"with rep {follower.owner_id}", why)  # fmt: skip
    _note(ctx, follower, "assignment_skipped", {"scene": scene, "why": why})


def _note(ctx: Context, follower: Follower, kind: str, data: dict[str, Any]) -> None:
    note = getattr(ctx, "note", None)
    if note is not None and getattr(ctx, "follower", None) is follower:
        note(kind, data)
        return
    with ctx.session.no_autoflush:
        ctx.session.add(Activity(follower_id=follower.id, kind=kind, interaction_id=ctx.interaction_id, data=data))


# --- OA scans -----------------------------------------------------------------------------------------------------


def scanned(visit: Any, scene: str | None) -> None:
    """An OA subscribe or SCAN: the code's tags, then its rep (a personal code) or its pick (a team code)."""
    found = team_codes.parse_scene(scene)
    follower = visit.follower
    if found is None or follower is None:
        return
    kind, ident = found
    at = visit.event.at
    with visit.session.no_autoflush:  # the batch's followers are written at its end (scrm.applier)
        if kind == "rep":
            _code_tags(visit, follower, _personal(visit.session, ident))
            _to_rep(visit, follower, ident, at, scene)
        else:
            _to_team(visit, follower, team_codes.find(visit.session, ident), at, scene)


def _personal(session: Session, rep_id: int) -> ContactCode | None:
    return session.scalar(select(ContactCode).where(ContactCode.kind == "rep", ContactCode.rep_id == rep_id))


def _to_rep(visit: Any, follower: Follower, rep_id: int, at: datetime, scene: str | None) -> None:
    rep = visit.session.get(Rep, rep_id)
    if rep is None or not rep.active or not rep.confirmed:
        state = "unknown" if rep is None else "inactive" if not rep.active else "unconfirmed"
        log.warning("scene %r: rep %s is %s", scene, rep_id, state)
        skipped(visit, follower, scene, f"rep {rep_id} is not an active, confirmed rep")
        return
    if follower.owner_id is not None and mode(visit) == FIRST_TOUCH:
        return
    code = _personal(visit.session, rep_id)
    give(visit, follower, rep_id, at, Why("rep_code", code.id if code else None))


def _to_team(visit: Any, follower: Follower, code: ContactCode | None, at: datetime, scene: str | None) -> None:
    if code is None or not code.active:
        skipped(visit, follower, scene, "no such team code" if code is None else f"team code {code.id} is inactive")
        return
    _code_tags(visit, follower, code)
    owner = follower.owner_id
    if owner is not None and (mode(visit) == FIRST_TOUCH or owner in {r for r, _ in team_codes.members(code)}):
        return
    pool = team_codes.scene(code.id)
    rep = assignment.pick(visit.session, team_codes.members(code), at, pool)
    if rep is not None:
        give(visit, follower, rep, at, Why("team_code", code.id), picked=True)
        return
    backup = visit.session.get(Rep, code.backup_rep_id) if code.backup_rep_id else None
    if backup is not None and backup.active and backup.confirmed:
        give(visit, follower, backup.id, at, Why("team_backup", code.id))
    else:
        skipped(visit, follower, scene, f"nobody in team code {code.id} is eligible and it has no usable backup")


# --- WeCom contacts -----------------------------------------------------------------------------------------------


def contact_added(visit: Any, rep_id: int | None, state: str | None) -> None:
    """A customer added member `rep_id` (WeCom's UserID) through the contact way with `state`."""
    follower = visit.follower
    if follower is None:
        return
    with visit.session.no_autoflush:
        _contact(visit, follower, rep_id, state)


def _contact(visit: Any, follower: Follower, rep_id: int | None, state: str | None) -> None:
    found = team_codes.parse_scene(state)
    code: ContactCode | None = None
    if found is not None:
        kind, ident = found
        code = _personal(visit.session, ident) if kind == "rep" else team_codes.find(visit.session, ident)
        if code is None or not code.active:
            log.warning("contact %s: state %r names no active code; the member WeCom reports owns it", follower.openid,
                        state)  # fmt: skip
        else:
            _code_tags(visit, follower, code)
    if rep_id is None or (follower.owner_id is not None and mode(visit) == FIRST_TOUCH):
        return
    pool = None
    if code is not None and code.kind == team_codes.KIND and rep_id in {r for r, _ in team_codes.members(code)}:
        pool = team_codes.scene(code.id)
    give(visit, follower, rep_id, visit.event.at, Why("wecom_contact", code.id if code else None), pool=pool)


# --- MQL and the playbook -----------------------------------------------------------------------------------------


def stage_reached(ctx: Context, follower: Follower, stage: str, direction: str, at: datetime,
                  crossing: str | int | None = None) -> None:  # fmt: skip
    """An unowned lead reaching `mql` goes to the rep whose turn it is among everyone eligible."""
    if stage != MQL or direction != "up" or follower.owner_id is not None or not follower.subscribed:
        return
    with ctx.session.no_autoflush:
        rep = assignment.pick(ctx.session, assignment.everyone(ctx.session), at, MQL_POOL)
        if rep is None:
            skipped(ctx, follower, None, "reached mql but no rep is eligible")
            return
        give(ctx, follower, rep, at, Why("mql"), crossing, picked=True)


def assign(ctx: Context, follower: Follower, rep_id: int, at: datetime, rule: str,
           crossing: str | int | None = None) -> bool:  # fmt: skip
    """The playbook's `assign` action (the engine checked `overwrite` already)."""
    with ctx.session.no_autoflush:
        return give(ctx, follower, rep_id, at, Why("playbook", rule=rule), crossing)


# --- tags ---------------------------------------------------------------------------------------------------------


def _code_tags(visit: Any, follower: Follower, code: ContactCode | None) -> None:
    """The code's tags on the lead, as a rule's `tag` would (timeline entry, `tag_added` trigger)."""
    if code is None or not code.tags:
        return
    shared = getattr(visit, "shared", None)
    have = shared.tag_set(follower.id) if shared is not None else None
    for name in code.tags:
        if not 0 < len(name) <= tags.MAX_NAME or (have is not None and name in have):
            continue
        if shared is not None:
            shared.attach(follower.id, name, visit.event.at)
            have.add(name)
        elif not tags.add(visit.session, follower.id, name, visit.event.at):
            continue
        _note(visit, follower, "tag_added", {"tag": name, "code": code.id})
        visit.signal("tag_added", tag=name)
