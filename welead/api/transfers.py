"""Lead moves between reps: list them (per rep, per state: what WeCom refused and why), and hand a deactivated rep's
open leads over again (after a failure, or as a resigned member's for 离职继承).

Admins and marketers see every move; a rep token sees the moves from or to itself (another rep's list is 404).
"""

from __future__ import annotations

from typing import Any

from apiflask import Schema, abort
from apiflask.fields import Boolean, Integer, List, Nested, String
from apiflask.validators import Length, OneOf, Range
from sqlalchemy.orm import Session

from foundation.clock import utcnow
from foundation.services import services
from scrm import handover_reads, outbox
from scrm.handover_reads import CAUSES, STATES
from scrm.models import Rep
from tasks.queue import push
from welead.api import bp
from welead.api.access import allow, answers, bounded, principal
from welead.api.schemas import INT4_MAX, MAX_ID, StrictBoolean, opt, req

MANAGERS, READERS = ("marketer",), ("marketer", "rep")


class TransferArgs(Schema):
    rep = Integer(load_default=None, validate=Range(0, INT4_MAX), metadata={"description": "moves from or to this rep"})
    state = String(load_default=None, validate=OneOf(STATES))
    cause = String(load_default=None, validate=OneOf(CAUSES))
    openid = String(load_default=None, validate=Length(1, 64), metadata={"description": "one lead's moves"})
    after = Integer(load_default=0, validate=Range(0, MAX_ID), metadata={"description": "the `next` cursor"})
    limit = Integer(load_default=100, validate=Range(1, 500))


class ReassignIn(Schema):
    resigned = StrictBoolean(
        load_default=False,
        metadata={"description": "the rep left the corp: WeCom contacts go by 离职继承 (resigned/transfer_customer)"},
    )


class TransferOut(Schema):
    id = req(Integer())
    openid = req(String(metadata={"description": "the lead"}))
    channel = req(String(metadata={"description": "oa (WeLead only) or wecom (transferred in WeCom too)"}))
    external_userid = opt(String)
    cause = req(String(metadata={"description": "deactivated or pool"}))
    mode = opt(String, metadata={"description": "onjob (在职继承) or resigned (离职继承); null for OA leads"})
    from_rep = req(Integer())
    to_rep = opt(Integer)
    state = req(String(metadata={"description": ", ".join(STATES)}))
    errcode = opt(Integer, metadata={"description": "WeCom's per-customer code (0 accepted); 40128 too often"})
    status = opt(Integer, metadata={"description": "transfer_result: 1 taken over, 2 waiting, 3 refused, 4 limit"})
    error = opt(String)
    attempts = req(Integer())
    created_at = req(String())
    sent_at = opt(String)
    settled_at = opt(String)
    takeover_at = opt(String)


class TransferPage(Schema):
    items = req(List(Nested(TransferOut)))
    next = opt(Integer)


class ReassignOut(Schema):
    queued = req(Boolean(metadata={"description": "false: the same request was queued already"}))
    key = req(String())


def _scope(rep: int | None) -> int | None:
    """The rep filter a caller may use: a rep token only ever sees its own moves."""
    who = principal()
    if who.role != "rep":
        return rep
    own = int(who.subject) if (who.subject or "").isdigit() else -1
    if rep is not None and rep != own:
        abort(404, f"no rep {rep}")
    return own


def _page(args: dict[str, Any], rep: int | None) -> dict[str, Any]:
    after = bounded(args["after"], 0, MAX_ID, "after")
    with services().db.sessions() as session:
        items, nxt = handover_reads.page(
            session, rep=_scope(rep), state=args["state"], cause=args["cause"], follower=args["openid"],
            after=after, limit=args["limit"],
        )  # fmt: skip
    return {"items": items, "next": nxt}


@bp.get("/transfers")
@allow(*READERS)
@bp.input(TransferArgs, location="query", arg_name="args")
@bp.doc(
    summary="Lead moves between reps",
    description="Every lead handed from one rep to another (deactivation, lead pool), by id; `rep`, `state`,"
    " `cause`, `openid` filter; `next` goes back as `after`. WeCom moves carry WeCom's errcode and status.",
    responses=answers(TransferPage, 404),
)
def list_transfers(args: dict[str, Any]):
    return _page(args, args["rep"])


@bp.get("/reps/<int:rep_id>/transfers")
@allow(*READERS)
@bp.input(TransferArgs, location="query", arg_name="args")
@bp.doc(
    summary="A rep's lead moves",
    description="The leads handed from or to the rep. A rep token may read only its own (another is 404).",
    responses=answers(TransferPage, 404),
)
def rep_transfers(rep_id: int, args: dict[str, Any]):
    with services().db.sessions() as session:
        _rep(session, rep_id)
    return _page(args, rep_id)


@bp.post("/reps/<int:rep_id>/reassign")
@allow(*MANAGERS)
@bp.input(ReassignIn, arg_name="body")
@bp.doc(
    summary="Hand a deactivated rep's open leads over again",
    description='Queues "rep.reassign" once more: leads still with the rep (nobody was eligible, or WeCom refused'
    " the transfer) are offered again, within WeCom's limits. `resigned: true` uses 离职继承 for WeCom contacts."
    ' 409 while the rep is active (deactivate it first: PATCH /reps/<id> {"active": false}).',
    responses=answers(ReassignOut, 404, 409, status=202),
)
def reassign(rep_id: int, body: dict[str, Any]):
    svc = services()
    with svc.db.transaction() as session:
        rep = _rep(session, rep_id)
        if rep.active or rep.deactivated_at is None:
            abort(409, f"rep {rep_id} is active: deactivate it first")
        stamp = utcnow().isoformat()
        args = {"rep_id": rep_id, "resigned": bool(body["resigned"]), "round": stamp}
        key = f"rep.reassign:{rep_id}:{rep.deactivated_at.isoformat()}:{stamp}"
        oid = outbox.add(session, "rep.reassign", args, key=key)
    push(svc.redis_slow, [oid] if oid else [])
    return {"queued": oid is not None, "key": key}, 202


def _rep(session: Session, rep_id: int) -> Rep:
    rep = session.get(Rep, rep_id)
    if rep is None:
        abort(404, f"no rep {rep_id}")
    _scope(rep_id)
    return rep
