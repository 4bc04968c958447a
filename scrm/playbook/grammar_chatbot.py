"""The playbook's `chatbot:` settings: the words that hand over to a human or cancel, the streak of misses that
hands over, how long a handoff keeps the bot quiet, and the bot's own lines. Every field has a default."""

from __future__ import annotations

from typing import Annotated

from pydantic import Field, StrictInt

from scrm.playbook.grammar_when import Strict

Word = Annotated[str, Field(min_length=1, max_length=32)]
Line = Annotated[str, Field(min_length=1, max_length=600)]

HANDOFF_WORDS = ["人工", "转人工", "人工客服", "客服", "真人", "human", "agent"]
CANCEL_WORDS = ["退出", "取消", "cancel", "quit", "exit"]


class ChatbotSettings(Strict):
    handoff_words: list[Word] = Field(default_factory=lambda: list(HANDOFF_WORDS), max_length=50)
    cancel_words: list[Word] = Field(default_factory=lambda: list(CANCEL_WORDS), max_length=50)
    miss_streak: Annotated[StrictInt, Field(ge=1, le=20)] = 3
    handoff_minutes: Annotated[StrictInt, Field(ge=1, le=24 * 60)] = 30
    greeting: Line = "您好！我是智能助手，请直接输入您的问题，例如“价格”“怎么试用”。需要人工请回复「人工」。"  # noqa: RUF001
    fallback: Line = "抱歉，这个问题我暂时答不上来。您可以换个说法再问一次，或回复「人工」转人工客服。"  # noqa: RUF001
    cancelled: Line = "好的，已结束人工服务。有问题随时问我。"  # noqa: RUF001
    nothing_to_cancel: Line = "好的。有其他问题随时问我。"
