"""WeChat's customer-service session events and the bot's handoff. A rep taking the follower's session
(`kf_create_session`) or passing it on (`kf_switch_session`) keeps the bot quiet for another handoff period, so it
never talks over a human; closing it (`kf_close_session`) ends the handoff at once, and the bot answers again.

WeChat forwards a follower's messages to the customer-service system itself while a session is open, and sends them
to WeLead again when the rep closes it or after 30 minutes without a close: the handoff in Redis is what keeps the
bot quiet in between (the follower waiting in the queue, or a session WeChat timed out).

Decided in the request like every step of a conversation: the new state is saved only if the event's row was new
(WeChat's retries share its dedup key), so a retried close can never end a handoff that started after it. The
applier records what changed on the timeline (scrm.faq_effects).
"""

from __future__ import annotations

from dataclasses import replace
from typing import TYPE_CHECKING, Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from foundation.clock import utcnow
from scrm import conversations
from scrm.chatbot_config import BotConfig
from scrm.conversations import HANDOFF, State
from scrm.models import Activity, Follower

if TYPE_CHECKING:
    from scrm.ingest import Event

CREATE, SWITCH, CLOSE = "kf_create_session", "kf_switch_session", "kf_close_session"
KF_EVENTS = frozenset({CREATE, SWITCH, CLOSE})


def account(event: Event) -> str | None:
    """The customer-service account now holding the session (the one that closed it, for a close)."""
    value = event.payload.get("ToKfAccount" if event.kind == SWITCH else "KfAccount")
    return value[:64] if isinstance(value, str) and value else None


def step(event: Event, state: State | None, cfg: BotConfig, now: float) -> tuple[dict[str, Any], State | None]:
    """The bot's part of the decision and the state to save (None: leave it as it is)."""
    bot: dict[str, Any] = {"kind": event.kind, "kf_account": account(event)}
    if state is None:  # Redis down: nothing to end or extend; a handoff ends by its own timeout
        return {**bot, "stateless": True}, None
    running = state.active(now) == HANDOFF
    if event.kind == CLOSE:
        return {**bot, "ended": HANDOFF if running else None}, State() if running else None
    started = conversations.start(state, HANDOFF, now, cfg.handoff_seconds)
    if bot["kf_account"]:
        started = replace(started, fields={"kf_account": bot["kf_account"]})
    return {**bot, "started": not running, "until": int(started.until)}, started


def record_end(session: Session, openid: str, by: str) -> None:
    """A handoff a rep ended outside a callback (`DELETE /api/v1/conversations/<openid>`, `flask faq end`): the
    same `handoff_ended` timeline entry a closed session gets."""
    follower_id = session.scalar(select(Follower.id).where(Follower.openid == openid))
    if follower_id is not None:
        session.add(Activity(follower_id=follower_id, kind="handoff_ended", at=utcnow(), data={"by": by}))
