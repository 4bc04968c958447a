"""A rep's personal codes: one ContactCode (kind "rep") holding the permanent OA QR code and the WeCom contact way.

Both carry the scene/state `rep:<rep id>`. The two halves are stored as each is made, so a failure of the second
call (WeCom refusing the userid) keeps the first: asking again makes only what is missing, and never spends a second
permanent OA code (WeChat allows 100,000 per account) on the same rep. Making the codes (the WeChat calls) is the app
layer's job (welead.rep_codes); what may be made, and what was, is here.
"""

from __future__ import annotations

from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from foundation.clock import iso, utcnow
from scrm.code_models import ContactCode
from scrm.code_rules import check_code
from scrm.models import Rep
from scrm.reps import RepError

KIND = "rep"
KINDS = ("oa", "wecom")


def scene(rep_id: int) -> str:
    """The OA scene and WeCom state of a rep's personal code, checked against WeChat's limits."""
    return check_code(f"{KIND}:{rep_id}")


def find(session: Session, rep_id: int) -> ContactCode | None:
    return session.scalar(select(ContactCode).where(ContactCode.kind == KIND, ContactCode.rep_id == rep_id))


def check_can_have_codes(rep: Rep) -> None:
    """RepError 409 unless the rep is active and confirmed: a code for a rep who takes no leads would hand scanners
    to nobody."""
    if not rep.active:
        raise RepError(f"rep {rep.id} is inactive: activate it before creating its codes", 409)
    if not rep.confirmed:
        raise RepError(f"rep {rep.id} is unconfirmed: confirm it (PATCH confirmed=true) before creating its codes", 409)


def complete(code: ContactCode | None) -> bool:
    return code is not None and bool(code.oa_ticket) and bool(code.wecom_config_id)


def _row(session: Session, rep: Rep) -> ContactCode:
    code = find(session, rep.id)
    if code is None:
        code = ContactCode(kind=KIND, rep_id=rep.id, name=rep.name, members=[], tags=[], wecom_users=[])
        code.created_at = utcnow()
        session.add(code)
    return code


def save_oa(session: Session, rep: Rep, ticket: str, url: str) -> ContactCode:
    """Keep the permanent QR code WeChat made: its ticket, and the url the printed code encodes."""
    code = _row(session, rep)
    code.oa_ticket, code.oa_url = ticket, url
    session.flush()
    return code


def save_wecom(session: Session, rep: Rep, config_id: str, qr_code: str) -> ContactCode:
    """Keep the contact way WeCom made: config_id (to edit or delete it later) and its QR code URL."""
    code = _row(session, rep)
    code.wecom_config_id, code.wecom_qr_code = config_id, qr_code
    code.wecom_users, code.wecom_synced_at = [rep.userid], utcnow()
    session.flush()
    return code


def content(code: ContactCode | None, kind: str) -> str | None:
    """What a printed code of `kind` encodes: the OA `url` WeChat returned, or the WeCom contact way's qr_code."""
    if kind not in KINDS:
        raise RepError(f"kind must be one of {', '.join(KINDS)}")
    if code is None:
        return None
    return (code.oa_url if kind == "oa" else code.wecom_qr_code) or None


def describe(code: ContactCode | None, rep_id: int) -> dict[str, Any]:
    """Codes JSON: each half present or null, and whether both are there."""
    oa = wecom = None
    if code is not None and code.oa_ticket:
        oa = {"scene": code.scene, "ticket": code.oa_ticket, "url": code.oa_url}
    if code is not None and code.wecom_config_id:
        wecom = {"state": code.scene, "config_id": code.wecom_config_id, "qr_code": code.wecom_qr_code,
                 "users": code.wecom_users}  # fmt: skip
    return {
        "rep_id": rep_id,
        "code_id": code.id if code is not None else None,
        "complete": complete(code),
        "oa": oa,
        "wecom": wecom,
        "created_at": iso(code.created_at) if code is not None else None,
    }
