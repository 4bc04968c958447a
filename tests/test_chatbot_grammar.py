"""The playbook grammar's chatbot parts: the `faq_answered` trigger (patterns, no reply) and the `chatbot:` settings."""

from __future__ import annotations

import pytest

from scrm.chatbot_config import compile_settings, fold
from scrm.playbook import PlaybookError, parse


def test_faq_answered_trigger_parses_and_cannot_reply():
    book = parse("rules:\n  - name: p\n    when: {faq_answered: [pricing, 'price*']}\n    do: [{score: 5}]\n")
    assert book.rules[0].when.kind == "faq_answered"
    with pytest.raises(PlaybookError) as exc:
        parse("rules:\n  - name: p\n    when: {faq_answered: pricing}\n    do: [{reply: hi}]\n")
    assert any("faq_answered" in e for e in exc.value.errors)


def test_chatbot_settings_are_checked_and_used():
    book = parse("chatbot: {handoff_words: [找销售], miss_streak: 2, handoff_minutes: 5}\n")
    cfg = compile_settings(book.chatbot)
    assert cfg.miss_streak == 2 and cfg.handoff_seconds == 300 and cfg.wants_human(fold("我要找销售"))
    assert not cfg.wants_human(fold("人工"))  # the playbook's words replace the defaults
    with pytest.raises(PlaybookError):
        parse("chatbot: {miss_streak: 0}\n")
    with pytest.raises(PlaybookError):
        parse("chatbot: {handoff_word: [x]}\n")
