"""The chatbot's settings as the request uses them: the active playbook's `chatbot:` section (defaults when no
playbook is loaded), with its words normalised the way messages are, compiled once per playbook version."""

from __future__ import annotations

import re
import unicodedata
from dataclasses import dataclass

from sqlalchemy import Connection

from scrm.playbook import store
from scrm.playbook.grammar_chatbot import ChatbotSettings

_NOISE = re.compile(r"[\s\W_]+", re.UNICODE)
# What may surround a handoff word in a request for a human ("我要转人工", "请帮我接人工客服吧"), and nothing else:
# "人工智能怎么收费" is a question, not a request.
_FILLER = ("我要", "我想", "帮我", "给我", "请", "找", "转接", "转", "接", "联系", "呼叫", "要", "在线", "服务", "的",
           "吧", "呢", "啊", "呀", "吗", "一下", "你们", "有没有", "在不在", "在吗", "有", "我", "可以", "能", "不能",
           "please", "talk", "to", "a", "an")  # fmt: skip


def fold(text: str) -> str:
    return _NOISE.sub("", unicodedata.normalize("NFKC", text)).casefold()


@dataclass(frozen=True)
class BotConfig:
    handoff_words: tuple[str, ...]
    cancel_words: frozenset[str]
    miss_streak: int
    handoff_seconds: float
    greeting: str
    fallback: str
    cancelled: str
    nothing_to_cancel: str

    def wants_human(self, probe: str) -> bool:
        """`probe` (folded) asks for a human: a handoff word with nothing around it but filler."""
        if not probe or len(probe) > 24:
            return False
        hit = False
        for word in self.handoff_words:
            if word in probe:
                hit, probe = True, probe.replace(word, "")
        if not hit:
            return False
        for filler in sorted(_FILLER, key=len, reverse=True):
            probe = probe.replace(filler, "")
        return not probe


def compile_settings(spec: ChatbotSettings) -> BotConfig:
    handoff = tuple(sorted({fold(w) for w in spec.handoff_words if fold(w)}, key=len, reverse=True))
    return BotConfig(handoff_words=handoff, cancel_words=frozenset(fold(w) for w in spec.cancel_words if fold(w)),
                     miss_streak=spec.miss_streak, handoff_seconds=spec.handoff_minutes * 60.0,
                     greeting=spec.greeting, fallback=spec.fallback, cancelled=spec.cancelled,
                     nothing_to_cancel=spec.nothing_to_cancel)  # fmt: skip


DEFAULT = compile_settings(ChatbotSettings())
_BY_CHECKSUM: dict[str, BotConfig] = {}


def config_of(conn: Connection) -> BotConfig:
    """The active playbook's chatbot settings (the version read is cached: scrm.playbook.store.current)."""
    found = store.current(conn)
    if found is None:
        return DEFAULT
    book = found[1]
    cfg = _BY_CHECKSUM.get(book.checksum)
    if cfg is None:
        if len(_BY_CHECKSUM) > 16:
            _BY_CHECKSUM.clear()
        cfg = _BY_CHECKSUM[book.checksum] = compile_settings(book.book.chatbot)
    return cfg
