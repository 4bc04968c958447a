"""Messages: the template library (list, preview), single sends, deliveries, broadcasts and their control.

Views only translate: look up or 404, check the role, call scrm/ in one transaction, push the job after commit.
"""

from __future__ import annotations

import uuid
from typing import Any

from apiflask import Schema, abort
from apiflask.fields import Dict, Float, Integer, Raw, String
from apiflask.validators import Length, OneOf, Range

from foundation.clock import utcnow
from foundation.services import services
from scrm import broadcasts, deliveries, delivery_reads, followers
from scrm.delivery_models import FINAL, PENDING, Delivery
from scrm.message_templates import CHANNELS, TEMPLATE, TemplateError, render, request_body
from tasks import broadcast as broadcast_tasks
from tasks import pump, send
from welead.api import bp
from welead.api.access import allow, answers, get_follower, principal
from welead.api.schemas import (
    INT4_MAX,
    MAX_ID,
    BroadcastList,
    BroadcastOut,
    DeliveryOut,
    DeliveryPage,
    MessageBody,
    TemplateList,
    TemplateOut,
)

STATES = (*PENDING, *FINAL)


class PreviewIn(Schema):
    openid = String(required=True, validate=Length(1, 64))
    data = Dict(load_default=dict)
    event = Dict(load_default=dict)
    channel = String(load_default=None, validate=OneOf(CHANNELS))


class MessageIn(Schema):
    openid = String(required=True, validate=Length(1, 64))
    template = String(required=True, validate=Length(1, 64))
    data = Dict(load_default=dict)
    event = Dict(load_default=dict)
    channel = String(load_default=None, validate=OneOf(CHANNELS))
    key = String(load_default=None, validate=Length(1, 160), metadata={"description": "idempotency key"})


class DeliveryArgs(Schema):
    openid = String(load_default=None)
    state = String(load_default=None, validate=OneOf(STATES))
    broadcast = Integer(load_default=None, validate=Range(0, INT4_MAX))  # broadcasts.id is an INTEGER
    before = Integer(load_default=None, validate=Range(0, MAX_ID),
                     metadata={"description": "the `next` cursor of the previous page"})  # fmt: skip
    limit = Integer(load_default=50, validate=Range(1, 500))


class BroadcastIn(Schema):
    segment = Raw(
        required=True,
        metadata={"description": "a filter (JSON), a query string (`tags_all=vip&stage=mql+`) or a saved segment's "
                  "name or id (docs/segments.md)"},
    )  # fmt: skip
    template = String(required=True, validate=Length(1, 64))
    data = Dict(load_default=dict)
    channel = String(load_default=None, validate=OneOf(CHANNELS))
    key = String(load_default=None, validate=Length(1, 160), metadata={"description": "same key, same broadcast"})
    name = String(load_default="", validate=Length(0, 128))
    error_budget = Float(load_default=None, validate=Range(0, 1))
    breaker_window = Integer(load_default=None, validate=Range(1, 100_000))


class PauseIn(Schema):
    reason = String(load_default="paused by an operator", validate=Length(1, 500))


def _library():
    return send.message_library()


@bp.get("/templates")
@allow("marketer")
@bp.doc(
    summary="The message library",
    description="Valid entries, and the files that failed validation.",
    responses=answers(TemplateList),
)
def list_templates():
    lib = _library()
    return {"items": [t.describe() for t in lib.entries.values()], "errors": lib.errors}


@bp.get("/templates/<name>")
@allow("marketer")
@bp.doc(
    summary="One library entry", description="422 when its file is invalid.", responses=answers(TemplateOut, 404, 422)
)
def get_template(name: str):
    try:
        return _library().get(name).describe()
    except TemplateError as exc:
        abort(404 if name not in _library().errors else 422, str(exc))


def _preview_body(channel: str, openid: str, payload: dict[str, Any]) -> dict[str, Any]:
    if channel == TEMPLATE:
        return request_body(openid, payload)
    if channel == "custom":
        return {"touser": openid, "msgtype": "text", "text": {"content": payload["text"]}}
    return {"touser": [openid], "msgtype": "text", "text": {"content": payload["text"]}}


@bp.post("/templates/<name>/preview")
@allow("marketer")
@bp.input(PreviewIn, arg_name="body")
@bp.doc(
    summary="Preview for a follower",
    description="The exact JSON that would be sent (without client_msg_id); 422 when it does not render.",
    responses=answers(MessageBody, 404, 422),
)
def preview(name: str, body: dict):
    lib, r = _library(), send.rules()
    with services().db.sessions() as session:
        follower = get_follower(session, body["openid"])
        try:
            tpl = lib.get(name)
            channel = body["channel"] or tpl.channels[0]
            shown = followers.serialize(session, [follower])[0]
            row = Delivery(channel=channel, args={"event": body["event"]})
            ctx = deliveries.context(row, shown, body["data"], utcnow(), r.zone())
            payload = render(tpl, channel, ctx)
        except TemplateError as exc:
            abort(404 if name not in lib.entries and name not in lib.errors else 422, str(exc))
    return _preview_body(channel, follower.openid, payload)


@bp.post("/messages")
@allow("marketer")
@bp.input(MessageIn, arg_name="body")
@bp.doc(
    summary="Send one message",
    description="Queues a delivery (202); the same `key` never sends twice (200).",
    responses=answers(DeliveryOut, 404, 422, status=(202, 200)),
)
def send_message(body: dict):
    who = principal()
    job = broadcasts.job_name()
    key = f"api:{body['key']}" if body["key"] else f"api:{uuid.uuid4().hex}"
    try:
        with services().db.transaction() as session:
            row, created = deliveries.new_message(
                session,
                _library(),
                openid=body["openid"],
                template=body["template"],
                data=body["data"],
                key=key,
                source=f"api:{who.name}",
                channel=body["channel"],
                event=body["event"] or None,
                job=job,
            )
            out = delivery_reads.serialize(row)
    except deliveries.NotFound as exc:
        abort(404, str(exc))
    except TemplateError as exc:
        abort(422, str(exc))
    if created:
        pump.enqueue(out["id"], job)
    return out, 202 if created else 200


