# ruff: noqa: RUF001  (replies: full-width Chinese punctuation on purpose)
"""The request's part of events beyond the booth reply itself: staff codes, the off-duty word, and the lead form
offered (or begun) after a booth reply. Decided from what is at hand, stored on the interaction, applied later:

- `staff:<event>:<booth>` scanned by registered staff of the event (one indexed read): "you are on duty at …" and
  `decision["staff"] = {"action": "on", ...}`; the applier opens the day's duty at that booth (scrm.staff_duty),
  closing one at another booth. Anyone else, or a code of an unknown event/booth: a polite refusal, nothing changes.
- the text "下班" / "off duty" from registered staff (one indexed read, only for that word): `{"action": "off"}`;
  in the OA chat by openid, or to the WeCom app by the member's userid (WeCom gets no passive reply).
- `booth:<event>:<booth>` of a known event whose form starts (`form.start`, default "offer"): the booth reply gets
  the offer ("回复 1 …") and the H5 link, or with "direct" the first question; the conversation state is saved only
  after the interaction row was inserted (scrm.chatbot.commit), so a retried scan does not restart anything.
"""

from __future__ import annotations

import time
from typing import TYPE_CHECKING, Any

import redis
from sqlalchemy import Connection

from foundation.services import services
from scrm import conversations, event_forms, event_lookup, form_links
from scrm.chatbot import Turn
from scrm.chatbot_config import fold
from scrm.conversations import HANDOFF
from scrm.scenes import parse_scene

if TYPE_CHECKING:
    from scrm.ingest import Event

OFF_WORDS = frozenset({"下班", "offduty", "签退"})
STAFF_ONLY = "这个二维码仅供展会工作人员使用。欢迎到展位了解我们的产品！"
UNKNOWN_CODE = "这个工作人员二维码已失效。请联系活动负责人获取新的二维码。"
ON_DUTY = "您已在「{booth}」展位上岗（{event}，今天）。本展位的新线索会通知您；回复“下班”结束。"
OFF_DUTY = "好的，您已下班，辛苦了！"
LINK_LINE = '或<a href="{url}">点此在线填写</a>'


def turn(conn: Connection, event: Event, decided: dict[str, Any] | None, fast: redis.Redis | None,
         now: float | None = None) -> Turn | None:  # fmt: skip
    """The decision for a staff code, the off-duty word or a booth code with a form; None: not ours."""
    if not event.openid:
        return None
    if event.kind == "text" and fold(event.content or "") in OFF_WORDS:
        return _off_duty(conn, event)
    if event.channel != "oa":
        return None
    if "start_form" in ((decided or {}).get("reply") or {}):
        return _rule_form(conn, event, decided or {}, fast, now)
    if event.kind not in ("subscribe", "scan"):
        return None
    parts = parse_scene(event.scene)
    if parts.get("kind") == "staff" and "booth" in parts:
        return _staff_scan(conn, event, parts["event"], parts["booth"])
    if parts.get("kind") == "booth" and "booth" in parts:
        return _booth_form(conn, event, parts["event"], parts["booth"], decided, fast, now)
    return None


def _decision(reply: dict[str, Any], **extra: Any) -> dict[str, Any]:
    """Our reply replaces the playbook's: its reply rules were not what the follower saw."""
    return {"rules": [], "reply": reply, **extra}


# --- staff --------------------------------------------------------------------------------------------------------


def _staff_scan(conn: Connection, event: Event, slug: str, booth: str) -> Turn:
    info = event_lookup.event_info(conn, slug)
    if info is None or booth not in info.booths:
        staff = {"action": "refused", "why": "unknown code", "event": slug, "booth": booth}
        return Turn(_decision({"text": UNKNOWN_CODE}, staff=staff), None, None)
    me = event_lookup.staff_of(conn, info.id, event.openid)
    if me is None:
        staff = {"action": "refused", "why": "not staff", "event": slug, "booth": booth}
        return Turn(_decision({"text": STAFF_ONLY}, staff=staff), None, None)
    booth_id, booth_name = info.booths[booth]
    staff = {"action": "on", "event": slug, "booth": booth, "event_id": info.id, "booth_id": booth_id,
             "staff_id": me[0]}  # fmt: skip
    reply = {"text": ON_DUTY.format(booth=booth_name, event=info.name)}
    return Turn(_decision(reply, staff=staff), None, None)


