"""Making a team code's two halves, synchronously, when an admin asks (`POST/PATCH /api/v1/codes`, `flask code`).

The row is committed first (its id is the scene, `team:<id>`), then each missing half is made and committed as soon
as WeChat answers: the permanent OA QR code (QR_LIMIT_STR_SCENE) and the WeCom contact way (type 2, listing the
members eligible now). A failure keeps what was made; asking again (PATCH, `flask code make`) makes only what is
missing, so no second permanent OA code is spent. A Redis lock per code keeps two requests from making one half
twice. Refusals are rep_codes.CodeFailure: 422 for a member WeCom does not accept (60111...), 502 otherwise.
"""

from __future__ import annotations

import logging
from typing import Any

from foundation.clock import iso, utcnow
from foundation.services import services
from scrm import outbox, team_codes
from wechat.api import OAClient, WeComClient
from welead.rep_codes import CodeFailure, CodeLock, call

LOCK = "welead:team-codes:"  # + code id
BUSY = "this team code is being made by another request: ask again in a moment"
SYNCED_BY_EDIT = ("members", "backup_rep_id", "active")
log = logging.getLogger(__name__)


def create(body: Any) -> dict[str, Any]:
    """A new team code with both halves; CodeFailure (naming the code, kept incomplete) when WeChat refuses."""
    with services().db.transaction() as session:
        code_id = team_codes.create(session, body).id
    try:
        make(code_id)
    except CodeFailure as exc:
        exc.detail["code_id"] = code_id
        exc.message += f" (team code {code_id} was saved: PATCH /api/v1/codes/{code_id} makes what is missing)"
        raise
    return read(code_id)


def update(code_id: int, body: Any) -> dict[str, Any]:
    """Change the code; a complete code whose members, backup or state changed re-lists its contact way (a
    "codes.sync" job); an incomplete one gets its missing halves made."""
    queued = None
    with services().db.transaction() as session:
        code = team_codes.update(session, team_codes.get(session, code_id), body)
        if team_codes.complete(code) and any(k in body for k in SYNCED_BY_EDIT):
            queued = team_codes.resync(session, code_id, f"edit:{utcnow().isoformat()}")
        done = team_codes.complete(code)
    if queued is not None:
        outbox.announce(services().redis_slow, [queued])
    if not done:
        make(code_id)
    return read(code_id)


def read(code_id: int) -> dict[str, Any]:
    with services().db.sessions() as session:
        return team_codes.describe(team_codes.get(session, code_id))


def make(code_id: int) -> bool:
    """Make what is missing under the code's lock; whether anything was made."""
    with CodeLock(f"{LOCK}{code_id}", BUSY):
        return _make_oa(code_id) | _make_wecom(code_id)


def _make_oa(code_id: int) -> bool:
    db = services().db
    with db.sessions() as session:
        code = team_codes.get(session, code_id)
        if code.oa_ticket:
            return False
    scene = team_codes.scene(code_id)
    qr = call("qrcode/create", OAClient, lambda c: c.create_qrcode(scene, permanent=True), f" for team code {code_id}")
    with db.transaction() as session:
        code = team_codes.get(session, code_id)
        code.oa_ticket, code.oa_url = qr["ticket"], qr["url"]
    return True


def _make_wecom(code_id: int) -> bool:
    db, now = services().db, utcnow()
    with db.sessions() as session:
        code = team_codes.get(session, code_id)
        if code.wecom_config_id:
            return False
        plan = team_codes.plan(session, code, now)
    if not plan.users:
        raise CodeFailure(409, f"team code {code_id}: no member is active and confirmed, and no usable backup rep:"
                               " WeCom needs at least one user to list")  # fmt: skip
    scene = team_codes.scene(code_id)
    way = call("externalcontact/add_contact_way", WeComClient,
               lambda c: c.add_contact_way(scene, plan.users, multi=True), f" for team code {code_id}")  # fmt: skip
    with db.transaction() as session:
        code = team_codes.get(session, code_id)
        code.wecom_config_id, code.wecom_qr_code = way["config_id"], way["qr_code"]
        team_codes.synced(code, plan.users, now)
        team_codes.schedule(session, code_id, plan.next_sync)
    log.info("team code %s lists %s (%s) until %s", code_id, plan.users, plan.reason, iso(plan.next_sync))
    return True
