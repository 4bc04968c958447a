"""What a rep reads in WeCom: one lead's card, or a digest of several, as WeCom markdown (at most 2,048 bytes).

A card: why, who (name or nickname, company), stage and score, the link to the lead card, top tags, source and the
last few interactions. A digest: one line per lead with its link, then a link to the rep's lead list; the leads that
do not fit wait for the next message (tasks.notify), so every lead is named exactly once.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from scrm import followers
from scrm.models import Follower, Interaction

MAX_BYTES = 2048  # WeCom: markdown content
RECENT, TOP_TAGS, CLIP = 3, 5, 60
NAME_KEYS = ("name", "nickname", "remark")
COMPANY_KEYS = ("company", "corp_name", "corp_full_name")
TITLES = {
    "assigned": "New lead assigned to you",
    "mql": "Lead reached MQL",
    "handoff": "Lead asks for a human",
    "returned": "A dormant lead is back",
    "removed": "A customer removed you",
    "rule": "Lead to follow up",
    "lead": "New lead at your booth",
}


@dataclass(frozen=True)
class Lead:
    openid: str
    name: str
    company: str
    stage: str
    score: float
    tags: list[str]
    source: str | None
    recent: list[dict[str, Any]]
    link: str


def clip(text: Any, size: int = CLIP) -> str:
    text = " ".join(str(text or "").split())
    return text if len(text) <= size else text[: size - 1] + "…"


def _first(profile: dict[str, Any], keys: tuple[str, ...]) -> str:
    return next((str(profile[k]) for k in keys if profile.get(k)), "")


def lead(session: Session, follower: Follower, link: str) -> Lead:
    """A lead as the rep sees it: the follower JSON of the API, its last interactions, its card's link."""
    shown = followers.serialize(session, [follower])[0]
    recent = session.scalars(
        select(Interaction)
        .where(Interaction.follower_id == follower.id)
        .order_by(Interaction.at.desc(), Interaction.id.desc())
        .limit(RECENT)
    )
    profile = shown["profile"]
    return Lead(
        openid=follower.openid,
        name=_first(profile, NAME_KEYS),
        company=_first(profile, COMPANY_KEYS),
        stage=shown["stage"],
        score=float(shown["score"]),
        tags=shown["tags"][:TOP_TAGS],
        source=shown["source"],
        recent=[{"kind": i.kind, "at": followers.iso(i.at), "what": clip(i.content or i.event_key)} for i in recent],
        link=link,
    )


def _size(lines: list[str]) -> int:
    return len("\n".join(lines).encode())


def title(kind: str, about: str | None = None) -> str:
    """The card's headline; `about`: the rep a manager's copy is about."""
    if kind == "removed" and about:
        return f"A customer removed {about}"
    return TITLES.get(kind, TITLES["rule"])


def card(item: Lead, headline: str, reason: str, rule: str | None) -> str:
    """One lead, trimmed from the end (recent interactions first) to WeCom's size."""
    who = clip(item.name or item.openid, 40) + (f" · {clip(item.company, 40)}" if item.company else "")
    lines = [f"**{headline}**" + (f": {clip(reason)}" if reason else ""), f"> **{who}**"]
    lines.append(f'> Stage: <font color="info">{item.stage}</font>  Score: {item.score:g}')
    lines.append(f"> [Open the lead card]({item.link})")
    lines.append(f"> Tags: {', '.join(clip(t, 30) for t in item.tags) or '-'}")
    lines.append(f"> Source: {clip(item.source) or '-'}")
    lines += [f"> {r['at']} {r['kind']}" + (f" {r['what']}" if r["what"] else "") for r in item.recent]
    if rule:
        lines.append(f'<font color="comment">rule: {clip(rule)}</font>')
    while _size(lines) > MAX_BYTES and len(lines) > 4:
        lines.pop()
    return "\n".join(lines)


def digest_line(item: Lead, reasons: list[str]) -> str:
    who = clip(item.name or item.openid, 24)
    company = f" {clip(item.company, 20)} ·" if item.company else ""
    return f"- [{who}]({item.link}){company} {item.stage} {item.score:g} · {clip('; '.join(reasons), 40)}"


def digest(items: list[tuple[Lead, list[str]]], leads_link: str, waiting: int = 0) -> tuple[str, int]:
    """(text, how many of `items` it names): as many as fit, in order; `waiting`: more after these."""
    head = "**Lead updates** (folded into one message: WeCom allows 30 a minute)"
    tail = f"[All my leads]({leads_link})"
    lines, fitted = [head], 0
    for item, reasons in items:
        line = digest_line(item, reasons)
        if _size([*lines, line, tail]) > MAX_BYTES and fitted:
            break
        lines.append(line)
        fitted += 1
    rest = len(items) - fitted + waiting
    if rest:
        tail = f"{rest} more in the next message · {tail}"
    return "\n".join([*lines, tail]), fitted