def _off_duty(conn: Connection, event: Event) -> Turn | None:
    by_userid = event.channel == "wecom"  # a WeCom app message: from a member, named by their userid
    ids = event_lookup.staff_ids(conn, event.openid, by_userid=by_userid)
    if not ids:
        return None  # not staff: an ordinary message
    staff = {"action": "off", "staff_ids": ids}
    return Turn(_decision({"text": OFF_DUTY}, staff=staff), None, None)


# --- the form after a booth reply ---------------------------------------------------------------------------------


def _booth_form(conn: Connection, event: Event, slug: str, booth: str, decided: dict[str, Any] | None,
                fast: redis.Redis | None, now: float | None) -> Turn | None:  # fmt: skip
    info = event_lookup.event_info(conn, slug)
    if info is None or booth not in info.booths:
        return None
    form = event_forms.form_or_default(info.form)
    if form.start == "none":
        return None
    now = time.time() if now is None else now
    state = conversations.load(fast, event.openid)
    if state is not None and state.active(now) == HANDOFF:
        return None  # a human has the conversation: no form on top of it
    reply = dict((decided or {}).get("reply") or {})
    url = _link(event.openid, slug, booth)
    direct = form.start == "direct" and state is not None and not reply.get("articles")
    offer_text = event_forms.first_prompt(form) if direct else (form.line("offer") if state is not None else "")
    reply = _with_offer(reply, offer_text, url, direct)
    if reply is None:
        return None
    new = event_forms.started(state, form, slug, booth, now, offer=not direct) if state is not None else None
    mark = {"event": slug, "booth": booth, "start": "direct" if direct else "offer", "link": url is not None}
    out = {**(decided or {}), "reply": reply, "form": mark}
    return Turn(out, new, state)


def _rule_form(conn: Connection, event: Event, decided: dict[str, Any], fast: redis.Redis | None,
               now: float | None) -> Turn:  # fmt: skip
    """A reply rule's `start_form: <event>`: the rule's reply (if any) and the form's first question after it."""
    reply = dict(decided["reply"])
    slug = str(reply.pop("start_form"))
    out = {**decided, "reply": reply or None}
    info = event_lookup.event_info(conn, slug)
    now = time.time() if now is None else now
    state = conversations.load(fast, event.openid) if info is not None else None
    if info is None or (state is not None and state.active(now) == HANDOFF):
        return Turn(out, None, None)  # no such event (the rule's reply alone), or a human has the conversation
    form = event_forms.form_or_default(info.form)
    url = _link(event.openid, slug, None)
    direct = state is not None and not reply.get("articles")
    text = event_forms.first_prompt(form) if direct else (form.line("offer") if state is not None else "")
    out["reply"] = _with_offer(reply, text, url, direct)
    new = event_forms.started(state, form, slug, None, now, offer=not direct) if state is not None else None
    out["form"] = {"event": slug, "booth": None, "start": "rule", "link": url is not None}
    return Turn(out, new, state)


def _with_offer(reply: dict[str, Any], text: str, url: str | None, direct: bool) -> dict[str, Any] | None:
    """The booth reply with the offer: a line of text (and the link), or one more article for a news reply."""
    if reply.get("articles"):
        if url is None or len(reply["articles"]) >= 8:
            return reply
        article = {"title": "留下联系方式", "description": text or "点击在线填写", "url": url, "image": ""}
        return {**reply, "articles": [*reply["articles"], article]}
    link = LINK_LINE.format(url=url) if url else ""
    parts = (reply.get("text", ""), link, text) if direct else (reply.get("text", ""), text, link)  # a question last
    lines = [line for line in parts if line]
    return {**reply, "text": "\n\n".join(lines)} if lines else None


def _link(openid: str, event: str, booth: str) -> str | None:
    """The H5 form's signed link; None without a public URL (or outside an app)."""
    try:
        svc = services()
    except RuntimeError:
        return None
    base = svc.settings.public_url
    return form_links.form_url(svc.signer, base, openid, event, booth) if base else None
