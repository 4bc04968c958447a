"""Sales reps: add, list, read, change (confirm, deactivate), their personal codes and a printable QR code.

Admins and marketers manage reps. A rep token reads only its own rep (another rep is 404, as for leads); staff
tokens may not read reps. The rules are scrm.reps'; this module maps their errors to HTTP and documents the answers.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

from apiflask import Schema, abort
from apiflask.fields import Boolean, DateTime, Integer, List, Nested, Raw, String
from apiflask.validators import Length, Range, Regexp
from flask import Response, request
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from foundation.services import services
from scrm import personal_codes, qr_image, reps
from scrm.code_rules import CodeRuleError
from scrm.hours import DAYS, MAX_EXCEPTIONS
from scrm.models import Rep
from welead import rep_codes
from welead.api import bp
from welead.api.access import STATUS, allow, answers, principal
from welead.api.schemas import StrictBoolean, opt, req

MANAGERS, READERS = ("marketer",), ("marketer", "rep")
PNG = {"type": "string", "format": "binary"}
ERROR_REF = {"$ref": "#/components/schemas/HTTPError"}
UPSTREAM = {
    502: "WeChat or WeCom refused or did not answer (detail: api, errcode, errmsg, retryable)",
    503: "Redis, which holds the WeChat tokens, is unavailable",
}
HOURS = "weekly slots in Asia/Shanghai plus dated exceptions: {weekly: {mon: ['09:00-18:00']}, exceptions: {...}}"


SLOT = {"type": "string", "pattern": r"^([01]\d|2[0-3]):[0-5]\d-([01]\d|2[0-4]):[0-5]\d$"}
SLOTS = {"type": "array", "items": SLOT}
HOURS_SCHEMA = {
    "type": "object",  # allow_none adds null
    "additionalProperties": False,
    "properties": {
        "weekly": {"type": "object", "additionalProperties": False, "properties": dict.fromkeys(DAYS, SLOTS)},
        "exceptions": {
            "type": "object", "maxProperties": MAX_EXCEPTIONS, "propertyNames": {"format": "date"},
            "additionalProperties": SLOTS,
        },
    },
}  # fmt: skip


class RepIn(Schema):
    """Documented here, checked by scrm.reps (so the API and the CLI refuse the same things with the same words)."""

    userid = String(
        validate=[Length(1, 64), Regexp(reps.USERID)],
        metadata={"description": "WeCom member id, unique (required to create)"},
    )
    name = String(validate=Length(0, reps.NAME_MAX), metadata={"description": "default: the userid"})
    active = StrictBoolean(metadata={"description": "false deactivates: no new leads, open leads reassigned"})
    confirmed = StrictBoolean(metadata={"description": "true accepts a rep first seen in a WeCom callback"})
    weight = Integer(
        validate=Range(reps.WEIGHT_MIN, reps.WEIGHT_MAX),
        metadata={"description": "share of round-robin assignment (default 1)"},
    )
    manager_id = Integer(
        allow_none=True, validate=Range(1, reps.MAX_ID), metadata={"description": "another rep, not one's own report"}
    )
    daily_cap = Integer(
        allow_none=True, validate=Range(0, reps.CAP_MAX), metadata={"description": "new leads per local day"}
    )
    open_cap = Integer(
        allow_none=True, validate=Range(0, reps.CAP_MAX), metadata={"description": "open leads held at once"}
    )
    hours = Raw(allow_none=True, metadata={"description": HOURS + " (null: always)", **HOURS_SCHEMA})


class RepOut(Schema):
    id = req(Integer())
    userid = req(String(metadata={"description": "WeCom member id"}))
    name = req(String())
    status = req(String(metadata={"description": "active, unconfirmed (first seen in a WeCom callback) or inactive"}))
    active = req(Boolean())
    confirmed = req(Boolean())
    weight = req(Integer())
    manager_id = opt(Integer)
    daily_cap = opt(Integer)
    open_cap = opt(Integer)
    hours = opt(Raw, metadata={"description": "the normalised schedule, or null (always available)"})
    open_leads = req(Integer(metadata={"description": "followers it owns who can still be reached"}))
    assigned_today = req(Integer(metadata={"description": "leads it owns that were assigned to it since midnight"}))
    deactivated_at = opt(DateTime)
    created_at = opt(DateTime)


class RepPage(Schema):
    items = req(List(Nested(RepOut)))
    next = opt(Integer, metadata={"description": "pass as `after` for the next page; null on the last"})


class OACode(Schema):
    scene = req(String())
    ticket = req(String())
    url = req(String(metadata={"description": "what the printed code encodes"}))


class WeComWay(Schema):
    state = req(String())
    config_id = req(String())
    qr_code = opt(String)
    users = req(List(String()))


class CodesOut(Schema):
    rep_id = req(Integer())
    code_id = opt(Integer)
    complete = req(Boolean(metadata={"description": "both halves exist"}))
    oa = opt(Nested, OACode)
    wecom = opt(Nested, WeComWay)
    created_at = opt(DateTime)


def _errors(*codes: int) -> dict[int, dict]:
    """Error answers with the shared error body, for the statuses access.STATUS does not describe."""
    out = {}
    for code in codes:
        out[code] = {
            "description": UPSTREAM.get(code) or STATUS[code],
            "content": {"application/json": {"schema": ERROR_REF}},
        }
    return out


@contextmanager
def _rules() -> Iterator[None]:
    """scrm's refusals as HTTP: RepError carries its status, a scene/state over WeChat's limits is a 400."""
    try:
        yield
    except reps.RepError as exc:
        abort(exc.status, str(exc))
    except CodeRuleError as exc:
        abort(400, str(exc))
    except rep_codes.CodeFailure as exc:
        abort(exc.status, exc.message, detail=exc.detail)


def _readable(session: Session, rep_id: int) -> Rep:
    """The rep, or 404 (also for a rep token asking about another rep: its existence is not told)."""
    who = principal()
    rep = reps.find(session, rep_id)
    if rep is None or (who.role == "rep" and who.subject != str(rep_id)):
        abort(404, f"no rep {rep_id}")
    return rep


def _one(session: Session, rep: Rep) -> dict[str, Any]:
    return reps.serialize(session, [rep])[0]


def _own_id(subject: str | None) -> int:
    """The rep id a rep token names (its subject, a decimal string); -1, no rep, when it names none."""
    value = subject or ""
    return int(value) if value.isascii() and value.isdigit() and int(value) <= reps.MAX_ID else -1


def _digits(text: str) -> bool:
    return text.isascii() and text.isdigit()


def _paging() -> tuple[int, int]:
    after, limit = request.args.get("after", "0"), request.args.get("limit", "100")
    if not _digits(after) or not _digits(limit) or not 1 <= int(limit) <= 500:
        abort(400, "after is a rep id cursor; limit is between 1 and 500")
    return int(after), int(limit)


@bp.post("/reps")
@allow(*MANAGERS)
@bp.input(RepIn, arg_name="body", validation=False)
@bp.doc(
    summary="Add a rep",
    description="201 with the rep; 400 names the bad field; 409 when the userid is taken.",
    responses=answers(RepOut, 409, status=201),
)
def create_rep(body: Any):
    with _rules():
        try:
            with services().db.transaction() as session:
                return _one(session, reps.create(session, body)), 201
        except IntegrityError:
            abort(409, f"userid {body.get('userid')!r} belongs to another rep already")


@bp.get("/reps")
@allow(*READERS)
@bp.doc(
    summary="List reps",
    description="By id; `status=active|unconfirmed|inactive` filters (unconfirmed: first seen in a WeCom callback,"
    " awaiting an admin), `after`/`limit` page. Each rep carries `open_leads` and `assigned_today`. A rep token"
    " lists only itself.",
    responses=answers(RepPage, 400),
)
def list_reps():
    who = principal()
    after, limit = _paging()
    only = _own_id(who.subject) if who.role == "rep" else None
    with _rules(), services().db.sessions() as session:
        rows, nxt = reps.page(session, status=request.args.get("status") or None, after=after, limit=limit, only=only)
        return {"items": reps.serialize(session, rows), "next": nxt}


@bp.get("/reps/<int:rep_id>")
@allow(*READERS)
@bp.doc(
    summary="One rep",
    description="A rep token may read only its own rep (another is 404).",
    responses=answers(RepOut, 404),
)
def get_rep(rep_id: int):
    with services().db.sessions() as session:
        return _one(session, _readable(session, rep_id))


@bp.patch("/reps/<int:rep_id>")
@allow(*MANAGERS)
@bp.input(RepIn, arg_name="body", validation=False)
@bp.doc(
    summary="Change a rep",
    description="Any subset of the fields. `confirmed: true` confirms; `active: false` deactivates (stamps"
    " deactivated_at and queues the reassignment of its open leads, once); `active: true` reactivates.",
    responses=answers(RepOut, 404, 409),
)
def patch_rep(rep_id: int, body: Any):
    with _rules():
        try:
            with services().db.transaction() as session:
                return _one(session, reps.update(session, reps.get(session, rep_id), body))
        except IntegrityError:
            abort(409, f"userid {body.get('userid')!r} belongs to another rep already")


@bp.post("/reps/<int:rep_id>/codes")
@allow(*MANAGERS)
@bp.doc(
    summary="Make a rep's personal codes",
    description="The permanent OA QR code (scene `rep:<id>`) and the WeCom contact way (state `rep:<id>`): 201 when"
    " something was made, 200 when both existed. 409 for an inactive or unconfirmed rep; WeChat/WeCom refusals are"
    " 422 (the rep's WeCom set-up, e.g. 60111 userid not found) or 502, with `detail.errcode`.",
    responses={**answers(CodesOut, 404, 409, 422, status=(200, 201)), **_errors(502, 503)},
)
def create_codes(rep_id: int):
    with _rules():
        codes, made = rep_codes.ensure(rep_id)
    return codes, 201 if made else 200


@bp.get("/reps/<int:rep_id>/codes")
@allow(*READERS)
@bp.doc(
    summary="A rep's personal codes",
    description="Each half (oa, wecom) or null when not made yet.",
    responses=answers(CodesOut, 404),
)
def get_codes(rep_id: int):
    with services().db.sessions() as session:
        rep = _readable(session, rep_id)
        return personal_codes.describe(personal_codes.find(session, rep.id), rep.id)


def _image_args() -> tuple[str, int]:
    kind, size = request.args.get("kind", "oa"), request.args.get("size", str(qr_image.SIZE_DEFAULT))
    if kind not in personal_codes.KINDS:
        abort(400, f"kind must be one of {', '.join(personal_codes.KINDS)}")
    if not _digits(size) or not qr_image.SIZE_MIN <= int(size) <= qr_image.SIZE_MAX:
        abort(400, f"size must be an integer from {qr_image.SIZE_MIN} to {qr_image.SIZE_MAX} (pixels)")
    return kind, int(size)


@bp.get("/reps/<int:rep_id>/qrcode.png")
@allow(*READERS)
@bp.doc(
    summary="A rep's printable QR code",
    description="`kind=oa` (default) encodes the OA code's url, `kind=wecom` the contact way's qr_code; the rep's"
    " name is printed under it. `size` in pixels (200-2000, default 600). 409 when the codes are not made yet.",
    responses={200: {"description": "PNG", "content": {"image/png": {"schema": PNG}}}, **_errors(400, 404, 409)},
)
def qrcode_png(rep_id: int):
    kind, size = _image_args()
    with services().db.sessions() as session:
        rep = _readable(session, rep_id)
        content = personal_codes.content(personal_codes.find(session, rep.id), kind)
    if content is None:
        abort(409, f"rep {rep_id} has no {kind} code yet: POST /api/v1/reps/{rep_id}/codes (or `flask rep codes"
              f" {rep_id}`) makes it")  # fmt: skip
    png = qr_image.render(content, rep.name or rep.userid, size)
    headers = {"Content-Disposition": f'inline; filename="rep-{rep_id}-{kind}.png"'}
    return Response(png, mimetype="image/png", headers=headers)
