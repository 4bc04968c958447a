"""Handing a rep's open leads to other reps: when the rep is deactivated ("rep.reassign"), and when a lead has waited
too long for its owner (the lead pool).

An open lead is a follower the rep owns, not in the playbook's final stage, still reachable (followed, or the WeCom
contact kept). Each page of leads is one transaction: the leads are locked in id order (PostgreSQL), so the
applier, which locks its batch's followers the same way, either finishes first (and a lead whose owner it changed
is left alone) or waits for this page; the owner changes by `UPDATE ... WHERE owner_id = <old owner>`, so nothing
ever moves a lead that moved meanwhile. New owners come from the same weighted round-robin as new leads
(scrm.assignment), which also keeps each rep under their open-lead cap.

OA leads change owner in WeLead only. WeCom contacts change owner in WeLead at once, and get a Transfer row that the
"rep.transfer" job carries to WeCom (at most 100 customers a call, grouped by handover, takeover and mode); a WeCom
refusal gives the lead back to its previous owner (scrm.handover_wecom). A customer transferred on the job twice in
the last 90 days is not offered to WeCom a third time: its row is failed at once, with the reason.

Every move has a unique key naming its cause and the lead, so a rerun, or two schedulers at once, moves a lead once.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import bindparam, exists, func, insert, select, update
from sqlalchemy.orm import Session

from foundation.sql import insert_ignore
from scrm import assignment, outbox
from scrm.assign_effects import MQL_POOL
from scrm.handover_models import DONE, FAILED, ONJOB, OPEN, PENDING, RESIGNED, Transfer
from scrm.handover_wecom import notice_row
from scrm.models import Activity, Follower, Outbox, Rep
from scrm.playbook import store

PAGE = 200
TRANSFER_BATCH = 100  # WeCom: customers per transfer call
WINDOW = timedelta(days=90)
ONJOB_PER_WINDOW = 2  # WeCom: on-the-job transfers of one customer per 90 days
ERR_TOO_OFTEN = 40128  # WeCom's code for it; recorded without asking WeCom
DEFAULT_FINAL = "customer"
ACTED = ("rep_action", "owner_assigned")  # what resets a lead's clock in the pool (by the owner / to the owner)

_F, _T, _A = Follower, Transfer, Activity


@dataclass(frozen=True, slots=True)
class Lead:
    id: int
    openid: str
    channel: str
    owner_id: int


@dataclass
class Moved:
    """What a page (or a whole run) did; `outbox_ids` are to be pushed after commit."""

    moved: int = 0  # OA leads given to another rep
    transferring: int = 0  # WeCom contacts given to another rep, queued for WeCom
    refused: int = 0  # WeCom contacts not offered: transferred twice in 90 days
    no_rep: int = 0  # nobody eligible: left with their owner
    outbox_ids: list[int] = field(default_factory=list)

    def add(self, other: Moved) -> None:
        self.moved += other.moved
        self.transferring += other.transferring
        self.refused += other.refused
        self.no_rep += other.no_rep
        self.outbox_ids += other.outbox_ids

    def report(self) -> dict[str, int]:
        return {"moved": self.moved, "transferring": self.transferring, "refused": self.refused, "no_rep": self.no_rep}


Picker = Callable[[Session, Lead, datetime], int | None]


def pick(session: Session, lead: Lead, at: datetime) -> int | None:
    """The rep whose turn it is for `lead`: the round-robin unowned MQL leads go by (pool "mql": one fair share for
    new and handed-over leads alike, with the same caps and hours), never the lead's current owner."""
    return assignment.pick(session, assignment.everyone(session, exclude=[lead.owner_id]), at, MQL_POOL)


def final_stage(session: Session) -> str:
    """The active playbook's last stage (a lead there is won, not open); "customer" without a playbook."""
    book = store.active(session)
    return book.stages[-1].name if book is not None and book.stages else DEFAULT_FINAL


def is_open(final: str) -> Any:
    return (_F.stage != final) & _F.subscribed.is_(True)


# --- deactivation -----------------------------------------------------------------------------------------------------


def deactivation_key(rep: Rep, resigned: bool, round_: str | None) -> str:
    """The cause of a deactivated rep's moves: one per deactivation, mode and (admin) rerun."""
    stamp = rep.deactivated_at.isoformat() if rep.deactivated_at else "-"
    mode = RESIGNED if resigned else ONJOB
    return f"deactivated:{rep.id}:{stamp}:{mode}" + (f":{round_}" if round_ else "")


