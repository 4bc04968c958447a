"""What the chatbot's decision implies, applied by the applier from what the request stored (`decision["bot"]`), so
the record matches what the follower was told whatever the FAQ says by now:

- a miss (fallback, or the miss that handed over): a `faq_misses` row, once per interaction;
- an answer: the `faq_answered` playbook trigger with the entry id, and the entry's tags and points;
- a handoff: a `handoff` notice to the owner (or, for a lead nobody owns, the first rep on duty), whose card shows
  the last messages, and a `handoff` timeline entry;
- an answer left to the language model (`defer`): one `chatbot.answer` outbox row, keyed by the interaction
  (tasks/chatbot_answer.py sends it as a customer-service message);
- a customer-service session (scrm.handoff_kf) or a cancel word that ended a handoff: a `handoff_ended` timeline
  entry; a session a rep opened while no handoff ran: a `handoff` entry (nobody is notified: the rep has it).
"""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING, Any

from foundation.sql import insert_ignore
from scrm import assignment, notices
from scrm.chatbot_config import fold
from scrm.conversations import HANDOFF
from scrm.faq_models import FaqMiss
from scrm.handoff_kf import CLOSE, KF_EVENTS
from scrm.notice_text import clip

if TYPE_CHECKING:
    from scrm.ingest import Visit
    from scrm.playbook.engine import Run

log = logging.getLogger(__name__)
MAX_MISS = 500  # characters of a missed question kept


def bot_of(visit: Visit) -> dict[str, Any] | None:
    bot = (visit.decision or {}).get("bot")
    return bot if isinstance(bot, dict) else None


def apply(visit: Visit) -> None:
    """The effects of the bot's decision (before the playbook runs: `faq_answered` rules then see the signal)."""
    bot = bot_of(visit)
    if bot is None or visit.follower is None:
        return
    kind = bot.get("kind")
    if bot.get("miss"):
        _miss(visit, bot)
    if kind == "answer" and bot.get("entry"):
        visit.signal("faq_answered", entry=str(bot["entry"]), score=bot.get("score"))
    elif kind == "handoff":
        _handoff(visit, bot)
    elif kind in KF_EVENTS:
        _session(visit, bot)
    elif kind == "cancel" and bot.get("ended") == HANDOFF:
        visit.note("handoff_ended", {"by": "cancel_word"})
    if isinstance(bot.get("defer"), dict):
        iid = visit.interaction_id
        visit.enqueue("chatbot.answer", {"interaction_id": iid}, key=f"chatbot.answer:{iid}")


def _text(visit: Visit) -> str:
    ev = visit.event
    text = ev.payload.get("Recognition") if ev.kind == "voice" else ev.content
    return str(text or "")


def _miss(visit: Visit, bot: dict[str, Any]) -> None:
    from scrm import faq_match  # the retrieval core's normalisation groups misses the way questions are matched

    text = _text(visit)[:MAX_MISS]
    row = {"interaction_id": visit.interaction_id, "openid": visit.event.openid, "text": text,
           "norm": fold(faq_match.normalise(text))[:512], "faq_version": bot.get("faq_version"),
           "score": bot.get("score"), "at": visit.event.at}  # fmt: skip
    if visit.shared is not None:
        visit.shared.insert_later(FaqMiss, ("interaction_id",), row)
    else:
        visit.session.execute(insert_ignore(visit.session, FaqMiss, ["interaction_id"]), row)


def _handoff(visit: Visit, bot: dict[str, Any]) -> None:
    follower = visit.follower
    assert follower is not None
    said = clip(_text(visit), 40)
    reason = f"asked for a human: “{said}”" if bot.get("why") == "asked" else (
        f"{bot.get('misses', 3)} questions in a row the bot could not answer, last “{said}”")  # fmt: skip
    visit.note("handoff", {"why": bot.get("why"), "text": said, "until": bot.get("until")})
    if notices.notify_owner(visit, follower, "handoff", visit.interaction_id, reason=reason):
        return
    on_duty = assignment.eligible(visit.session, [rep for rep, _ in assignment.everyone(visit.session)], visit.event.at)
    if on_duty:
        notices.notify(visit, follower, on_duty[0], "handoff", visit.interaction_id, reason=reason + " (no owner)")
    else:
        log.info("handoff of %s: no owner and no rep on duty to tell", follower.openid)


def _session(visit: Visit, bot: dict[str, Any]) -> None:
    who = {"kf_account": bot.get("kf_account"), "by": visit.event.kind}
    if visit.event.kind == CLOSE and bot.get("ended"):
        visit.note("handoff_ended", who)
    elif visit.event.kind != CLOSE and bot.get("started"):
        visit.note("handoff", {**who, "why": "kf_session", "until": bot.get("until")})


def award(run: Run, visit: Visit) -> None:
    """The answered entry's tags and points, as the pseudo-rule `faq:<entry id>` (scores are explained by it)."""
    bot = bot_of(visit)
    if bot is None or bot.get("kind") != "answer" or not bot.get("entry"):
        return
    rule = f"faq:{str(bot['entry'])[:64]}"
    for name in bot.get("tags") or []:
        if isinstance(name, str) and name:
            run.add_tag(name, rule)
    points = bot.get("points")
    if isinstance(points, int) and not isinstance(points, bool) and points:
        model = run.book.primary
        got = run.ledger.award(model=model, half_life=run.book.half_lives[model], points=points, rule=rule,
                               interaction_id=visit.interaction_id, dedup=f"{rule}:{run.scope}", cap=None,
                               now=run.now)  # fmt: skip
        if got is not None:
            run.scored(rule, got)
