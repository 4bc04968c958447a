"""The callback endpoints: open the envelope, run the handler in one transaction, answer within the deadline.

No outbound HTTP here: follow-up work is in the outbox, announced to the dispatchers after commit (best effort,
swept later).
"""

from __future__ import annotations

import logging
import secrets
from contextlib import suppress

import redis
from flask import Blueprint, Response, request
from sqlalchemy.exc import DBAPIError
from werkzeug.exceptions import RequestEntityTooLarge

from foundation.services import services
from handlers.dispatch import handler_for, has_follower, to_event
from scrm.ingest import process
from scrm.outbox import announce
from wechat.envelope import Endpoint, Rejected, open_callback, seal_reply, verify_echo
from wechat.inbound import Inbound
from wechat.replies import Article, Reply, render

log = logging.getLogger("welead.callback")
REPLY_KEY = "welead:reply:"
REPLY_TTL = 60  # WeChat's three tries span about 15 s
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
    return _callback(_endpoints()["oa"])


@bp.route("/wecom/callback", methods=["GET", "POST"])
def wecom_callback() -> Response:
    return _callback(_endpoints()["wecom"])


def _text(body: str, status: int = 200) -> Response:
    return Response(body, status=status, mimetype="text/plain")


def _callback(ep: Endpoint) -> Response:
    args = request.args.to_dict()
    try:
        if request.method == "GET":
            return _text(verify_echo(ep, args))
        msg, encrypted = open_callback(ep, args, request.get_data(cache=False))
    except Rejected as exc:
        log.warning("%s callback rejected (%d): %s", ep.channel, exc.status, exc.reason)
        return _text(exc.reason if exc.status != 403 else "forbidden", exc.status)
    except RequestEntityTooLarge:
        log.warning("%s callback rejected (413): body over %d bytes", ep.channel, request.max_content_length)
        return _text("body too large", 413)
    svc = services()
    try:
        visit = process(svc.db, to_event(msg), _effect(msg), with_follower=has_follower(msg))
    except DBAPIError as exc:
        log.error("%s callback: database unavailable, WeChat will retry: %s", ep.channel, exc.__class__.__name__)
        return _text("database unavailable", 503)
    announce(svc.redis, visit.outbox_ids)
    if ep.channel != "oa":
        return _text("success")
    xml = _remembered(svc.redis, msg) if visit.duplicate else _reply(svc.redis, visit.answers, msg)
    if xml is None:
        return _text("success")
    if encrypted:
        xml = seal_reply(ep, xml, args.get("nonce") or secrets.token_hex(8))
    return Response(xml, mimetype="application/xml")


def _reply(conn: redis.Redis, answers: list[dict], msg: Inbound) -> str | None:
    """The passive reply XML, remembered briefly: WeChat retries when our answer came too late, and the retry
    must get the same answer (the rules that chose it do not run again for a duplicate)."""
    if not answers:
        return None
    answer = answers[0]  # {"text": ...} or news {"articles": [{title, description, url, image}]}
    articles = tuple(Article(**a) for a in answer.get("articles", ()))
    xml = render(Reply(text=answer.get("text", ""), articles=articles), msg.openid, msg.account)
    with suppress(redis.RedisError, OSError):  # a lost entry only costs a retried callback its answer
        conn.set(REPLY_KEY + msg.dedup_key, xml, ex=REPLY_TTL)
    return xml


def _remembered(conn: redis.Redis, msg: Inbound) -> str | None:
    try:
        cached = conn.get(REPLY_KEY + msg.dedup_key)
    except (redis.RedisError, OSError):
        return None
    return cached.decode() if cached else None


def _effect(msg: Inbound):
    handler = handler_for(msg)
    if handler is None:
        return None
    return lambda visit: handler(visit, msg)