def reassign_page(
    session: Session, rep: Rep, *, resigned: bool, cause_key: str, after: int, pick: Picker, now: datetime
) -> tuple[Moved, int | None]:
    """Move one page of the deactivated `rep`'s open leads with ids above `after`; (what moved, the page's last id,
    None when there are no more)."""
    query = (
        select(_F.id, _F.openid, _F.channel, _F.owner_id)
        .where(_F.owner_id == rep.id, _F.id > after, is_open(final_stage(session)))
        .order_by(_F.id)
        .limit(PAGE)
    )
    leads = [Lead(*row) for row in session.execute(_locked(session, query))]
    if not leads:
        return Moved(), None
    mode = RESIGNED if resigned else ONJOB
    moved = hand_over(session, leads, "deactivated", lambda lead: f"{cause_key}:{lead.id}", mode, pick, now)
    return moved, leads[-1].id


# --- the lead pool ----------------------------------------------------------------------------------------------------


def last_acted() -> Any:
    """When the owner last acted on the lead: their latest rep_action on it, or the time it was assigned to them,
    whichever is later; the follower's creation when neither is on the timeline."""
    latest = (
        select(func.max(_A.at))
        .where(_A.follower_id == _F.id, _A.kind.in_(ACTED), _A.data["rep"].as_integer() == _F.owner_id)
        .scalar_subquery()
    )
    return func.coalesce(latest, _F.created_at)


def stale_query(final: str, cutoff: datetime) -> Any:
    """Open leads of active reps whose owner has not acted since `cutoff`, and that no move has touched since."""
    since = last_acted()
    moved_since = exists().where(_T.follower_id == _F.id, _T.created_at > since)
    return (
        select(_F.id, _F.openid, _F.channel, _F.owner_id, since.label("since"))
        .join(Rep, Rep.id == _F.owner_id)
        .where(Rep.active.is_(True), is_open(final), since < cutoff, ~moved_since)
        .order_by(_F.id)
    )


def pool_page(session: Session, days: int, *, after: int, pick: Picker, now: datetime) -> tuple[Moved, int | None]:
    """Give one page of leads idle for `days` to other reps; (what moved, the page's last id or None when done).

    Candidates are read without locks, then locked in id order and read again, so a lead its owner acted on (or
    that moved) in the meantime stays where it is.
    """
    base = stale_query(final_stage(session), now - timedelta(days=days))
    ids = list(session.scalars(base.where(_F.id > after).limit(PAGE)))
    if not ids:
        return Moved(), None
    session.execute(_locked(session, select(_F.id).where(_F.id.in_(ids)).order_by(_F.id))).all()
    rows = session.execute(base.where(_F.id.in_(ids))).all()
    leads = [Lead(r.id, r.openid, r.channel, r.owner_id) for r in rows]
    keys = {r.id: f"pool:{r.id}:{r.since.isoformat()}" for r in rows}
    moved = hand_over(session, leads, "pool", lambda lead: keys[lead.id], ONJOB, pick, now)
    return moved, ids[-1]


# --- moving a set of leads --------------------------------------------------------------------------------------------


def hand_over(
    session: Session,
    leads: list[Lead],
    cause: str,
    key_of: Callable[[Lead], str],
    mode: str,
    pick: Picker,
    now: datetime,
) -> Moved:
    """Move `leads` (locked by the caller) to reps `pick` chooses, each at most once per key.

    Each owner change is written before the next pick, so the picker's open-lead counts include it; the rows,
    timeline entries and jobs of the page are written together after.
    """
    out = Moved()
    leads = _fresh(session, leads, key_of)
    too_often = _transferred_twice(session, [lead for lead in leads if lead.channel == "wecom"], now, mode)
    rows: list[dict[str, Any]] = []
    for lead in leads:
        row = _row(lead, cause, key_of(lead), mode, now)
        if lead.openid in too_often:
            row.update(state=FAILED, errcode=ERR_TOO_OFTEN, error="transferred twice in 90 days: not asked of WeCom")
            row["settled_at"] = now
            out.refused += 1
        else:
            row["to_rep_id"] = pick(session, lead, now)
            if row["to_rep_id"] is None:
                out.no_rep += 1
                continue
            _move(session, lead, row["to_rep_id"])
        rows.append(row)
    saved = _record(session, rows, now)
    moved = [t for t in saved if t.to_rep_id is not None]
    oa = [t for t in moved if t.channel != "wecom"]
    out.moved, out.transferring = len(oa), len(moved) - len(oa)
    openids = {lead.id: lead.openid for lead in leads}
    out.outbox_ids += _notify(session, oa, openids, now)
    out.outbox_ids += queue_transfers(session, [t for t in moved if t.channel == "wecom"])
    return out


def _row(lead: Lead, cause: str, key: str, mode: str, now: datetime) -> dict[str, Any]:
    wecom = lead.channel == "wecom"
    return {
        "key": key, "follower_id": lead.id, "channel": lead.channel, "external_userid": lead.openid if wecom else None,
        "cause": cause, "mode": mode if wecom else None, "from_rep_id": lead.owner_id, "to_rep_id": None,
        "state": PENDING if wecom else DONE, "errcode": None, "status": None, "error": None, "attempts": 0,
        "created_at": now, "sent_at": None, "settled_at": None if wecom else now, "takeover_at": None,
    }  # fmt: skip


