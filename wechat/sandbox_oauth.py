"""The sandbox's OA web authorization and JS-SDK ticket, so links, pages and sharing run offline.

- `GET /sandbox/open/connect/oauth2/authorize`: WeChat's authorize page. The visitor's openid is chosen with
  `sandbox_openid` (query) or the `sandbox_openid` cookie; without one, a small form asks for it. Redirects back to
  `redirect_uri?code=...&state=...` as WeChat does (a wrong appid or scope: WeChat's error page instead).
- `GET /sandbox/oa/sns/oauth2/access_token`: the code exchange, with WeChat's errors: 40013 invalid appid, 40125
  invalid appsecret, 40029 invalid code (unknown or expired after 5 minutes), 40163 code been used.
- `GET /sandbox/oa/cgi-bin/ticket/getticket?type=jsapi`: a jsapi_ticket valid 7200 s (the same until it expires).
Every call is recorded like the other fakes (`/sandbox/_control/sent?endpoint=oa/sns/oauth2/access_token`).
"""

from __future__ import annotations

import html
import secrets
from urllib.parse import urlencode, urlsplit, urlunsplit

from flask import Blueprint, Response, current_app, jsonify, redirect, request

from wechat.sandbox_state import PREFIX, ApiError, Call, SandboxControl

CODE_TTL = 300
TICKET_TTL = 7200
CODE = PREFIX + "oa:oauth_code:"  # + code → openid
USED = PREFIX + "oa:oauth_used:"  # + code → 1 once exchanged
TICKET = PREFIX + "oa:jsapi_ticket"
SCOPES = ("snsapi_base", "snsapi_userinfo")

bp = Blueprint("sandbox_oauth", __name__, url_prefix="/sandbox")


def _wiring():
    return current_app.extensions["wechat.sandbox"]


def _error_page(text: str) -> Response:
    return Response(f"<!doctype html><meta charset=utf-8><p>{html.escape(text)}</p>", 400, mimetype="text/html")


def _back(uri: str, code: str, state: str) -> str:
    parts = urlsplit(uri)
    query = urlencode({"code": code, "state": state})
    return urlunsplit((parts.scheme, parts.netloc, parts.path, f"{parts.query}&{query}" if parts.query else query, ""))


def _ask(args: dict[str, str]) -> Response:
    hidden = "".join(f'<input type=hidden name="{html.escape(k)}" value="{html.escape(v)}">' for k, v in args.items())
    page = (
        "<!doctype html><meta charset=utf-8><title>Sandbox authorize</title><form method=get>"
        f"{hidden}<label>openid <input name=sandbox_openid required></label><button>Authorize</button></form>"
    )
    return Response(page, mimetype="text/html")  # fmt: skip


@bp.get("/open/connect/oauth2/authorize")
def authorize() -> Response:
    args = request.args.to_dict()
    if args.get("appid") != _wiring().settings().wechat_app_id:
        return _error_page("appid 参数错误 (invalid appid)")
    if args.get("scope") not in SCOPES or args.get("response_type") != "code":
        return _error_page("scope 参数错误或没有 scope 权限 (invalid scope or response_type)")
    uri = args.get("redirect_uri", "")
    if urlsplit(uri).scheme not in ("http", "https"):
        return _error_page("redirect_uri 参数错误 (invalid redirect_uri)")
    openid = args.pop("sandbox_openid", "") or request.cookies.get("sandbox_openid", "")
    if not openid:
        return _ask(args)
    code = secrets.token_hex(16)
    _wiring().connection().set(CODE + code, openid, ex=CODE_TTL)
    return redirect(_back(uri, code, args.get("state", "")), 302)


def _exchange(ctl: SandboxControl, call: Call) -> dict:
    s = call.settings
    if call.arg("appid") != s.wechat_app_id:
        raise ApiError(40013, "invalid appid")
    if call.arg("secret") != s.wechat_app_secret:
        raise ApiError(40125, "invalid appsecret")
    if call.arg("grant_type") != "authorization_code":
        raise ApiError(40002, "invalid grant_type")
    code = call.arg("code")
    openid = ctl.redis.getdel(CODE + code) if code else None
    if openid is None:
        if code and ctl.redis.exists(USED + code):
            raise ApiError(40163, "code been used")
        raise ApiError(40029, "invalid code")
    ctl.redis.set(USED + code, 1, ex=CODE_TTL)
    return {"access_token": secrets.token_urlsafe(24), "expires_in": 7200, "refresh_token": secrets.token_urlsafe(24),
            "openid": openid.decode() if isinstance(openid, bytes) else openid, "scope": "snsapi_base"}  # fmt: skip


@bp.get("/oa/sns/oauth2/access_token")
def access_token() -> Response:
    wiring = _wiring()
    ctl = SandboxControl(wiring.connection())
    call = Call("oa/sns/oauth2/access_token", "GET", request.args.to_dict(), None, wiring.settings())
    try:
        answer = _exchange(ctl, call)
    except ApiError as exc:
        answer = exc.answer()
    ctl.record(call, answer)
    return jsonify(answer)


def oa_ticket(ctl: SandboxControl, call: Call) -> dict:
    """`ticket/getticket`: type jsapi (wx_card is not faked)."""
    if call.arg("type") != "jsapi":
        raise ApiError(40097, "invalid args")
    ticket = ctl.redis.get(TICKET)
    if ticket is None:
        ticket = secrets.token_urlsafe(64)
        ctl.redis.set(TICKET, ticket, ex=TICKET_TTL)
    ttl = max(1, int(ctl.redis.ttl(TICKET)))
    return {"errcode": 0, "errmsg": "ok", "ticket": ticket.decode() if isinstance(ticket, bytes) else ticket,
            "expires_in": ttl}  # fmt: skip


TICKET_APIS = {"ticket/getticket": ("GET", oa_ticket)}
