# ruff: noqa: RUF001  (the prompt is Chinese, with its full-width punctuation)
"""Optional language-model answers (docs/chatbot.md): which questions the request hands to the model, the prompt
the model gets, and whether what came back may be sent. No HTTP here: the call is tasks/chatbot_answer.py's.

A model answer takes longer than WeChat's 5 s allow a passive reply, so the request answers "success" and stores
the deferral on the interaction (`bot.defer`: the FAQ entries the model may use, the FAQ's own answer to send
instead); the applier writes one outbox row for it and a job sends the answer as a customer-service message. The
model may answer only from those entries: the prompt says so, and `check` refuses an answer that is empty, too
long, says it cannot answer, or states numbers, links or words the entries and the question do not contain; any
refusal or failure sends the FAQ's answer instead.
"""

from __future__ import annotations

import re
import unicodedata
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, Protocol

NO_ANSWER = "NO_ANSWER"
MIN_SUPPORT = 0.6  # share of the answer's words (CJK characters, Latin words) the entries or the question contain
_NUMBER = re.compile(r"\d+(?:[.,:：]\d+)*")
_LINK = re.compile(r"(?:https?://|www\.)[^\s，。；、）)]+|[\w.+-]+@[\w-]+\.[\w.]+", re.I)
_WORD = re.compile(r"[\u3400-\u9fff]|[a-z]+", re.I)
# Characters any Chinese sentence has: their presence says nothing about where the answer came from.
_COMMON = frozenset(
    "的了是在和与及或您你我们他她它吗呢吧啊呀哦就都也还很可以会能要有这那个一不没请对为把被让给从到着过"
)


class LlmSettings(Protocol):
    llm_api_base: str
    llm_consider: float
    llm_max_chars: int


@dataclass(frozen=True)
class Policy:
    """What the request needs to know: the model is on, and from which FAQ confidence a question goes to it."""

    consider: float

    @classmethod
    def of(cls, settings: LlmSettings) -> Policy | None:
        """The policy of these settings; None while LLM_API_BASE is unset (the default)."""
        return cls(settings.llm_consider) if settings.llm_api_base else None


class Candidate(Protocol):
    kind: str
    entry_id: str | None
    score: float
    runner_up: str | None


def deferral(policy: Policy | None, match: Candidate, known: Any, fallback: str) -> dict[str, Any] | None:
    """The `defer` part of the bot's decision, or None when the model is not asked: it is off, or the FAQ is not
    even close (below the consider line). `known`: the active entries by id; `fallback`: what goes out instead."""
    if policy is None or (match.kind != "answer" and match.score < policy.consider):
        return None
    entries = [i for i in dict.fromkeys((match.entry_id, match.runner_up)) if i and i in known]
    if not entries:
        return None
    return {"via": "llm", "entries": entries, "fallback": fallback}


class Source(Protocol):
    questions: Sequence[str]
    answer: str


def prompt(question: str, entries: Sequence[Source], max_chars: int) -> list[dict[str, str]]:
    """The chat messages: rules in the system message, the entries and the follower's question in the user's."""
    rules = (
        "你是公众号的客服助手。只能根据下面“资料”中的条目回答用户的问题：不得使用资料以外的任何知识，"
        "不得编造或改动价格、数字、日期、链接、联系方式和承诺，尽量沿用资料原文的说法。"
        f"资料回答不了这个问题时，只回复 {NO_ANSWER}，不要解释。"
        f"用中文回答，简洁自然，不超过 {max_chars} 个字，不要提到“资料”或“条目”。"
    )
    facts = "\n\n".join(
        f"[{i}] 问题：{' / '.join(e.questions[:5])}\n答案：{e.answer}" for i, e in enumerate(entries, 1)
    )
    return [
        {"role": "system", "content": rules},
        {"role": "user", "content": f"资料：\n{facts}\n\n用户的问题：{question}"},
    ]


def check(raw: str, question: str, entries: Sequence[Source], max_chars: int) -> tuple[str | None, str]:
    """(the answer to send, "ok"), or (None, why it is refused: empty, cannot_answer, too_long, ungrounded)."""
    text = raw.strip()
    if not text:
        return None, "empty"
    if NO_ANSWER in text.upper().replace(" ", "_"):
        return None, "cannot_answer"
    if len(text) > max_chars:
        return None, "too_long"
    sources = _fold(" ".join([question, *(e.answer for e in entries), *(q for e in entries for q in e.questions)]))
    if not grounded(_fold(text), sources):
        return None, "ungrounded"
    return text, "ok"


def grounded(answer: str, sources: str) -> bool:
    """Every number and link of `answer` is in `sources`, and most of its words are (both folded)."""
    digits = sources.replace(",", "")
    if any(n.replace(",", "") not in digits for n in _NUMBER.findall(answer)):
        return False
    if any(link.rstrip(".") not in sources for link in _LINK.findall(answer)):
        return False
    words = [w for w in _WORD.findall(answer) if w not in _COMMON]
    if not words:
        return True
    return sum(w in sources for w in words) / len(words) >= MIN_SUPPORT


def _fold(text: str) -> str:
    return unicodedata.normalize("NFKC", text).casefold()
