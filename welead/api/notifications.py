"""What reps and customers were told in WeCom: rep notifications (with WeCom's errors) and welcome messages."""

from __future__ import annotations

from apiflask import Schema
from apiflask.fields import Boolean, Float, Integer, List, Nested, String
from apiflask.validators import OneOf

from foundation.services import services
from scrm import notifications, welcomes
from scrm.notices import KINDS
from scrm.notification_models import ALREADY_SENT, ERROR, EXPIRED, QUEUED, SKIPPED, W_SENT
from welead.api import bp
from welead.api.access import allow, answers, bounded, principal
from welead.api.schemas import IDS, INT4_MAX, MAX_ID, opt, req

WELCOME_STATUSES = (QUEUED, "sending", W_SENT, ALREADY_SENT, EXPIRED, SKIPPED, ERROR, "unknown")


class NotificationArgs(Schema):
    rep = Integer(
        load_default=None,
        metadata={"description": "a rep id (a rep token sees its own only)", "minimum": 1, "maximum": INT4_MAX},
    )
    state = String(load_default=None, validate=OneOf(notifications.STATES))
    kind = String(load_default=None, validate=OneOf(KINDS))
    after = Integer(load_default=0, metadata={"description": "the `next` cursor of the previous page", **IDS})
    limit = Integer(load_default=50, metadata={"description": "1-500 (400 outside)", "minimum": 1, "maximum": 500})


class NotificationOut(Schema):
    id, key, rep, follower = req(Integer()), req(String()), req(Integer()), req(Integer())
    openid, userid = opt(String), opt(String, metadata={"description": "the WeCom member it went to"})
    kind, reason = req(String(metadata={"description": ", ".join(KINDS)})), req(String())
    state = req(String(metadata={"description": ", ".join(notifications.STATES)}))
    rule, about_rep = opt(String), opt(Integer, metadata={"description": "a manager's copy: the rep it is about"})
    message = opt(String, metadata={"description": "the app message that carried it (shared by a digest's rows)"})
    digest, attempts = req(Boolean()), req(Integer())
    errcode, error = opt(Integer), opt(String)
    created_at, sent_at = req(String()), opt(String)


class NotificationPage(Schema):
    items, next = req(List(Nested(NotificationOut))), opt(Integer)


def _scoped_rep(asked: int | None) -> int | None:
    """A rep token lists its own notifications whatever it asks for."""
    who = principal()
    if who.role == "rep":
        return int(who.subject) if (who.subject or "").isdigit() else -1
    return asked


@bp.get("/notifications")
@allow("marketer", "rep")
@bp.input(NotificationArgs, location="query", arg_name="args")
@bp.doc(
    summary="Notifications sent to reps",
    description="Newest first; `?rep=&state=&kind=`. `state`: pending (waiting for the rep's next send slot: WeCom "
    "drops more than 30 a minute), sent, failed (WeCom's errcode and error: 60111 invalid userid, `invaliduser`...), "
    "unknown (no answer from WeCom; never resent). Rows with the same `message` went out as one digest.",
    responses=answers(NotificationPage, 400),
)
def list_notifications(args: dict):
    after, limit = bounded(args["after"], 0, MAX_ID, "after"), bounded(args["limit"], 1, 500, "limit")
    if args["rep"] is not None:
        bounded(args["rep"], 1, INT4_MAX, "rep")
    with services().db.sessions() as session:
        items = notifications.page(session, _scoped_rep(args["rep"]), args["state"], args["kind"], after, limit)
    return {"items": items, "next": items[-1]["id"] if len(items) == limit else None}


class WelcomeArgs(Schema):
    status = String(load_default=None, validate=OneOf(WELCOME_STATUSES))
    userid = String(load_default=None, metadata={"description": "the rep's WeCom userid"})
    after = Integer(load_default=0, metadata={"description": "the `next` cursor of the previous page", **IDS})
    limit = Integer(load_default=50, metadata={"description": "1-500 (400 outside)", "minimum": 1, "maximum": 500})


class WelcomeOut(Schema):
    id, code, external_userid, userid = req(Integer()), req(String()), req(String()), req(String())
    scene, contact_code, text = opt(String), opt(Integer), opt(String)
    status = req(String(metadata={"description": ", ".join(WELCOME_STATUSES)}))
    attempts, errcode, error = req(Integer()), opt(Integer), opt(String)
    event_at, sent_at, created_at = req(String()), opt(String), req(String())
    seconds_after_event = opt(Float, metadata={"description": "from the add event to WeCom's ok"})


class WelcomePage(Schema):
    items, next = req(List(Nested(WelcomeOut))), opt(Integer)


@bp.get("/welcomes")
@allow("marketer")
@bp.input(WelcomeArgs, location="query", arg_name="args")
@bp.doc(
    summary="Welcome messages to new WeCom customers",
    description="One per WelcomeCode, newest first. `status`: sent, already_sent (41051), expired (WeCom's 20 "
    "seconds passed first), skipped (no welcome text on the contact code), error, unknown (no answer in time).",
    responses=answers(WelcomePage, 400),
)
def list_welcomes(args: dict):
    after, limit = bounded(args["after"], 0, MAX_ID, "after"), bounded(args["limit"], 1, 500, "limit")
    with services().db.sessions() as session:
        items = welcomes.page(session, args["status"], args["userid"], after, limit)
    return {"items": items, "next": items[-1]["id"] if len(items) == limit else None}