def _fresh(session: Session, leads: list[Lead], key_of: Callable[[Lead], str]) -> list[Lead]:
    """Leads not moved for this cause yet and not on their way to someone already."""
    if not leads:
        return []
    ids = [lead.id for lead in leads]
    keys = {key_of(lead) for lead in leads}
    done = set(session.scalars(select(_T.key).where(_T.key.in_(keys))))
    busy = set(session.scalars(select(_T.follower_id).where(_T.follower_id.in_(ids), _T.state.in_(OPEN))))
    return [lead for lead in leads if key_of(lead) not in done and lead.id not in busy]


def _transferred_twice(session: Session, leads: list[Lead], now: datetime, mode: str) -> set[str]:
    """External userids WeCom accepted an on-the-job transfer of twice in the last 90 days (our own count)."""
    if not leads or mode != ONJOB:
        return set()
    query = (
        select(_T.external_userid)
        .where(_T.external_userid.in_([lead.openid for lead in leads]), _T.mode == ONJOB, _T.errcode == 0)
        .where(_T.sent_at >= now - WINDOW)
        .group_by(_T.external_userid)
        .having(func.count() >= ONJOB_PER_WINDOW)
    )
    return set(session.scalars(query))


_MOVE = (
    update(Follower.__table__)
    .where(Follower.__table__.c.id == bindparam("fid"), Follower.__table__.c.owner_id == bindparam("old"))
    .values(owner_id=bindparam("new"))
)


def _move(session: Session, lead: Lead, to: int) -> None:
    """The owner change, guarded by the old owner (the lead is locked, so the guard holds)."""
    changed = session.connection().execute(_MOVE, {"fid": lead.id, "old": lead.owner_id, "new": to}).rowcount
    if changed != 1:
        raise RuntimeError(f"the owner of follower {lead.id} changed under a lock")


def _record(session: Session, rows: list[dict[str, Any]], now: datetime) -> list[Transfer]:
    """The page's Transfer rows and their timeline entries (owner_assigned via reassign, pool or transfer; or
    transfer_failed), as two executemany (the Transfers returned are not attached to the session)."""
    if not rows:
        return []
    conn = session.connection()
    conn.execute(insert(Transfer.__table__), rows)
    ids = dict(conn.execute(select(_T.key, _T.id).where(_T.key.in_([r["key"] for r in rows]))).all())
    saved = [Transfer(**row, id=ids[row["key"]]) for row in rows]
    conn.execute(insert(Activity.__table__), [_entry(t, now) for t in saved])
    return saved


def _entry(t: Transfer, now: datetime) -> dict[str, Any]:
    if t.state == FAILED:
        data = {"rep": t.from_rep_id, "transfer": t.id, "errcode": t.errcode, "reason": t.error, "cause": t.cause}
        return {"follower_id": t.follower_id, "kind": "transfer_failed", "at": now, "data": data}
    via = "transfer" if t.channel == "wecom" else ("pool" if t.cause == "pool" else "reassign")
    data = {"rep": t.to_rep_id, "from": t.from_rep_id, "to": t.to_rep_id, "via": via, "transfer": t.id}
    return {"follower_id": t.follower_id, "kind": "owner_assigned", "at": now, "data": {**data, "cause": t.cause}}


def _notify(session: Session, moved: list[Transfer], openids: dict[int, str], now: datetime) -> list[int]:
    """An `assigned` notice to each new owner, once per move; the outbox ids to push."""
    rows = [notice_row(t, openids[t.follower_id], now) for t in moved]
    if not rows:
        return []
    session.connection().execute(insert_ignore(session, Outbox, ["key"]), rows)
    keys = [r["key"] for r in rows]
    return list(session.scalars(select(Outbox.id).where(Outbox.key.in_(keys), Outbox.done_at.is_(None))))


def queue_transfers(session: Session, transfers: list[Transfer]) -> list[int]:
    """One "rep.transfer" job per (handover, takeover, mode) and 100 customers."""
    groups: dict[tuple[int, int | None, str | None], list[int]] = defaultdict(list)
    for t in transfers:
        groups[(t.from_rep_id, t.to_rep_id, t.mode)].append(t.id)
    queued = []
    for ids in groups.values():
        ids.sort()
        for start in range(0, len(ids), TRANSFER_BATCH):
            chunk = ids[start : start + TRANSFER_BATCH]
            oid = outbox.add(session, "rep.transfer", {"ids": chunk}, key=f"rep.transfer:{chunk[0]}:{len(chunk)}")
            if oid is not None:
                queued.append(oid)
    return queued


def _locked(session: Session, query: Any) -> Any:
    """FOR NO KEY UPDATE on PostgreSQL (foreign keys still take their KEY SHARE locks); SQLite writers are serial."""
    if session.get_bind().dialect.name == "postgresql":
        return query.with_for_update(key_share=True, of=_F)
    return query