@bp.get("/deliveries")
@allow("marketer", "rep")
@bp.input(DeliveryArgs, location="query", arg_name="args")
@bp.doc(
    summary="List deliveries",
    description="Newest first; filter by openid, state, broadcast. A rep token must name one of its leads' openid.",
    responses=answers(DeliveryPage, 403, 404),
)
def list_deliveries(args: dict):
    who = principal()
    with services().db.sessions() as session:
        follower_id = get_follower(session, args["openid"]).id if args["openid"] else None
        if who.role not in ("admin", "marketer") and follower_id is None:
            abort(403, "a rep token lists the deliveries of one of its leads: give its openid")
        items, nxt = delivery_reads.page(
            session,
            follower_id=follower_id,
            state=args["state"],
            broadcast_id=args["broadcast"],
            before=args["before"],
            limit=args["limit"],
        )
    return {"items": items, "next": nxt}


@bp.get("/deliveries/<int:delivery_id>")
@allow("marketer")
@bp.doc(
    summary="One delivery",
    description="State, reason, WeChat's msgid and the exact request sent.",
    responses=answers(DeliveryOut, 404),
)
def get_delivery(delivery_id: int):
    with services().db.sessions() as session:
        row = session.get(Delivery, delivery_id)
        if row is None:
            abort(404, f"no delivery {delivery_id}")
        return delivery_reads.serialize(row)


@bp.post("/broadcasts")
@allow("marketer")
@bp.input(BroadcastIn, arg_name="body")
@bp.doc(
    summary="Start a broadcast",
    description="Fans out in a worker (202); the same `key` is the same broadcast. Refused (422) for an empty "
    "segment or a template that renders for none of the followers checked; `warnings` says what will not go.",
    responses=answers(BroadcastOut, 422, status=(202, 200)),
)
def create_broadcast(body: dict):
    who = principal()
    r = send.rules()
    try:
        with services().db.transaction() as session:
            b, created, warnings = broadcasts.create(
                session,
                _library(),
                template=body["template"],
                segment=body["segment"],
                data=body["data"],
                channel=body["channel"],
                key=body["key"],
                name=body["name"],
                created_by=who.name,
                error_budget=r.error_budget if body["error_budget"] is None else body["error_budget"],
                breaker_window=body["breaker_window"] or r.breaker_window,
            )
            bid = b.id
    except broadcasts.InvalidBroadcast as exc:
        abort(422, str(exc))
    if created:
        broadcast_tasks.start(services().redis, bid)
    with services().db.sessions() as session:
        return {**broadcasts.status(session, bid), "warnings": warnings}, 202 if created else 200


@bp.get("/broadcasts")
@allow("marketer")
@bp.doc(summary="Recent broadcasts", description="The 50 newest.", responses=answers(BroadcastList))
def list_broadcasts():
    with services().db.sessions() as session:
        return {"items": broadcasts.listing(session)}


def _status(broadcast_id: int) -> dict[str, Any]:
    with services().db.sessions() as session:
        try:
            return broadcasts.status(session, broadcast_id)
        except deliveries.NotFound as exc:
            abort(404, str(exc))


@bp.get("/broadcasts/<int:broadcast_id>")
@allow("marketer")
@bp.doc(
    summary="A broadcast's progress",
    description="Counts per state, skip reasons, and why it paused.",
    responses=answers(BroadcastOut, 404),
)
def get_broadcast(broadcast_id: int):
    return _status(broadcast_id)


CONTROL = answers(BroadcastOut, 404, 409, about="The broadcast after the change (409: not in a state that allows it)")


def _control(broadcast_id: int, action: str, reason: str = "") -> dict[str, Any]:
    _status(broadcast_id)  # 404 first
    if action == "pause":
        with services().db.transaction() as session:
            changed = broadcasts.pause(session, broadcast_id, reason)
    elif action == "resume":
        changed = broadcast_tasks.resume(broadcast_id)
    else:
        with services().db.transaction() as session:
            changed = broadcasts.cancel(session, broadcast_id) is not None
    status = _status(broadcast_id)
    if not changed:
        abort(409, f"broadcast {broadcast_id} is {status['state']}: cannot {action}")
    return status


@bp.post("/broadcasts/<int:broadcast_id>/pause")
@allow("marketer")
@bp.input(PauseIn, arg_name="body")
@bp.doc(summary="Pause a broadcast", description="Queued deliveries wait; in-flight ones finish.", responses=CONTROL)
def pause_broadcast(broadcast_id: int, body: dict):
    return _control(broadcast_id, "pause", body["reason"])


@bp.post("/broadcasts/<int:broadcast_id>/resume")
@allow("marketer")
@bp.doc(summary="Resume a paused broadcast", description="Also after its circuit breaker paused it.", responses=CONTROL)
def resume_broadcast(broadcast_id: int):
    return _control(broadcast_id, "resume")


@bp.post("/broadcasts/<int:broadcast_id>/cancel")
@allow("marketer")
@bp.doc(
    summary="Cancel a broadcast",
    description="Queued deliveries become cancelled; nothing more is sent.",
    responses=CONTROL,
)
def cancel_broadcast(broadcast_id: int):
    return _control(broadcast_id, "cancel")
