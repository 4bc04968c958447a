"""Questions the bot could not answer, grouped so a marketer sees what to add: misses with the same normalised text
(scrm.faq_match.normalise: width, script, case, punctuation) are one group; groups whose character bigrams overlap
enough (Jaccard >= NEAR) are merged into the bigger one; clusters are ranked by how often they were asked."""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field
from datetime import timedelta
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from foundation.clock import iso, utcnow
from scrm.faq_models import FaqMiss

SCAN = 5_000  # the most recent misses looked at
NEAR = 0.5
COMPARE = 300  # clusters a group is compared with (the biggest first): bounded work whatever the misses


@dataclass
class Cluster:
    norm: str
    grams: set[str]
    texts: Counter[str] = field(default_factory=Counter)
    openids: set[str] = field(default_factory=set)
    first: Any = None
    last: Any = None

    @property
    def count(self) -> int:
        return sum(self.texts.values())


def grams(text: str) -> set[str]:
    return {text[i : i + 2] for i in range(len(text) - 1)} or ({text} if text else set())


def similar(a: set[str], b: set[str]) -> bool:
    return bool(a and b) and len(a & b) / len(a | b) >= NEAR


def clusters(session: Session, days: int = 30, limit: int = 50) -> dict[str, Any]:
    since = utcnow() - timedelta(days=days)
    rows = session.execute(
        select(FaqMiss.norm, FaqMiss.text, FaqMiss.openid, FaqMiss.at)
        .where(FaqMiss.at >= since).order_by(FaqMiss.id.desc()).limit(SCAN)
    ).all()  # fmt: skip
    groups: dict[str, Cluster] = {}
    for norm, text, openid, at in rows:
        key = norm or text.strip()
        if not key:
            continue
        group = groups.get(key) or groups.setdefault(key, Cluster(key, grams(key)))
        _add(group, text, openid, at)
    merged: list[Cluster] = []
    for group in sorted(groups.values(), key=lambda g: -g.count):
        home = next((c for c in merged[:COMPARE] if similar(c.grams, group.grams)), None)
        if home is None:
            merged.append(group)
        else:
            home.texts.update(group.texts)
            home.openids |= group.openids
            home.first, home.last = min(home.first, group.first), max(home.last, group.last)
    merged.sort(key=lambda c: -c.count)
    return {"items": [_out(c) for c in merged[:limit]], "scanned": len(rows), "days": days}


def _add(group: Cluster, text: str, openid: str, at: Any) -> None:
    group.texts[text] += 1
    group.openids.add(openid)
    group.first = at if group.first is None else min(group.first, at)
    group.last = at if group.last is None else max(group.last, at)


def _out(c: Cluster) -> dict[str, Any]:
    return {"text": c.texts.most_common(1)[0][0], "count": c.count, "followers": len(c.openids),
            "examples": [t for t, _ in c.texts.most_common(5)], "normalised": c.norm,
            "first_at": iso(c.first), "last_at": iso(c.last)}  # fmt: skip
