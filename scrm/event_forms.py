# ruff: noqa: RUF001  (prompts: full-width Chinese punctuation on purpose)
"""Lead-capture forms: the fields an event asks for, how each answer is checked, and the two conversation flows
(scrm.conversations) that run them in the chat.

An event's form is `events.form` (JSON, null = the default name → company → mobile):
`{"fields": [{"name", "prompt", "kind": "name"|"company"|"text"|"mobile"|"email", "required"}], "start":
"offer"|"direct"|"none", "minutes": 30, "intro", "done", "cancelled", "failed"}`.

- `form_offer`: after a booth reply that offered the form ("回复 1 …"), a "1" starts it; anything else is answered
  as usual (the offer stays open until it expires).
- `form`: one field per message. A bad answer gets the field's re-prompt; the third bad answer in a row ends the
  form politely; cancel words end it (scrm.chatbot); the state expires after `minutes` (abandoned). The last good
  answer ends it with `submitted` in the decision: the applier writes the lead from exactly that (scrm.lead_capture).

The whole form (fields, prompts, lines) travels in the conversation state, so no step reads the database.
Answers are cleaned (NFKC, control characters dropped, whitespace collapsed) and cut to the field's length; the
replies never repeat an answer, so nothing a follower typed reaches the reply XML.
"""

from __future__ import annotations

import re
import unicodedata
from dataclasses import dataclass, replace
from typing import Any

from scrm import conversations
from scrm.chatbot_config import fold
from scrm.conversations import State, Step

FORM, OFFER = "form", "form_offer"
KINDS = ("name", "company", "text", "mobile", "email")
STARTS = ("offer", "direct", "none")
STRIKES = 3  # bad answers in a row that end the form
MAX_FIELDS = 10
MAX_LEN = {"name": 50, "company": 100, "text": 200, "mobile": 11, "email": 120}
OFFER_WORDS = frozenset({"1", "一"})
PROMPTS = {
    "name": "请问您怎么称呼？（随时回复“退出”可结束）",
    "company": "您所在的公司或单位是？",
    "mobile": "请留下您的手机号，方便工作人员联系您。",
    "email": "请留下您的邮箱。",
    "text": "请输入：",
}
RETRY = {
    "name": "没有看清您的称呼，请用文字再输入一次。",
    "company": "没有看清公司名称，请用文字再输入一次。",
    "mobile": "这个手机号好像不对。请输入 11 位中国大陆手机号，例如 13800138000。",
    "email": "这个邮箱好像不对，请再输入一次，例如 name@example.com。",
    "text": "没有看清，请用文字再输入一次。",
}
LINES = {
    "intro": "",
    "offer": "回复 1 留下您的联系方式，工作人员会联系您。",
    "done": "谢谢！您的信息已收到，工作人员会尽快联系您。",
    "cancelled": "好的，已取消填写。有问题随时问我。",
    "failed": "抱歉，没能记录下您的信息。您可以稍后再扫码填写，或直接找展位的工作人员。",
}
_MOBILE = re.compile(r"1[3-9][0-9]{9}")
_EMAIL = re.compile(r"[A-Za-z0-9._%+-]{1,64}@[A-Za-z0-9.-]{1,100}\.[A-Za-z]{2,24}")
_PUNCT = re.compile(r"[\s\-‐-―−().·]+")
_SPACES = re.compile(r"\s+")


@dataclass(frozen=True)
class Field:
    name: str
    kind: str
    prompt: str
    required: bool = True


@dataclass(frozen=True)
class Form:
    fields: tuple[Field, ...]
    start: str = "offer"
    minutes: int = 30
    lines: tuple[tuple[str, str], ...] = tuple(LINES.items())

    def line(self, name: str) -> str:
        return dict(self.lines).get(name, LINES.get(name, ""))


DEFAULT_FIELDS = (Field("name", "name", PROMPTS["name"]), Field("company", "company", PROMPTS["company"]),
                  Field("mobile", "mobile", PROMPTS["mobile"]))  # fmt: skip
DEFAULT = Form(DEFAULT_FIELDS)


class FormError(ValueError):
    """An `events.form` document that cannot run (the API says which part)."""


def parse_form(doc: Any) -> Form:
    """The event's form from its JSON (None: the default); FormError names what is wrong."""
    if doc is None:
        return DEFAULT
    if not isinstance(doc, dict):
        raise FormError("form: expected an object")
    fields = tuple(_field(i, f) for i, f in enumerate(doc.get("fields") or [])) or DEFAULT_FIELDS
    if len(fields) > MAX_FIELDS or len({f.name for f in fields}) != len(fields):
        raise FormError(f"form.fields: at most {MAX_FIELDS}, names unique")
    start = doc.get("start", "offer")
    if start not in STARTS:
        raise FormError(f"form.start: one of {', '.join(STARTS)}")
    minutes = doc.get("minutes", 30)
    if not isinstance(minutes, int) or isinstance(minutes, bool) or not 1 <= minutes <= 24 * 60:
        raise FormError("form.minutes: a whole number from 1 to 1440")
    lines = {k: _line(doc, k) for k in LINES if doc.get(k) is not None}
    return Form(fields, start, minutes, tuple({**LINES, **lines}.items()))


