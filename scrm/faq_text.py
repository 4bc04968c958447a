"""Text side of FAQ matching: normalisation, greetings, character and pinyin grams. Pure Python, no I/O at call time.

Why each step (measured in bench/chatbot_eval.py): followers type full-width letters, traditional characters,
English product words (demo, CRM, API) and IME homophones; matching on the raw text missed them.
"""

from __future__ import annotations

import itertools
import re
import unicodedata
from functools import lru_cache
from pathlib import Path

import opencc

from scrm.faq_lexicon import CHINESE, ENGLISH, EXPAND

MAX_CHARS = 2000  # longer text is cut before anything else: the work per question stays bounded
_T2S = opencc.OpenCC("t2s")

_EXPAND_RE = re.compile("|".join(re.escape(k) for k in sorted(EXPAND, key=len, reverse=True)))
_ENGLISH_WORD = re.compile(r"[a-z][a-z0-9\-]*")
_NUMBERED = re.compile(r"([a-z\-]{2,})(\d+)")  # iso27001, win10: the known word, then its number
_CHINESE_KEYS = sorted(CHINESE, key=len, reverse=True)
_CHINESE_RE = re.compile("|".join(re.escape(k) for k in _CHINESE_KEYS))
_CJK = re.compile(r"[\u4e00-\u9fff]+|[a-z0-9]+")
# Words that carry no topic: dropped before grams so coverage counts only content.
_FILLERS = re.compile(
    "请问|麻烦问下|麻烦|问一下|问下|想问|想了解|了解一下|一下|你们|我们|咱们|贵公司|贵司|您好|你好|亲|"
    "那个|这个|就是|的话|大概|大约|呢|吗|嘛|啊|呀|吧|哦|哈|嗯|啦|呗|的|了|么"
)
# How a question is asked, not what about: "数据线多少钱" shares only 多少钱 with the pricing entry. Multi-character
# only, so no word loses a character (功能 keeps its 能); 怎 and 什 are what the fillers leave of 怎么 and 什么.
_TEMPLATE = re.compile(
    "多少钱|多少|怎么办|怎么样|怎么|如何|能不能|可不可以|可以|支持|有没有|没有|什么|哪里|哪个|哪些|几点|多久|多长时间|"
    "是不是|需要|会不会|能否|是否|怎样|怎|什"
)
_GREETINGS = re.compile(
    "^(?:你好|您好|哈喽|嗨|在吗|在不在|在么|有人吗|有人在吗|谢谢|多谢|感谢|谢了|好的|好|嗯|恩|哦|噢|收到|知道了|明白|"
    "早上好|上午好|中午好|下午好|晚上好|早安|晚安|早|再见|拜拜|辛苦了|哈|呵|嘿|哈哈|呵呵|老师|客服|小编|亲|请问|"
    "打扰了|麻烦了|不客气|没事了|没问题|ok|了|啊|呀|吗|呢|啦|嘛|哟|哇|的|吧|么|喂|hi|hello|你们好|大家好|新年快乐|"
    "节日快乐|中秋快乐|国庆快乐|辛苦|棒|赞|厉害|牛|好滴|好哒|可以|行|对|是的|嗯嗯|好嘞|ok了|你|您|大家|各位|老板|美女|帅哥|小姐姐|朋友|"
    "不用了|不用|先看看|看看|随便看看|明天见|回头见|下次聊|回头聊|晚点聊|稍等|等一下|等等|好吧|行吧|算了|没事|知道啦|了解|懂了|多谢|谢啦|哈哈哈|嘻嘻|我先|先)+$"
)

# Questions to the bot about itself (你是机器人吗, 你叫什么, 你几岁了) are small talk too: "你", never "你们"
# (the vendor).
_ABOUT_BOT = re.compile(
    "^(?:你|您)(?:是不是|是|叫|算)(?:谁|什么|真人|人|机器人|人工智能|智能|智能客服|男|女|哪里人|ai)|"
    "^(?:你|您)(?:几岁|多大|多少岁|叫什么|有名字|会不会聊天|吃饭|在干|干什么呢|喜欢)"
)


