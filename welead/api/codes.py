"""Team live codes (渠道活码): create, list, read, change, and print them.

Admins and marketers manage codes. The rules are scrm.team_codes'; making the WeChat halves is welead.code_making;
this module maps their refusals to HTTP.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

from apiflask import Schema, abort
from apiflask.fields import Boolean, DateTime, Dict, Integer, List, Nested, String
from apiflask.validators import Length, Range
from flask import Response, request

from foundation.services import services
from scrm import qr_image, team_codes
from scrm.code_rules import CodeRuleError
from welead import code_making
from welead.api import bp
from welead.api.access import STATUS, allow, answers
from welead.api.schemas import StrictBoolean, opt, req
from welead.rep_codes import CodeFailure

MANAGERS = ("marketer",)
PNG = {"type": "string", "format": "binary"}
UPSTREAM = {
    502: "WeChat or WeCom refused or did not answer (detail: api, errcode, errmsg, retryable, code_id)",
    503: "Redis, which holds the WeChat tokens, is unavailable",
}


class MemberIn(Schema):
    rep_id = Integer(required=True, validate=Range(min=1), metadata={"description": "an existing rep"})
    weight = Integer(validate=Range(min=1, max=100), metadata={"description": "default: the rep's own weight"})


class TeamCodeIn(Schema):
    """Documented here, checked by scrm.team_codes (the API and `flask code` refuse the same things)."""

    name = String(validate=Length(1, 128), metadata={"description": "shown under the printed code"})
    members = List(Nested(MemberIn), validate=Length(1, 100), metadata={"description": "required to create"})
    backup_rep_id = Integer(allow_none=True, validate=Range(min=1),
                            metadata={"description": "gets the lead when no member is eligible"})  # fmt: skip
    tags = List(String(validate=Length(1, 64)), validate=Length(max=20),
                metadata={"description": "tags applied to everyone who comes through the code"})  # fmt: skip
    welcome = String(allow_none=True, validate=Length(max=4000),
                     metadata={"description": "WeCom welcome text for new contacts (at most 4000 bytes)"})  # fmt: skip
    active = StrictBoolean(metadata={"description": "false: scans are recorded, nobody is assigned, no tags"})


class TeamOACode(Schema):
    scene = req(String())
    ticket = req(String())
    url = req(String(metadata={"description": "what the printed code encodes"}))


class TeamWeComWay(Schema):
    state = req(String())
    config_id = req(String())
    qr_code = opt(String)
    users = req(List(String(), metadata={"description": "the userids the contact way lists now"}))
    synced_at = opt(DateTime)


class TeamCodeOut(Schema):
    id = req(Integer())
    name = req(String())
    scene = req(String(metadata={"description": "OA scene and WeCom state: team:<id>"}))
    active = req(Boolean())
    members = req(List(Dict(), metadata={"description": "[{rep_id, weight?}]"}))
    backup_rep_id = opt(Integer)
    tags = req(List(String()))
    welcome = opt(String)
    complete = req(Boolean(metadata={"description": "both halves exist"}))
    oa = opt(Nested, TeamOACode)
    wecom = opt(Nested, TeamWeComWay)
    created_at = opt(DateTime)


class TeamCodePage(Schema):
    items = req(List(Nested(TeamCodeOut)))
    next = opt(Integer, metadata={"description": "pass as `after` for the next page; null on the last"})


def _answers(ok: Any, *codes: int, status: int = 200) -> dict[Any, Any]:
    """`answers` plus the upstream statuses (502/503) access.STATUS does not describe."""
    out = answers(ok, *(c for c in codes if c in STATUS), status=status)
    for code in (c for c in codes if c in UPSTREAM):
        out[code] = {
            "description": UPSTREAM[code],
            "content": {"application/json": {"schema": {"$ref": "#/components/schemas/HTTPError"}}},
        }
    return out


@contextmanager
def _rules() -> Iterator[None]:
    try:
        yield
    except team_codes.TeamCodeError as exc:
        abort(exc.status, str(exc))
    except CodeRuleError as exc:
        abort(400, str(exc))
    except CodeFailure as exc:
        abort(exc.status, exc.message, detail=exc.detail)


def _paging() -> tuple[int, int]:
    after, limit = request.args.get("after", "0"), request.args.get("limit", "100")
    if not after.isdigit() or not limit.isdigit() or not 1 <= int(limit) <= 500:
        abort(400, "after is a code id cursor; limit is between 1 and 500")
    return int(after), int(limit)


@bp.post("/codes")
@allow(*MANAGERS)
@bp.input(TeamCodeIn, arg_name="body", validation=False)
@bp.doc(
    summary="Create a team live code",
    description="One OA QR code (permanent, scene `team:<id>`) and one WeCom contact way (type 2, state `team:<id>`)"
    " for several reps: scans are assigned by weighted round-robin among the members eligible then (working hours,"
    " daily and open caps), the backup rep when none is. 201 with the code; 400 names the bad field; WeChat/WeCom"
    " refusals are 422/502 with `detail.errcode` and `detail.code_id` (the code is kept: PATCH completes it).",
    responses=_answers(TeamCodeOut, 409, 422, 502, 503, status=201),
)
def create_code(body: Any):
    with _rules():
        return code_making.create(body), 201


@bp.get("/codes")
@allow(*MANAGERS)
@bp.doc(summary="List team codes", description="By id; `after`/`limit` page.", responses=_answers(TeamCodePage, 400))
def list_codes():
    after, limit = _paging()
    with services().db.sessions() as session:
        rows, nxt = team_codes.page(session, after=after, limit=limit)
        return {"items": [team_codes.describe(c) for c in rows], "next": nxt}


@bp.get("/codes/<int:code_id>")
@allow(*MANAGERS)
@bp.doc(
    summary="One team code",
    description="`wecom.users`: the reps the contact way lists now.",
    responses=_answers(TeamCodeOut, 404),
)
def get_code(code_id: int):
    with _rules(), services().db.sessions() as session:
        return team_codes.describe(team_codes.get(session, code_id))


@bp.patch("/codes/<int:code_id>")
@allow(*MANAGERS)
@bp.input(TeamCodeIn, arg_name="body", validation=False)
@bp.doc(
    summary="Change a team code",
    description="Any subset of the fields. Changing members, backup or active re-lists the WeCom contact way (a"
    " codes.sync job); a code missing a half (WeChat failed at creation) gets it made, even with `{}`.",
    responses=_answers(TeamCodeOut, 404, 409, 422, 502, 503),
)
def patch_code(code_id: int, body: Any):
    with _rules():
        return code_making.update(code_id, body)


@bp.get("/codes/<int:code_id>/qrcode.png")
@allow(*MANAGERS)
@bp.doc(
    summary="A team code's printable QR code",
    description="`kind=oa` (default) or `kind=wecom`; the code's name under it; `size` 200-2000 pixels (600).",
    responses={
        200: {"description": "PNG", "content": {"image/png": {"schema": PNG}}},
        **{c: STATUS[c] for c in (400, 404, 409)},
    },
)
def code_png(code_id: int):
    kind, size = request.args.get("kind", "oa"), request.args.get("size", str(qr_image.SIZE_DEFAULT))
    if kind not in team_codes.KINDS:
        abort(400, f"kind must be one of {', '.join(team_codes.KINDS)}")
    if not size.isdigit() or not qr_image.SIZE_MIN <= int(size) <= qr_image.SIZE_MAX:
        abort(400, f"size must be an integer from {qr_image.SIZE_MIN} to {qr_image.SIZE_MAX} (pixels)")
    with _rules(), services().db.sessions() as session:
        code = team_codes.get(session, code_id)
        content, name = team_codes.content(code, kind), code.name
    if content is None:
        abort(409, f"team code {code_id} has no {kind} code yet: PATCH /api/v1/codes/{code_id} makes it")
    png = qr_image.render(content, name, int(size))
    headers = {"Content-Disposition": f'inline; filename="team-code-{code_id}-{kind}.png"'}
    return Response(png, mimetype="image/png", headers=headers)
