# ruff: noqa: RUF001  (page text: full-width Chinese punctuation on purpose)
"""The lead form as an H5 page (templates/forms/), for visitors who prefer tapping to chatting: linked from the booth
reply with a signed token naming the follower, the event and the booth (scrm.form_links), so nobody can submit for
someone else and an edited link is refused.

The page keeps the rep pages' session and CSRF scheme (welead.rep_pages): Flask's signed cookie (HttpOnly,
SameSite=Lax) holds a per-session `csrf` token, checked on POST with a constant-time comparison, and the same
security headers. A submission is checked field by field like a chat answer; a bad one shows the page again with
each field's error (422). A good one is recorded as an interaction (scrm.form_submit) and applied by the applier,
like a form finished in the chat: one `form_submitted`, one lead row. The same page sent twice counts once.
"""

from __future__ import annotations

import hmac
import secrets
from contextlib import suppress
from typing import Any

import redis
from apiflask import APIBlueprint
from flask import Response, abort, redirect, render_template, request, session, url_for
from werkzeug.exceptions import HTTPException

from foundation.config import ROOT
from foundation.services import services
from foundation.signing import LinkError
from scrm import conversations, event_forms, event_lookup, form_submit
from scrm.applier import wake
from scrm.form_links import FormTicket, read_form_token
from welead.rep_pages import SECURITY_HEADERS

bp = APIBlueprint(
    "form_pages", __name__, url_prefix="/forms", template_folder=str(ROOT / "templates"), enable_openapi=False
)
TITLES = {400: "页面已过期", 403: "链接无效", 404: "活动不存在", 405: "不支持的操作", 413: "内容太长"}


def _ticket(token: str) -> FormTicket:
    try:
        return read_form_token(services().signer, token)
    except LinkError as exc:
        if exc.expired:
            abort(403, "这个链接已过期。请重新扫描展位二维码获取新的链接。")
        abort(403, "这个链接无效。请从公众号消息里的链接打开。")


def _event(ticket: FormTicket) -> tuple[event_lookup.EventInfo, event_forms.Form]:
    with services().db.reader.connect() as conn:
        info = event_lookup.event_info(conn, ticket.event)  # type: ignore[arg-type]
    if info is None or (ticket.booth is not None and ticket.booth not in info.booths):
        abort(404, "这个活动或展位已不存在。")
    return info, event_forms.form_or_default(info.form)


def _csrf_token() -> str:
    """This session's token (kept when the rep pages already made one)."""
    token = session.get("csrf")
    if not isinstance(token, str) or not token:
        token = session["csrf"] = secrets.token_urlsafe(32)
    return token


def _check_csrf() -> None:
    sent, kept = request.form.get("csrf", ""), session.get("csrf", "")
    if not kept or not hmac.compare_digest(sent.encode(), str(kept).encode()):
        abort(400, "这个页面已过期（安全校验失败）。请从公众号消息里的链接重新打开后再提交。")


@bp.get("/lead")
def show() -> str:
    token = request.args.get("t", "")
    ticket = _ticket(token)
    info, form = _event(ticket)
    return _page(token, ticket, info, form, {}, {})


@bp.post("/lead")
def submit() -> Any:
    _check_csrf()
    token = request.form.get("t", "")
    ticket = _ticket(token)
    info, form = _event(ticket)
    answers, errors = form_submit.check(form, request.form.to_dict())
    if errors:
        values = {f.name: request.form.get(f.name, "")[: event_forms.MAX_LEN[f.kind] * 3] for f in form.fields}
        return _page(token, ticket, info, form, values, errors), 422
    nonce = request.form.get("n", "") or secrets.token_hex(8)
    svc = services()
    if form_submit.record(svc.db, ticket, form, answers, nonce) is not None:
        with suppress(redis.RedisError, OSError):  # the applier polls the database anyway
            wake(svc.redis)
        _close_chat_form(svc.redis, ticket.openid)
    return redirect(url_for(".done", t=token), 303)


def _close_chat_form(fast: redis.Redis, openid: str) -> None:
    """The form sent from the page ends the same form offered or running in the chat (no second lead from it)."""
    state = conversations.load(fast, openid)
    if state is not None and state.flow in (event_forms.FORM, event_forms.OFFER):
        with suppress(redis.RedisError, OSError):
            conversations.end(fast, openid)


@bp.get("/lead/done")
def done() -> str:
    ticket = _ticket(request.args.get("t", ""))
    info, form = _event(ticket)
    return render_template("forms/done.html", event_name=info.name, message=form.line("done"))


def _page(token: str, ticket: FormTicket, info: event_lookup.EventInfo, form: event_forms.Form,
          values: dict[str, str], errors: dict[str, str]) -> str:  # fmt: skip
    booth = info.booths.get(ticket.booth or "")
    return render_template("forms/lead.html", token=token, csrf_token=_csrf_token(), nonce=secrets.token_hex(12),
                           fields=form_submit.shown(form), values=values, errors=errors, event_name=info.name,
                           booth_name=booth[1] if booth else None)  # fmt: skip


@bp.errorhandler(HTTPException)
def _error(exc: HTTPException) -> tuple[str, int]:
    code = exc.code or 500
    title = TITLES.get(code, exc.name)
    return render_template("forms/error.html", code=code, title=title, message=exc.description, event_name=None), code


@bp.after_request
def _headers(response: Response) -> Response:
    response.headers.update(SECURITY_HEADERS)
    return response
