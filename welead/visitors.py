"""Who opened a link or a page: the signed `wl` parameter of a URL WeLead sent, else the signed cookie OA web
authorization left, else (inside WeChat only) a silent authorization round trip, else nobody.

Cookies (all HttpOnly, SameSite=Lax): `wl_id` the openid WeChat named (signed, a year); `wl_anon` an authorization
that failed (a day: the visitor is not bounced through WeChat again); `wl_ret` where to come back after
authorizing (signed, with the `state` nonce, five minutes).
"""

from __future__ import annotations

import logging
import secrets
from collections import OrderedDict
from dataclasses import dataclass
from typing import Any

from flask import Request, Response, redirect, request

from foundation.services import services
from scrm.link_sign import LinkSigner
from scrm.link_stamp import PARAM, Stamper, stamper
from wechat.oauth import authorize_url

log = logging.getLogger("welead.links")

ID_COOKIE, ANON_COOKIE, RETURN_COOKIE = "wl_id", "wl_anon", "wl_ret"
YEAR, DAY, RETURN_TTL = 365 * 86400, 86400, 300
OAUTH_PATH = "/oauth/wechat"


@dataclass(frozen=True, slots=True)
class Visitor:
    openid: str | None
    carrier: dict[str, Any]  # what carried the URL (delivery, broadcast, rule) or how they were named (via)
    forged: bool = False


class _Once:
    """Tokens already logged as forged (bounded): a client replaying one is logged once, not once per request."""

    def __init__(self, size: int = 1024) -> None:
        self.size, self.seen = size, OrderedDict[str, None]()

    def first(self, token: str) -> bool:
        if token in self.seen:
            return False
        self.seen[token] = None
        while len(self.seen) > self.size:
            self.seen.popitem(last=False)
        return True


_forged = _Once()


def current_stamper() -> Stamper:
    s = services().settings
    return stamper(s.secret_key, s.public_url)


def identify(req: Request) -> Visitor:
    """The visitor as far as the request says, without calling anyone."""
    stamp = current_stamper()
    token = req.args.get(PARAM)
    if token:
        data = stamp.read(token)
        if data is None:
            if _forged.first(token):
                log.warning("forged or tampered %s parameter on %s: click not attributed", PARAM, req.path)
            return Visitor(None, {}, forged=True)
        return Visitor(data["o"], {k: v for k, v in data.items() if k != "o"})
    named = stamp.signer.load("id", req.cookies.get(ID_COOKIE))
    if named and isinstance(named.get("o"), str):
        return Visitor(named["o"], {"via": "oauth"})
    return Visitor(None, {})


def wants_oauth(req: Request, visitor: Visitor) -> bool:
    """Only inside WeChat (its in-app browser says MicroMessenger), only for someone not named yet, once a day."""
    if visitor.openid or visitor.forged or req.method != "GET" or req.cookies.get(ANON_COOKIE):
        return False
    return "micromessenger" in (req.headers.get("User-Agent") or "").lower()


def start_oauth(back: str) -> Response:
    """Send the browser to WeChat's silent authorization; `back` (a path of ours) is where it returns."""
    settings, signer = services().settings, current_stamper().signer
    state = secrets.token_urlsafe(9)
    url = authorize_url(settings, f"{settings.public_url.rstrip('/')}{OAUTH_PATH}", state)
    response = redirect(url, 302)
    _cookie(response, RETURN_COOKIE, signer.sign("ret", {"n": state, "p": back}), RETURN_TTL)
    return response


def return_path(signer: LinkSigner, req: Request) -> str | None:
    """Where an authorization round trip started, if the cookie is ours and matches WeChat's `state`."""
    data = signer.load("ret", req.cookies.get(RETURN_COOKIE))
    if not data or data.get("n") != req.args.get("state") or not isinstance(data.get("p"), str):
        return None
    path = data["p"]
    return path if path.startswith(("/l/", "/p/")) else None  # our own pages only


def remember(response: Response, openid: str | None) -> Response:
    """After the round trip: the openid WeChat named (or, when it failed, a day without trying again)."""
    if openid:
        _cookie(response, ID_COOKIE, current_stamper().signer.sign("id", {"o": openid}), YEAR)
    else:
        _cookie(response, ANON_COOKIE, "1", DAY)
    response.delete_cookie(RETURN_COOKIE)
    return response


def _cookie(response: Response, name: str, value: str, max_age: int) -> None:
    secure = services().settings.public_url.startswith("https://")
    response.set_cookie(name, value, max_age=max_age, httponly=True, samesite="Lax", secure=secure)


def here() -> str:
    """This request's path and query, to come back to."""
    query = request.query_string.decode("latin-1")
    return f"{request.path}?{query}" if query else request.path
