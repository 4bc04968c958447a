"""The chatbot's deferred answers (scrm.chatbot_llm): ask the language model, from the FAQ entries the request
chose, and send its answer as a customer-service message; when the model is slow, fails, refuses or says what the
entries do not, the FAQ's own answer goes instead. One delivery per interaction (key `bot:<interaction id>`): a
job run twice finds it and asks the model nothing more."""

from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from foundation.services import services
from scrm import chatbot_llm
from scrm.delivery_models import Delivery
from scrm.faq_models import FaqEntry
from scrm.guards import REPLY
from scrm.message_templates import CUSTOM, TEXT_LIMIT
from scrm.models import Interaction
from tasks.llm import ModelError, complete
from tasks.registry import GiveUp, task
from tasks.send import deliver

log = logging.getLogger(__name__)
TEMPLATE = "chatbot_answer"  # templates/messages/chatbot_answer.yml: the text as is
MAX_QUESTION = 500  # characters of the question the model sees (the request matched as many)


@dataclass(frozen=True)
class Question:
    """What the request deferred: who asked what, the entries the model may use, the answer to send otherwise."""

    openid: str
    text: str
    entries: list[FaqEntry]
    fallback: str


def key_of(interaction_id: int) -> str:
    return f"bot:{interaction_id}"


@task("chatbot.answer")
def answer(interaction_id: int) -> dict[str, Any]:
    """Send interaction `interaction_id`'s answer, once; the model is asked only if it was not sent before."""
    question = _question(interaction_id)
    if question is None:
        raise GiveUp(f"interaction {interaction_id} has no deferred answer")
    key = key_of(interaction_id)
    if _exists(key):  # a second run: the delivery decides (sent, or still queued for the pump)
        return deliver(question.openid, TEMPLATE, {"text": question.fallback}, key, REPLY, CUSTOM)
    text, via, why = compose(question)
    log.info("chatbot answer for interaction %s: %s (%s)", interaction_id, via, why)
    return deliver(question.openid, TEMPLATE, {"text": text, "via": via, "why": why}, key, REPLY, CUSTOM)


def compose(question: Question) -> tuple[str, str, str]:
    """(text, "llm" | "faq", why): the model's checked answer, or the FAQ's with the reason."""
    settings = services().settings
    fallback = _fit(question.fallback)
    if not settings.llm_on:
        return fallback, "faq", "off"
    if not question.entries:
        return fallback, "faq", "no_entries"
    limit = settings.llm_max_chars
    try:
        raw = complete(settings, chatbot_llm.prompt(question.text, question.entries, limit), limit)
    except ModelError as exc:
        log.warning("language model unusable, the FAQ answers: %s", exc)
        return fallback, "faq", exc.reason
    text, why = chatbot_llm.check(raw, question.text, question.entries, limit)
    return (text, "llm", why) if text else (fallback, "faq", why)


def _question(interaction_id: int) -> Question | None:
    with services().db.sessions() as session:
        row = session.get(Interaction, interaction_id)
        bot = ((row.decision if row else None) or {}).get("bot") or {}
        defer = bot.get("defer")
        if row is None or not isinstance(defer, dict) or not defer.get("fallback"):
            return None
        said = row.payload.get("Recognition") if row.kind == "voice" else row.content
        wanted = [str(i) for i in defer.get("entries") or []]
        version = bot.get("faq_version")
        entries = _entries(session, version, wanted) if isinstance(version, int) else []
        return Question(row.openid, str(said or "")[:MAX_QUESTION], entries, str(defer["fallback"]))


def _entries(session: Session, version: int, wanted: list[str]) -> list[FaqEntry]:
    """The entries `wanted` of FAQ version `version` (the one the request decided with), in that order."""
    query = select(FaqEntry).where(FaqEntry.version == version, FaqEntry.entry_id.in_(wanted))
    found = {e.entry_id: e for e in session.scalars(query)}
    return [found[i] for i in wanted if i in found]


def _exists(key: str) -> bool:
    with services().db.sessions() as session:
        return session.scalar(select(Delivery.id).where(Delivery.key == key)) is not None


def _fit(text: str) -> str:
    """`text` within WeChat's 2,048 bytes of a text message (an FAQ answer may be longer), cut with an ellipsis."""
    if len(text.encode()) <= TEXT_LIMIT:
        return text
    cut = text.encode()[: TEXT_LIMIT - 3].decode("utf-8", "ignore")
    return cut + "…"
