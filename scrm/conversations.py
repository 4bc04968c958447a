"""One conversation state per follower, in Redis, shared by every web process: the flow the follower is in (a
human handoff today; lead-capture forms later), its step, the fields collected so far, when it expires, and the
streak of questions the bot could not answer.

The request reads the state before deciding (one GET) and writes the new state only after its interaction row was
inserted: a retry of the same WeChat message (same MsgId) hits the dedup key, gets the stored reply and never
writes, so a flow cannot advance twice for one message. Redis down: `load` gives a blank state (the bot answers
statelessly) and `save` is skipped.

A flow is a name in `FLOWS` with a function `(state, text, now) -> Step`; a form is one more entry there (its step
index in `step`, its answers in `fields`, `form_submitted` in the decision when it ends).
"""

from __future__ import annotations

import json
import logging
from collections.abc import Callable
from dataclasses import asdict, dataclass, field, replace
from typing import Any

import redis

log = logging.getLogger(__name__)
PREFIX = "welead:conv:"
IDLE_TTL = 3600  # seconds a state without a flow (a miss streak) is kept
HANDOFF = "handoff"


@dataclass(frozen=True)
class State:
    flow: str | None = None
    step: int = 0
    fields: dict[str, Any] = field(default_factory=dict)
    until: float = 0.0  # epoch seconds the flow ends by itself (0: no flow)
    misses: int = 0  # questions in a row the bot could not answer

    def active(self, now: float) -> str | None:
        """The flow still running at `now`, or None."""
        return self.flow if self.flow and now < self.until else None

    def as_json(self) -> dict[str, Any]:
        return asdict(self)


BLANK = State()


@dataclass(frozen=True)
class Step:
    """What a flow does with one message: the reply (None: say nothing), its new state, and a note for the decision."""

    reply: dict[str, Any] | None
    state: State
    note: dict[str, Any] = field(default_factory=dict)


def key(openid: str) -> str:
    return PREFIX + openid


def load(conn: redis.Redis | None, openid: str) -> State | None:
    """The follower's state; BLANK when there is none, None when Redis cannot say (stateless answering)."""
    if conn is None:
        return None
    try:
        raw = conn.get(key(openid))
    except (redis.RedisError, OSError):
        return None
    return parse(raw)


def parse(raw: bytes | str | None) -> State:
    if not raw:
        return BLANK
    try:
        doc = json.loads(raw)
        return State(flow=doc.get("flow"), step=int(doc.get("step", 0)), fields=dict(doc.get("fields") or {}),
                     until=float(doc.get("until", 0)), misses=int(doc.get("misses", 0)))  # fmt: skip
    except (ValueError, TypeError, AttributeError):
        log.warning("unreadable conversation state dropped: %r", raw[:80])
        return BLANK


def save(conn: redis.Redis | None, openid: str, state: State, now: float) -> bool:
    """Write (or clear) the state; False when Redis could not take it (the next message answers statelessly)."""
    if conn is None:
        return False
    try:
        if state == BLANK or (state.active(now) is None and state.misses == 0):
            conn.delete(key(openid))
        else:
            ttl = int(state.until - now) + 1 if state.active(now) else IDLE_TTL
            conn.set(key(openid), json.dumps(state.as_json(), ensure_ascii=False), ex=max(ttl, 1))
    except (redis.RedisError, OSError):
        return False
    return True


def end(conn: redis.Redis, openid: str) -> State | None:
    """End any flow now (a rep took over and finished, or an admin reset it); the state that was running."""
    pipe = conn.pipeline()
    pipe.get(key(openid))
    pipe.delete(key(openid))
    raw, _ = pipe.execute()
    return parse(raw) if raw else None


def start(state: State, flow: str, now: float, seconds: float) -> State:
    return replace(state, flow=flow, step=0, fields={}, until=now + seconds, misses=0)


def stop(state: State) -> State:
    return replace(state, flow=None, step=0, fields={}, until=0.0)


# --- flows ------------------------------------------------------------------------------------------------------

Flow = Callable[[State, str, float], Step | None]  # None: the flow steps aside, the message is answered as usual


def _handoff(state: State, text: str, now: float) -> Step:
    """A human has the conversation: the bot says nothing itself and passes every message to customer service."""
    return Step({"transfer": True}, state, {"flow": HANDOFF})


FLOWS: dict[str, Flow] = {HANDOFF: _handoff}


def advance(state: State, text: str, now: float) -> Step | None:
    """The running flow's step for `text`, or None when no flow is running."""
    flow = state.active(now)
    if flow is None:
        return None
    run = FLOWS.get(flow)
    if run is None:  # a flow this release does not know (written by a newer one): end it
        return None
    return run(state, text, now)
