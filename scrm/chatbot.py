"""The chatbot's half of the passive reply, decided in the request after the playbook's reply rules were found.

Order for a text message (or a voice message WeChat recognised):
1. a running flow: a human has the conversation (handoff) → the message goes to customer service, the bot is quiet;
   a cancel word ends the flow instead;
2. cancel words ("退出", "取消", "cancel") → end whatever was running;
3. handoff words ("人工", "转人工", "客服", configurable) → hand over;
4. the playbook's keyword/regex reply rules (scrm.playbook.decide);
5. greetings get a greeting; the FAQ's answer when retrieval is above its confidence line;
6. a fallback that offers a human; the third miss in a row hands over instead.

Nothing here writes: the caller stores the decision on the interaction and then, only if the row was new, saves
the conversation state (`Turn.state`), so a retried message never advances a flow twice. The decision's `bot`
part tells the applier what happened (scrm.faq_effects: miss recorded, entry's tags and points, handoff notice).
"""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import redis
from sqlalchemy import Connection

from foundation.clock import utcnow
from scrm import conversations, event_forms, faq_store
from scrm.chatbot_config import BotConfig, config_of, fold
from scrm.conversations import HANDOFF, State

if TYPE_CHECKING:
    from scrm.ingest import Event

log = logging.getLogger(__name__)
MAX_ASK = 500  # characters of a message matched (a 2,000-character message is answered from its start)


@dataclass(frozen=True)
class Turn:
    decision: dict[str, Any] | None
    state: State | None  # the conversation state to save once the row is recorded (None: leave it as it is)
    before: State | None


def question(event: Event) -> str | None:
    """The text the bot answers: a text message's content, a voice message's Recognition; None otherwise."""
    if event.channel != "oa":
        return None
    if event.kind == "text":
        return event.content or ""
    if event.kind == "voice":
        text = event.payload.get("Recognition")
        return text if isinstance(text, str) else None
    return None


def turn(conn: Connection, event: Event, decided: dict[str, Any] | None, fast: redis.Redis | None,
         now: float | None = None) -> Turn | None:  # fmt: skip
    """The bot's decision for `event` (None: not the bot's business, or no FAQ loaded: the playbook's stands)."""
    text = question(event)
    if text is None:
        return None
    knowledge = faq_store.knowledge(conn, fast)
    now = time.time() if now is None else now
    state = conversations.load(fast, event.openid)
    if knowledge is None and (state is None or state.active(now) is None):
        return None  # no FAQ and no flow running (a form runs without a FAQ): the playbook's reply stands
    cfg = config_of(conn)
    bot, reply, new = _decide(text, decided, knowledge, cfg, state, now)
    bot["faq_version"] = knowledge.version if knowledge is not None else None
    if state is None:
        bot["stateless"] = True
    playbook = decided or {}
    rules = playbook.get("rules", []) if bot["kind"] == "rule" else []  # an overridden rule's reply was not sent
    out = {"rules": rules, "reply": reply, "bot": bot}
    return Turn(out, new if state is not None and new != state else None, state)


def _decide(text: str, decided: dict[str, Any] | None, kb: faq_store.Knowledge | None, cfg: BotConfig,
            state: State | None, now: float) -> tuple[dict[str, Any], dict[str, Any] | None, State]:  # fmt: skip
    current = state or conversations.BLANK
    probe = fold(text)
    if not probe and not text.strip():
        return {"kind": "empty"}, None, current
    step = conversations.advance(current, text, now)
    if step is not None:
        if probe in cfg.cancel_words:
            said = event_forms.cancelled_line(current) or cfg.cancelled
            return {"kind": "cancel", "ended": current.flow}, {"text": said}, conversations.stop(current)
        return {"kind": "flow", **step.note}, step.reply, step.state
    if probe in cfg.cancel_words:
        return {"kind": "cancel", "ended": None}, {"text": cfg.nothing_to_cancel}, conversations.BLANK
    if cfg.wants_human(probe):
        return _handoff(current, cfg, now, "asked")
    if decided and decided.get("reply"):
        return {"kind": "rule"}, decided["reply"], _reset(current)
    if kb is None:  # a form offer stepped aside and there is no FAQ to answer from
        return {"kind": "none"}, None, current
    return _answer(text, kb, cfg, current, now)