@lru_cache(maxsize=1)
def _pinyin_table() -> dict[str, str]:
    """Character -> toneless syllable, from the table shipped beside this file (bench/chatbot/make_pinyin_table.py)."""
    table: dict[str, str] = {}
    text = (Path(__file__).with_name("faq_pinyin.txt")).read_text(encoding="utf-8")
    for line in text.splitlines():
        syllable, _, chars = line.partition(" ")
        for char in chars:
            table[char] = _fuzzy(syllable)
    return table


def _fuzzy(syllable: str) -> str:
    """Merge what IMEs and southern accents confuse (zh/z, ch/c, sh/s, -ng/-n): homophone typos then collide."""
    for hard, soft in (("zh", "z"), ("ch", "c"), ("sh", "s")):
        if syllable.startswith(hard):
            syllable = soft + syllable[2:]
    return syllable[:-1] if syllable.endswith("ng") else syllable


def _english(match: re.Match[str]) -> str:
    word = match.group(0)
    numbered = _NUMBERED.fullmatch(word)
    if numbered and numbered.group(1) in ENGLISH:
        return f"{ENGLISH[numbered.group(1)]} {numbered.group(2)} "
    return ENGLISH.get(word, ENGLISH.get(word.rstrip("s"), word)) + " "


def normalise(text: str) -> str:
    """Full/half width, traditional -> simplified, case, English synonyms and colloquial terms -> the FAQ's terms."""
    text = str(text)[:MAX_CHARS].encode("utf-8", "ignore").decode("utf-8")  # lone surrogates from broken clients
    text = unicodedata.normalize("NFKC", text).lower()
    text = _T2S.convert(text)
    text = _ENGLISH_WORD.sub(_english, text)
    text = _CHINESE_RE.sub(lambda m: CHINESE[m.group(0)], text)
    return " ".join(text.split())


def expand(normalised: str) -> str:
    """The normalised text with the FAQ's words for the follower's paraphrases appended (EXPAND)."""
    extra = {EXPAND[m.group(0)] for m in _EXPAND_RE.finditer(normalised)}
    return " ".join((normalised, *sorted(extra))) if extra else normalised


def content(normalised: str) -> list[str]:
    """The runs of CJK characters and ASCII words that carry the question, fillers removed."""
    return [run for run in _CJK.findall(_FILLERS.sub(" ", normalised))]


def subject(runs: list[str]) -> list[str]:
    """The content runs without question templates (_TEMPLATE): what the question is about."""
    out: list[str] = []
    for run in runs:
        out.extend([run] if run.isascii() else _TEMPLATE.sub(" ", run).split())
    return out


def is_greeting(normalised: str) -> bool:
    """Small talk only (你好, 在吗, 谢谢, hi, emoji, punctuation): a question after a greeting is not a greeting."""
    letters = "".join(_CJK.findall(normalised))
    if not letters:  # emoji or stickers only are small talk; bare punctuation (?, ]]>) is not
        return any(unicodedata.category(c) in ("So", "Sk") for c in normalised)
    return bool(_GREETINGS.match(letters)) or (bool(_ABOUT_BOT.match(letters)) and len(letters) <= 12)


def char_grams(runs: list[str]) -> list[str]:
    """Character unigrams and bigrams of each CJK run; an ASCII word is one gram."""
    grams: list[str] = []
    for run in runs:
        if run.isascii():
            grams.append(run)
            continue
        grams.extend(run)
        grams.extend(run[i : i + 2] for i in range(len(run) - 1))
    return grams


def pinyin_grams(runs: list[str]) -> list[str]:
    """Syllable bigrams (and unigrams of one-character runs): 架格 and 价格 give the same grams."""
    table = _pinyin_table()
    grams: list[str] = []
    for run in runs:
        if run.isascii():
            grams.append(run)
            continue
        syllables = [table.get(c, c) for c in run]
        if len(syllables) == 1:
            grams.append(syllables[0])
        grams.extend(f"{a}_{b}" for a, b in itertools.pairwise(syllables))
    return grams
