# ruff: noqa: RUF001  (page text: full-width Chinese punctuation on purpose)
"""A lead form sent from its H5 page: checked field by field exactly as the chat checks answers
(scrm.event_forms.check), then recorded as an interaction (kind `form_submit`) whose decision carries the answers,
so the applier raises `form_submitted` and writes the lead through the same path as a form finished in the chat.
"""

from __future__ import annotations

import hashlib
import time
from dataclasses import dataclass
from typing import Any

from foundation.db import Database
from scrm import accept, event_forms
from scrm.event_forms import Field, Form
from scrm.form_links import FormTicket
from scrm.ingest import Event

KIND = "form_submit"
LABELS = {"name": "姓名", "company": "公司", "mobile": "手机号", "email": "邮箱"}
ERRORS = {
    "name": "请填写您的称呼（文字）。",
    "company": "请填写公司名称（文字）。",
    "mobile": "请填写 11 位中国大陆手机号，例如 13800138000。",
    "email": "请填写有效的邮箱，例如 name@example.com。",
    "text": "请用文字填写这一项。",
}
MAX_RAW = 4000  # characters of one posted value looked at (a longer one is cut, like a chat answer)


@dataclass(frozen=True)
class Shown:
    """A field as the page shows it."""

    name: str
    kind: str
    label: str
    limit: int


def shown(form: Form) -> list[Shown]:
    return [Shown(f.name, f.kind, _label(f), event_forms.MAX_LEN[f.kind] * (3 if f.kind == "mobile" else 1))
            for f in form.fields]  # fmt: skip


def _label(field: Field) -> str:
    return LABELS.get(field.kind) or field.prompt.rstrip("：:？?")[:40]


def check(form: Form, posted: dict[str, str]) -> tuple[dict[str, str], dict[str, str]]:
    """(answers, errors by field name): an empty optional field is left out, a bad one is an error."""
    answers, errors = {}, {}
    for field in form.fields:
        raw = (posted.get(field.name) or "")[:MAX_RAW]
        if not raw.strip() and not field.required:
            continue
        value = event_forms.check(field, raw)
        if value is None:
            errors[field.name] = ERRORS.get(field.kind, ERRORS["text"])
        else:
            answers[field.name] = value
    return answers, errors


def record(db: Database, ticket: FormTicket, form: Form, answers: dict[str, str], nonce: str) -> int | None:
    """The submission's interaction; the same page sent twice (`nonce`: one per page shown) is recorded once."""
    raw = f"h5form\x00{ticket.openid}\x00{ticket.event}\x00{ticket.booth}\x00{nonce[:64]}"
    kinds = {f.name: f.kind for f in form.fields}
    submitted = {"event": ticket.event, "booth": ticket.booth, "fields": answers, "kinds": kinds, "via": "h5"}
    event = Event(channel="oa", kind=KIND, openid=ticket.openid, dedup_key=hashlib.sha1(raw.encode()).hexdigest(),
                  created=int(time.time()), payload={"via": "h5"})  # fmt: skip
    return accept.record(db, event, {"rules": [], "reply": None, "submitted": submitted})


def submitted_of(decision: dict[str, Any] | None) -> dict[str, Any] | None:
    """The answers a decision carries: an H5 submission's, or the last step of a form in the chat."""
    if not decision:
        return None
    found = decision.get("submitted")
    if found is None:
        bot = decision.get("bot")
        found = bot.get("submitted") if isinstance(bot, dict) and bot.get("flow") == event_forms.FORM else None
    return found if isinstance(found, dict) and isinstance(found.get("fields"), dict) else None
