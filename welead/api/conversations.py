"""A follower's conversation with the bot (scrm.conversations): read it, or end it (a rep finished the handoff).

Reps see and end only their own leads' conversations (another's is 404). The state lives in Redis: 503 when Redis
cannot be reached.
"""

from __future__ import annotations

import time

import redis
from apiflask import abort
from apiflask.fields import Boolean, Float, Integer, String

from foundation.services import services
from scrm import conversations, handoff_kf
from welead.api import bp
from welead.api.access import allow, answers, get_follower
from welead.api.schemas import Out, opt, req

UNAVAILABLE = {
    503: {
        "description": "Redis, which holds conversation state, is unavailable",
        "content": {"application/json": {"schema": {"$ref": "#/components/schemas/HTTPError"}}},
    }
}


class ConversationOut(Out):
    openid = req(String())
    flow = opt(String, metadata={"description": "the flow running (handoff), or null"})
    until = opt(Float, metadata={"description": "epoch seconds the flow ends by itself"})
    misses = req(Integer(metadata={"description": "questions in a row the bot could not answer"}))
    ended = req(Boolean(metadata={"description": "DELETE: whether a flow was running and is now ended"}))


def _redis() -> redis.Redis:
    try:
        return services().redis_slow
    except (redis.RedisError, OSError):
        abort(503, "Redis is unavailable")


def _visible(openid: str) -> None:
    with services().db.sessions() as session:
        get_follower(session, openid)


def _out(openid: str, state: conversations.State | None, ended: bool = False) -> dict:
    now = time.time()
    flow = state.active(now) if state else None
    return {"openid": openid, "flow": flow, "until": state.until if flow and state else None,
            "misses": state.misses if state else 0, "ended": ended}  # fmt: skip


@bp.get("/conversations/<openid>")
@allow("marketer", "rep")
@bp.doc(summary="A follower's conversation", description="The flow running and the streak of misses.",
        responses={**answers(ConversationOut, 404), **UNAVAILABLE})  # fmt: skip
def get_conversation(openid: str):
    _visible(openid)
    try:
        state = conversations.load(_redis(), openid)
    except (redis.RedisError, OSError):
        abort(503, "Redis is unavailable")
    if state is None:
        abort(503, "Redis is unavailable")
    return _out(openid, state)


@bp.delete("/conversations/<openid>")
@allow("marketer", "rep")
@bp.doc(summary="End a follower's conversation",
        description="Ends a handoff (the bot answers again) or any other flow, and the streak of misses.",
        responses={**answers(ConversationOut, 404), **UNAVAILABLE})  # fmt: skip
def end_conversation(openid: str):
    _visible(openid)
    try:
        state = conversations.end(_redis(), openid)
    except (redis.RedisError, OSError):
        abort(503, "Redis is unavailable")
    ended = bool(state and state.active(time.time()))
    if ended and state and state.flow == conversations.HANDOFF:
        with services().db.transaction() as session:
            handoff_kf.record_end(session, openid, "api")
    return _out(openid, None, ended=ended)