def _field(i: int, doc: Any) -> Field:
    if not isinstance(doc, dict) or not isinstance(doc.get("name"), str):
        raise FormError(f"form.fields[{i}]: an object with a name")
    name, kind = doc["name"], doc.get("kind", "text")
    if not re.fullmatch(r"[a-z][a-z0-9_]{0,31}", name):
        raise FormError(f"form.fields[{i}].name: lower-case letters, digits, _ (at most 32)")
    if kind not in KINDS:
        raise FormError(f"form.fields[{i}].kind: one of {', '.join(KINDS)}")
    prompt = doc.get("prompt") or PROMPTS[kind]
    if not isinstance(prompt, str) or len(prompt) > 300:
        raise FormError(f"form.fields[{i}].prompt: text of at most 300 characters")
    return Field(name, kind, prompt, bool(doc.get("required", True)))


def _line(doc: dict[str, Any], name: str) -> str:
    value = doc[name]
    if not isinstance(value, str) or len(value) > 300:
        raise FormError(f"form.{name}: text of at most 300 characters")
    return value


def form_or_default(doc: Any) -> Form:
    """At run time a broken form document falls back to the default (the API refuses them on the way in)."""
    try:
        return parse_form(doc)
    except FormError:
        return DEFAULT


# --- answers ------------------------------------------------------------------------------------------------------


def normalise_mobile(text: str) -> str | None:
    """A mainland mobile number as 11 ASCII digits (full-width digits, spaces, dashes, +86/0086 allowed), or None."""
    raw = _PUNCT.sub("", unicodedata.normalize("NFKC", text or "")[:40])
    for prefix in ("+86", "0086", "86"):
        if raw.startswith(prefix) and len(raw) == 11 + len(prefix):
            raw = raw[len(prefix) :]
            break
    return raw if _MOBILE.fullmatch(raw) else None


def clean(text: str, limit: int) -> str:
    """NFKC, control and format characters dropped, whitespace collapsed, cut to `limit` characters."""
    text = unicodedata.normalize("NFKC", (text or "")[: limit * 4])
    text = "".join(ch for ch in text if unicodedata.category(ch)[0] != "C" or ch in "\t\n ")
    return _SPACES.sub(" ", text).strip()[:limit]


def check(field: Field, text: str) -> str | None:
    """The stored value of `text` as an answer to `field`, or None for a bad answer."""
    if field.kind == "mobile":
        return normalise_mobile(text)
    value = clean(text, MAX_LEN[field.kind])
    if field.kind == "email":
        return value.lower() if _EMAIL.fullmatch(value) else None
    if not any(unicodedata.category(ch)[0] in "LN" for ch in value):  # emoji only, punctuation only, empty
        return None
    return value


# --- the flows --------------------------------------------------------------------------------------------------


def pack(form: Form) -> dict[str, Any]:
    """The form as the conversation state carries it."""
    return {"f": [[f.name, f.kind, f.prompt] for f in form.fields], "l": dict(form.lines)}


def unpack(fields: dict[str, Any]) -> tuple[list[Field], dict[str, str]]:
    spec = [Field(str(n), str(k), str(p)) for n, k, p in fields.get("f") or []]
    return spec or list(DEFAULT_FIELDS), {**LINES, **(fields.get("l") or {})}


def started(state: State, form: Form, event: str, booth: str | None, now: float, *, offer: bool) -> State:
    """The state of a form offered (`offer`) or begun at its first field."""
    base = conversations.start(state, OFFER if offer else FORM, now, form.minutes * 60.0)
    return replace(base, fields={"e": event, "b": booth, "a": {}, "x": 0, **pack(form)})


def first_prompt(form: Form) -> str:
    intro = form.line("intro")
    return f"{intro}\n{form.fields[0].prompt}" if intro else form.fields[0].prompt


def _offer(state: State, text: str, now: float) -> Step | None:
    """A "1" begins the offered form; anything else is not the form's business (None: answered as usual)."""
    if fold(text) not in OFFER_WORDS:
        return None
    spec, _ = unpack(state.fields)
    begun = replace(state, flow=FORM, step=0)
    return Step({"text": spec[0].prompt}, begun, {"flow": FORM, "event": state.fields.get("e"), "step": 0})


def _form(state: State, text: str, now: float) -> Step:
    spec, lines = unpack(state.fields)
    at = min(max(state.step, 0), len(spec) - 1)
    field = spec[at]
    note: dict[str, Any] = {"flow": FORM, "event": state.fields.get("e"), "field": field.name, "step": at}
    value = check(field, text)
    if value is None:
        fails = int(state.fields.get("x", 0)) + 1
        if fails >= STRIKES:
            return Step({"text": lines["failed"]}, conversations.stop(state), {**note, "failed": True, "fails": fails})
        again = replace(state, fields={**state.fields, "x": fails})
        return Step({"text": RETRY.get(field.kind, RETRY["text"])}, again, {**note, "ok": False, "fails": fails})
    answers = {**(state.fields.get("a") or {}), field.name: value}
    if at + 1 >= len(spec):
        fields = state.fields
        kinds = {f.name: f.kind for f in spec}
        submitted = {
            "event": fields.get("e"),
            "booth": fields.get("b"),
            "fields": answers,
            "kinds": kinds,
            "via": "chat",
        }
        return Step({"text": lines["done"]}, conversations.stop(state), {**note, "ok": True, "submitted": submitted})
    moved = replace(state, step=at + 1, fields={**state.fields, "a": answers, "x": 0})
    return Step({"text": spec[at + 1].prompt}, moved, {**note, "ok": True})


def cancelled_line(state: State) -> str | None:
    """What a cancel word answers in a running form (None: not a form)."""
    if state.flow not in (FORM, OFFER):
        return None
    return unpack(state.fields)[1]["cancelled"]


conversations.FLOWS[FORM] = _form
conversations.FLOWS[OFFER] = _offer  # an offer may step aside (None)
