"""The passive reply, decided in the request from what is at hand: the compiled playbook's reply rules and, only
when one of them has an `if`, one read of the follower.

The decision (the version, the reply rules that fired, the reply) is stored on the interaction; the applier then
fires exactly those reply rules with that version (engine.Run `decided`), so what the follower was told and what
happened to their record cannot drift apart, whatever was applied or loaded in between. A reply rule's `if` sees
the follower as of the last applied event: the one being answered has no effects yet.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from typing import TYPE_CHECKING, Any

from sqlalchemy import Connection, Float, bindparam, case, cast, literal, null, select, union_all

from scrm import referrals
from scrm.models import Follower, FollowerTag, Tag
from scrm.playbook import store
from scrm.playbook.compiled import Compiled, CompiledRule
from scrm.playbook.conditions import holds
from scrm.playbook.engine import answer, render
from scrm.playbook.inbound import signals
from scrm.playbook.models import FollowerScore
from scrm.scoring import decayed, epoch

if TYPE_CHECKING:
    from scrm.ingest import Event

_F, _FT, _T, _S = Follower.__table__.c, FollowerTag.__table__.c, Tag.__table__.c, FollowerScore.__table__.c
_WHO = bindparam("openid")
# The follower, their tag names and score totals: one round trip, three index lookups.
_NUM = cast(null(), Float)  # PostgreSQL types a UNION's columns from its first select: every NULL typed once
_SNAPSHOT = union_all(
    select(literal("f"), _F.stage, cast(_F.owner_id, Float),
           case((_F.subscribed, literal(1.0, Float)), else_=literal(0.0, Float)), _NUM)
    .where(_F.openid == _WHO),
    select(literal("t"), _T.name, _NUM, _NUM, _NUM)
    .select_from(Follower.__table__.join(FollowerTag.__table__).join(Tag.__table__))
    .where(_F.openid == _WHO),
    select(literal("s"), _S.model, _S.value, _S.as_of, _S.half_life)
    .select_from(Follower.__table__.join(FollowerScore.__table__))
    .where(_F.openid == _WHO),
)  # fmt: skip


@dataclass(frozen=True, slots=True)
class Decision:
    version: int | None = None
    rules: tuple[str, ...] = ()
    reply: dict[str, Any] | None = None

    def as_json(self) -> dict[str, Any] | None:
        """What the interaction row stores; None when nothing was decided."""
        return {"rules": list(self.rules), "reply": self.reply} if self.rules or self.reply else None


@dataclass(slots=True)
class Snapshot:
    """The follower as the request sees it (a follower not applied yet is a new, unsubscribed one)."""

    subscribed: bool | None = False
    owner_id: int | None = None
    stage: str = "new"
    tag_names: set[str] = field(default_factory=set)
    scores: dict[str, tuple[float, float, float | None]] = field(default_factory=dict)

    def score(self, model: str, now: datetime) -> float:
        row = self.scores.get(model)
        return decayed(row[0], row[1], epoch(now), row[2]) if row else 0.0


def snapshot(conn: Connection, openid: str) -> Snapshot:
    snap = Snapshot()
    for kind, name, a, b, c in conn.execute(_SNAPSHOT, {"openid": openid}):
        if kind == "f":
            snap.stage, snap.owner_id, snap.subscribed = name, int(a) if a is not None else None, bool(b)
        elif kind == "t":
            snap.tag_names.add(name)
        else:
            snap.scores[name] = (a, b, c)
    return snap


def decide(conn: Connection, event: Event, now: datetime) -> Decision:
    """The reply rules the event fires, and the reply of the first of them in playbook order."""
    found = store.current(conn)
    if found is None:
        return Decision()
    version, book = found
    seen: Snapshot | None = None
    fired: dict[str, tuple[CompiledRule, dict[str, Any]]] = {}
    for signal in signals(event):
        for rule, bound in book.matches(signal):
            if not rule.replies or rule.name in fired:
                continue
            if rule.condition is not None:
                seen = seen or snapshot(conn, event.openid)
                if not _holds(book, rule, seen, now):
                    continue
            fired[rule.name] = (rule, {**signal.facts, **bound})
    ordered = sorted(fired.values(), key=lambda hit: hit[0].order)
    reply = next((r for r in (_answer(rule, facts, event.openid) for rule, facts in ordered) if r), None)
    return Decision(version, tuple(r.name for r, _ in ordered), reply)


def _holds(book: Compiled, rule: CompiledRule, seen: Snapshot, now: datetime) -> bool:
    return holds(book, rule.condition, seen, lambda: seen.tag_names, lambda model: seen.score(model, now))


def _answer(rule: CompiledRule, facts: dict[str, Any], openid: str) -> dict[str, Any] | None:
    values = {k: v for k, v in facts.items() if v is not None}
    values["openid"] = openid
    found, form = None, None
    for action in rule.rule.do:
        if action.verb == "reply" and found is None:
            found = answer(action.reply, values)
        elif action.verb == "start_form" and form is None:
            form = render(action.start_form, values)  # the form's first question joins the reply (scrm.event_turns)
    if found is None and any(action.verb == "send_poster" for action in rule.rule.do):
        found = {"text": referrals.DEFAULT_REPLY}  # the poster itself follows as a customer-service image
    return {**(found or {}), "start_form": form} if form else found
