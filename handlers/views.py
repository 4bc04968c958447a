"""The callback endpoints: open the envelope, decide the passive reply, record the interaction, answer.

The request does one insert and no effects (the applier applies them), so it answers within WeChat's deadline
whatever the playbook does. No outbound HTTP here.
"""

from __future__ import annotations

import logging
import secrets
import time
from contextlib import suppress
from typing import Any

import redis
from flask import Blueprint, Response, request
from sqlalchemy.exc import DBAPIError
from werkzeug.exceptions import RequestEntityTooLarge

from foundation.services import services
from foundation.telemetry import CALLBACK_SECONDS, CALLBACKS
from handlers.dispatch import to_event
from scrm import link_stamp
from scrm.accept import Accepted, accept
from scrm.applier import wake
from scrm.chatbot_llm import Policy
from wechat.envelope import Endpoint, Rejected, open_callback, seal_reply, verify_echo
from wechat.inbound import Inbound
from wechat.replies import Article, Reply, render

log = logging.getLogger("welead.callback")
bp = Blueprint("callbacks", __name__)


def _endpoints() -> dict[str, Endpoint]:
    """The two callback endpoints' secrets, rebuilt only when the process's settings object changes."""
    svc = services()
    cached = svc.__dict__.get("callback_endpoints")
    if cached is None or cached[0] is not svc.settings:
        s = svc.settings
        endpoints = {
            "oa": Endpoint("oa", s.wechat_token, s.wechat_app_id, s.wechat_aes_key, s.wechat_aes_key_previous,
                           s.replay_window),
            "wecom": Endpoint("wecom", s.wecom_token, s.wecom_corp_id, s.wecom_aes_key, "", s.replay_window),
        }  # fmt: skip
        cached = svc.__dict__["callback_endpoints"] = (s, endpoints)
    return cached[1]


@bp.route("/wechat/callback", methods=["GET", "POST"])
def oa_callback() -> Response:
    return _measured(_endpoints()["oa"])


@bp.route("/wecom/callback", methods=["GET", "POST"])
def wecom_callback() -> Response:
    return _measured(_endpoints()["wecom"])


def _measured(ep: Endpoint) -> Response:
    start = time.perf_counter()
    response, kind = _callback(ep)
    CALLBACK_SECONDS.observe(time.perf_counter() - start)
    CALLBACKS.labels(ep.channel, kind, str(response.status_code)).inc()
    return response


def _text(body: str, status: int = 200) -> Response:
    return Response(body, status=status, mimetype="text/plain")


def _callback(ep: Endpoint) -> tuple[Response, str]:
    """The answer, and the kind to count it under (`verify` for GET, `rejected` before a kind is known)."""
    args = request.args.to_dict()
    try:
        if request.method == "GET":
            return _text(verify_echo(ep, args)), "verify"
        msg, encrypted = open_callback(ep, args, request.get_data(cache=False))
    except Rejected as exc:
        log.warning("%s callback rejected (%d): %s", ep.channel, exc.status, exc.reason)
        return _text(exc.reason if exc.status != 403 else "forbidden", exc.status), "rejected"
    except RequestEntityTooLarge:
        log.warning("%s callback rejected (413): body over %d bytes", ep.channel, request.max_content_length)
        return _text("body too large", 413), "rejected"
    return _answer(ep, msg, encrypted, args), msg.kind


def _answer(ep: Endpoint, msg: Inbound, encrypted: bool, args: dict[str, str]) -> Response:
    svc = services()
    try:
        accepted = accept(svc.db, to_event(msg), _conversations(svc), Policy.of(svc.settings))
    except DBAPIError as exc:
        log.error("%s callback: database unavailable, WeChat will retry: %s", ep.channel, exc.__class__.__name__)
        return _text("database unavailable", 503)
    if accepted.id is not None:
        with suppress(redis.RedisError, OSError):  # the applier polls the database anyway
            wake(svc.redis)
    xml = _reply(accepted, msg) if ep.channel == "oa" else None
    if xml is None:
        return _text("success")
    if encrypted:
        xml = seal_reply(ep, xml, args.get("nonce") or secrets.token_hex(8))
    return Response(xml, mimetype="application/xml")


def _conversations(svc: Any) -> redis.Redis | None:
    """The Redis holding conversation state; None when none is configured (the chatbot then answers statelessly)."""
    try:
        return svc.redis
    except (redis.RedisError, OSError):
        return None


def _reply(accepted: Accepted, msg: Inbound) -> str | None:
    """The passive reply XML: {"text": ...} or news {"articles": [{title, description, url, image}]}."""
    answer = accepted.reply
    if not answer:
        return None
    answer = _attributed(answer, msg.openid, (accepted.decision or {}).get("rules") or [None])
    articles = tuple(Article(**a) for a in answer.get("articles", ()))
    reply = Reply(text=answer.get("text", ""), articles=articles, transfer=bool(answer.get("transfer")))
    return render(reply, msg.openid, msg.account)


def _attributed(answer: dict[str, Any], openid: str, rules: list[str | None]) -> dict[str, Any]:
    """The reply's URLs with the follower's signed attribution (scrm.link_stamp): a news article's url, WeLead's
    links in a text. Deterministic, so a retried callback gets the same XML."""
    if not answer.get("articles") and "/l/" not in answer.get("text", "") and "/p/" not in answer.get("text", ""):
        return answer
    svc = services()
    stamp = link_stamp.stamper(svc.settings.secret_key, svc.settings.public_url)
    token = stamp.token(openid, r=rules[0])
    out = dict(answer)
    if out.get("text"):
        out["text"] = stamp.text(out["text"], token)
    if out.get("articles"):
        with svc.db.lazy_reader() as conn:  # the registered targets: read at most every 30 s per process
            codes = stamp.codes(conn)  # type: ignore[arg-type]
        out["articles"] = [{**a, "url": stamp.url(a["url"], token, codes)} if a.get("url") else a
                           for a in out["articles"]]  # fmt: skip
    return out