def _answer(text: str, kb: faq_store.Knowledge, cfg: BotConfig, current: State,
            now: float) -> tuple[dict[str, Any], dict[str, Any] | None, State]:  # fmt: skip
    match = kb.index.ask(text[:MAX_ASK])
    facts = {"score": _num(match.score), "runner_up": match.runner_up, "runner_up_score": _num(match.runner_up_score)}
    if match.kind == "greeting":
        return {"kind": "greeting", **facts}, {"text": cfg.greeting}, _reset(current)
    entry = kb.entries.get(match.entry_id) if match.kind == "answer" and match.entry_id else None
    if entry is not None:
        bot = {"kind": "answer", "entry": entry.id, **facts, "tags": list(entry.tags), "points": entry.points}
        return bot, {"text": entry.answer}, _reset(current)
    misses = current.misses + 1
    if misses >= cfg.miss_streak:
        bot, reply, new = _handoff(current, cfg, now, "misses")
        return {**bot, "miss": True, "misses": misses, **facts}, reply, new
    bot = {"kind": "fallback", "miss": True, "misses": misses, "candidate": match.entry_id, **facts}
    return bot, {"text": cfg.fallback}, State(misses=misses)


def _handoff(current: State, cfg: BotConfig, now: float, why: str) -> tuple[dict[str, Any], dict[str, Any], State]:
    started = conversations.start(current, HANDOFF, now, cfg.handoff_seconds)
    return {"kind": "handoff", "why": why, "until": int(started.until)}, {"transfer": True}, started


def _reset(current: State) -> State:
    return State() if current.misses else current


def _num(value: Any) -> float | None:
    try:
        return round(float(value), 4) if value is not None else None
    except (TypeError, ValueError):
        return None


def commit(fast: redis.Redis | None, openid: str, done: Turn, now: float | None = None) -> None:
    """After the insert of a new interaction: save the state its decision moved to."""
    if done.state is not None:
        conversations.save(fast, openid, done.state, time.time() if now is None else now)


def preview(conn: Connection, text: str, fast: redis.Redis | None) -> dict[str, Any]:
    """What the bot would answer `text` now, for a follower with no conversation running; sends and stores nothing.
    The DESIGN.md contract: `{"id", "answer", "score", "fallback"}`, plus how it was decided."""
    from scrm.ingest import Event  # the domain's event type; a preview is a text message nobody sent
    from scrm.playbook.decide import decide

    event = Event(channel="oa", kind="text", openid="faq-preview", dedup_key="faq-preview", created=0, content=text)
    decided = decide(conn, event, utcnow()).as_json()
    knowledge = faq_store.knowledge(conn, fast)
    cfg = config_of(conn)
    if knowledge is None:  # no FAQ loaded: the callback path leaves the reply to the playbook
        ruled = (decided or {}).get("reply")
        bot, reply = ({"kind": "rule"}, ruled) if ruled else ({"kind": "none", "score": 0.0}, None)
    else:
        bot, reply, _ = _decide(text, decided, knowledge, cfg, None, time.time())
    kind = bot["kind"]
    return {
        "id": bot.get("entry"),
        "answer": (reply or {}).get("text", "") if reply and not reply.get("transfer") else "",
        "score": bot.get("score") if bot.get("score") is not None else (1.0 if kind in ("rule", "handoff") else 0.0),
        "fallback": kind == "fallback",
        "kind": kind,
        "handoff": kind == "handoff",
        "runner_up": bot.get("runner_up"),
        "runner_up_score": bot.get("runner_up_score"),
        "reply": reply,
        "rules": (decided or {}).get("rules", []) if kind == "rule" else [],
        "version": knowledge.version if knowledge else None,
    }
