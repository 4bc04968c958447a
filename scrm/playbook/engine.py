"""The rules engine: signals in, actions out, inside the caller's transaction (the Visit's, or a periodic job's).

A run starts with the signals of one inbound event and drains a queue: actions that change something (a tag
added, points crossing a threshold, a stage reached) append signals of their own. Each rule fires at most once per
run, and an action that changes nothing (the tag was there) signals nothing, so every run terminates, whatever the
rules say. Actions that reach WeChat only write outbox rows, keyed so that the same work is queued once.
"""

from __future__ import annotations

import logging
import re
from collections import deque
from datetime import datetime
from typing import Any, Protocol

from sqlalchemy import bindparam, insert, inspect, select
from sqlalchemy.orm import Session
from sqlalchemy.orm.attributes import set_committed_value

from foundation.clock import utcnow
from foundation.numbers import ascii_int
from scrm import assign_effects, notices, outbox, scoring, stages, tags
from scrm.models import Activity, Follower, Rep
from scrm.playbook import conditions
from scrm.playbook.compiled import Compiled, CompiledRule, Signal
from scrm.playbook.grammar import Action, Condition
from scrm.playbook.shared import Shared

log = logging.getLogger(__name__)

_F = Follower.__table__.c
# FOR NO KEY UPDATE, not FOR UPDATE: the interaction a callback has just inserted holds a KEY SHARE lock on its
# follower (the foreign key), which FOR UPDATE conflicts with: two callbacks of one follower would deadlock.
_LOCK = select(_F.stage, _F.owner_id, _F.subscribed).where(_F.id == bindparam("fid")).with_for_update(key_share=True)
MAX_SIGNALS = 500  # a safety net only: fire-once rules and change-only signals already bound a run
CHECKIN = "checkin:"
JOURNEY_CONTEXT = ("event", "booth", "form")  # what a rule's trigger bound that a journey it starts keeps
USERID = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.@-]{0,63}")  # what WeCom allows in a member's userid


class Context(Protocol):
    """What a run needs from its caller; scrm.ingest.Visit is one, `Quiet` (no inbound message) the other."""

    session: Session
    follower: Follower | None
    interaction_id: int | None
    answers: list[dict[str, Any]]

    def enqueue(self, task: str, args: dict[str, Any], key: str | None = None) -> None: ...


class Quiet:
    """A context without an inbound message (periodic triggers): outbox rows, and no passive reply."""

    def __init__(self, session: Session, follower: Follower) -> None:
        self.session, self.follower = session, follower
        self.interaction_id: int | None = None
        self.answers: list[dict[str, Any]] = []
        self.outbox_ids: list[int] = []

    def enqueue(self, task: str, args: dict[str, Any], key: str | None = None) -> None:
        oid = outbox.add(self.session, task, args, key=key)
        if oid is not None:
            self.outbox_ids.append(oid)


def render(text: str, values: dict[str, Any]) -> str | None:
    """Fill {placeholders}; None when one has no value in this run (the action is then skipped)."""
    try:
        return text.format_map(values)
    except (KeyError, ValueError, IndexError) as exc:
        log.info("placeholder without a value in %r: %s", text, exc)
        return None


class Run:
    """One drain of the signal queue for one follower. `scope` names the cause in idempotency keys."""

    def __init__(
        self,
        book: Compiled,
        ctx: Context,
        scope: str,
        now: datetime | None = None,
        decided: frozenset[str] | None = None,
    ) -> None:
        assert ctx.follower is not None
        self.book, self.ctx, self.scope = book, ctx, scope
        self.session: Session = ctx.session
        self.follower: Follower = ctx.follower
        self.now = now or utcnow()
        self.fired: set[str] = set()
        self.decided = decided  # the reply rules the request fired (None: no request decided anything)
        self.firing: str | None = None  # the rule being fired, named when an action raises
        self.queue: deque[Signal] = deque()
        self._tags: set[str] | None = None
        self._locked = False
        self._notes: list[dict[str, Any]] = []
        self.shared: Shared | None = getattr(ctx, "shared", None)  # the applier batch's (scrm.playbook.shared)
        if self.shared is not None:
            self.ledger = self.shared.ledger(self.follower.id)
            self._tags = self.shared.tag_set(self.follower.id)
        else:  # scores and fired thresholds, read once
            self.ledger = scoring.Ledger(self.session, self.follower.id)

    def emit(self, kind: str, **facts: Any) -> None:
        self.queue.append(Signal(kind, facts))

    def drain(self) -> None:
        """Run until no signal is left. Reads and writes go through Core statements built once; ORM changes
        (the follower's stage and owner) wait for the commit's flush, so autoflush is off; the timeline rows are
        inserted together at the end.
        """
        with self.session.no_autoflush:
            self._drain()
        if self.shared is not None:  # written once for the whole batch
            self.shared.notes += self._notes
        else:
            self.ledger.flush()
            if self._notes:
                self.session.connection().execute(insert(Activity.__table__), self._notes)
        self._notes = []

    def note(self, kind: str, data: dict[str, Any]) -> None:
        """A timeline entry, written with the run's others in one statement when the run ends."""
        self._notes.append({"follower_id": self.follower.id, "kind": kind, "at": self.now,
                            "interaction_id": self.ctx.interaction_id, "data": data})  # fmt: skip

    def _drain(self) -> None:
        budget = MAX_SIGNALS
        while self.queue:
            budget -= 1
            if budget < 0:
                log.warning("playbook run for %s stopped after %d signals", self.follower.openid, MAX_SIGNALS)
                self.queue.clear()
                return
            signal = self.queue.popleft()
            for rule, bound in self.book.matches(signal):
                if rule.name in self.fired:
                    continue
                self.lock()
                if self._fires(rule):
                    self._fire(rule, {**signal.facts, **bound})

    def _fires(self, rule: CompiledRule) -> bool:
        """A reply rule fires as the request decided, whatever changed since: its effects match what was said."""
        if rule.replies and self.decided is not None:
            return rule.name in self.decided
        return self.holds(rule.condition)

    def _fire(self, rule: CompiledRule, facts: dict[str, Any]) -> None:
        self.fired.add(rule.name)
        self.firing = rule.name
        values = {k: v for k, v in facts.items() if v is not None}
        values["openid"] = self.follower.openid
        for i, action in enumerate(rule.rule.do):
            ACTIONS[action.verb](self, rule, i, action, values)

    def lock(self) -> None:
        """Serialise runs for one follower (caps, running totals, arms); SQLite's BEGIN IMMEDIATE already does, and an
        applier batch locked its followers when it loaded them."""
        if self._locked:
            return
        self._locked = True
        if self.shared is not None or self.session.get_bind().dialect.name != "postgresql":
            return
        row = self.session.connection().execute(_LOCK, {"fid": self.follower.id}).one()
        state = inspect(self.follower)
        for name, value in row._mapping.items():  # what a concurrent run committed, unless this visit changed it
            if not state.attrs[name].history.has_changes():
                set_committed_value(self.follower, name, value)

    # --- conditions ---------------------------------------------------------------------------------------------

    def tags(self) -> set[str]:
        if self._tags is None:
            self._tags = tags.names(self.session, self.follower.id)
        return self._tags

    def holds(self, cond: Condition | None) -> bool:
        return conditions.holds(
            self.book, cond, self.follower, self.tags, lambda model: self.ledger.current(model, self.now)
        )

    # --- changes (each records a timeline entry and signals what it changed) ------------------------------------

    def add_tag(self, name: str, rule: str) -> None:
        if not 0 < len(name) <= tags.MAX_NAME:
            log.warning("rule %r: tag %r skipped (1-%d characters)", rule, name, tags.MAX_NAME)
            return
        if self._tags is not None and name in self._tags:
            return
        if self.shared is not None:  # the batch's tag set is the follower's: the tag is new, written with the batch
            self.shared.attach(self.follower.id, name, self.now)
        elif not tags.add(self.session, self.follower.id, name, self.now):
            return
        if self._tags is not None:
            self._tags.add(name)
        self.note("tag_added", {"tag": name, "rule": rule})
        self.emit("tag_added", tag=name)
        if name.startswith(CHECKIN):
            parts = name.split(":")
            self.emit("checked_in", event=parts[1], booth=parts[2] if len(parts) > 2 else None)

    def remove_tag(self, name: str, rule: str) -> None:
        if not self._removed(name):
            return
        if self._tags is not None:
            self._tags.discard(name)
        self.note("tag_removed", {"tag": name, "rule": rule})
        self.emit("tag_removed", tag=name)

    def _removed(self, name: str) -> bool:
        """Untag in the database, unless the batch's own pending tag is taken back (or the batch knows it is absent)."""
        if self.shared is not None:
            if self.shared.detach(self.follower.id, name):
                return True
            if self._tags is not None and name not in self._tags:
                return False
        return tags.remove(self.session, self.follower.id, name) is not None

    def scored(self, rule: str, award: scoring.Award) -> None:
        self.note("score", {"model": award.model, "points": award.points, "rule": rule,
                                "score": round(award.post, 2)})  # fmt: skip
        thresholds = self.book.thresholds.get(award.model)
        if thresholds:
            fired = self.ledger.fired(award.model)
            fire, rearm = stages.crossings(award.pre, award.post, thresholds, fired)
            if fire or rearm:
                if self.shared is not None:
                    self.shared.arms(self.follower.id, award.model, fire, rearm, self.now)
                else:
                    stages.save(self.session, self.follower.id, award.model, fire, rearm, self.now)
                fired.difference_update(rearm)
                fired.update(fire)
            for threshold in fire:
                facts = {"model": award.model, "threshold": threshold, "score": round(award.post, 2)}
                self.note("score_crossed", {**facts, "rule": rule})
                self.emit("score_crossed", **facts)
        if award.model == self.book.primary:
            self.restage(award.post, reason="score", rule=rule)

    def restage(self, score: float, reason: str, rule: str | None = None) -> None:
        """Move the follower to the stage `score` earns (forward; backward only with `demote`)."""
        spec = self.book.book.stages
        new = stages.target(self.book.stages, self.follower.stage, score, spec.margin, spec.demote)
        if new != self.follower.stage:
            steps = stages.path(self.book.stages, self.follower.stage, new)
            self.move(steps, reason=reason, rule=rule, score=round(score, 2))

    def set_stage(self, name: str, rule: str) -> None:
        old = self.follower.stage
        if name != old:
            up = stages.index(self.book.stages, name) > stages.index(self.book.stages, old)
            self.move([stages.Step(old, name, "up" if up else "down")], reason="rule", rule=rule)

    def move(self, steps: list[stages.Step], reason: str, rule: str | None, score: float | None = None) -> None:
        for step in steps:
            self.follower.stage = step.new
            data = {"from": step.old, "to": step.new, "direction": step.direction, "reason": reason, "rule": rule}
            self.note("stage_changed", {**data, "score": score} if score is not None else data)
            self.emit("stage_changed", stage=step.new, direction=step.direction, **{"from": step.old})
            # an owned lead's owner hears of mql first; an unowned one is assigned next, and that notice says it
            notices.stage_reached(self.ctx, self.follower, step.new, step.direction, self.scope)
            assign_effects.stage_reached(self.ctx, self.follower, step.new, step.direction, self.now, self.scope)

    def key(self, rule: CompiledRule, index: int) -> str:
        """The idempotency key of a rule's outbound work: `rule:<name>:<interaction id or periodic scope>`."""
        base = f"rule:{rule.name}:{self.scope}"
        return f"{base}:{index}" if rule.templates > 1 else base


# --- actions ----------------------------------------------------------------------------------------------------


def _tag(run: Run, rule: CompiledRule, i: int, action: Action, values: dict[str, Any]) -> None:
    for text in action.tag or []:
        name = render(text, values)
        if name is not None:
            run.add_tag(name, rule.name)


def _untag(run: Run, rule: CompiledRule, i: int, action: Action, values: dict[str, Any]) -> None:
    for text in action.untag or []:
        name = render(text, values)
        if name is not None:
            run.remove_tag(name, rule.name)


def _score(run: Run, rule: CompiledRule, i: int, action: Action, values: dict[str, Any]) -> None:
    model = action.model or run.book.primary
    cap = action.cap
    got = run.ledger.award(
        model=model,
        half_life=run.book.half_lives[model],
        points=action.score or 0,
        rule=rule.name,
        interaction_id=run.ctx.interaction_id,
        dedup=f"{rule.name}:{i}:{run.scope}",
        cap=scoring.CapSpec(cap.once, cap.per_day, cap.total) if cap else None,
        now=run.now,
    )
    if got is not None:
        run.scored(rule.name, got)


def _stage(run: Run, rule: CompiledRule, i: int, action: Action, values: dict[str, Any]) -> None:
    run.set_stage(action.stage or "", rule.name)


def _assign(run: Run, rule: CompiledRule, i: int, action: Action, values: dict[str, Any]) -> None:
    who = render(action.assign or "", values)
    follower = run.follower
    if not who or (follower.owner_id is not None and not action.overwrite):
        return
    rep = _rep(run.session, who)
    if rep is not None and rep != follower.owner_id:  # counted, recorded and told like every assignment
        assign_effects.assign(run.ctx, follower, rep, run.now, rule.name, run.scope)


def _rep(session: Session, who: str) -> int | None:
    """A rep by id (`rep:<id>` scenes: ASCII digits), else by WeCom userid (created on first sight, like callbacks
    do). None for an id no rep has (`rep:999`, one beyond BIGINT) and for text no userid can be (`rep:³`)."""
    from scrm.ingest import rep_id

    if who.isascii() and who.isdigit():
        number = ascii_int(who, 1)
        return session.scalar(select(Rep.id).where(Rep.id == number)) if number is not None else None
    return rep_id(session, who) if USERID.fullmatch(who) else None


def answer(reply: Any, values: dict[str, Any]) -> dict[str, Any] | None:
    """A reply action filled in: {"text"} or {"articles"}; None when a placeholder has no value."""
    if reply.text is not None:
        text = render(reply.text, values)
        return {"text": text} if text else None
    articles = []
    for art in reply.articles or []:
        filled = {f: render(getattr(art, f), values) for f in ("title", "description", "url")}
        if any(v is None for v in filled.values()):
            return None
        articles.append({**filled, "image": art.image})
    return {"articles": articles}


def _reply(run: Run, rule: CompiledRule, i: int, action: Action, values: dict[str, Any]) -> None:
    """The reply itself went out with the request's answer (scrm.playbook.decide); kept for callers' records."""
    found = answer(action.reply, values)
    if found is not None:
        run.ctx.answers.append(found)


def _send_template(run: Run, rule: CompiledRule, i: int, action: Action, values: dict[str, Any]) -> None:
    spec = action.send_template
    assert spec is not None
    data = {k: render(v, values) for k, v in spec.data.items()}
    url = render(spec.url, values) if spec.url else None
    if any(v is None for v in data.values()) or (spec.url and url is None):
        return
    key = run.key(rule, i)
    args: dict[str, Any] = {"openid": run.follower.openid, "template": spec.template, "data": data, "key": key}
    if url:
        args["url"] = url
    run.ctx.enqueue("template.send", args, key=f"template.send:{key}")


def _notify_owner(run: Run, rule: CompiledRule, i: int, action: Action, values: dict[str, Any]) -> None:
    """A `rule` notice keyed by rule and run (`handoff`: one per follower and run, whichever rule raised it)."""
    spec = action.notify_owner
    reason = render(spec.reason if spec else "", values) or ""
    kind = spec.kind if spec else "rule"
    crossing = f"{rule.name}:{run.scope}" if kind == "rule" else run.scope
    if not notices.notify_owner(run.ctx, run.follower, kind, crossing, reason, rule=rule.name):
        run.note("notify_skipped", {"rule": rule.name, "reason": reason, "why": "no owner"})  # nobody to tell


def _start_journey(run: Run, rule: CompiledRule, i: int, action: Action, values: dict[str, Any]) -> None:
    key = f"rule:{rule.name}:{run.scope}"
    args: dict[str, Any] = {"openid": run.follower.openid, "journey": action.start_journey, "key": key}
    context = {k: str(values[k]) for k in JOURNEY_CONTEXT if values.get(k) is not None}
    if context:  # the run's steps may name them ({event}), and event-relative waits read the event
        args["context"] = context
    run.ctx.enqueue("journey.start", args, key=f"journey.start:{key}")


ACTIONS = {
    "tag": _tag,
    "untag": _untag,
    "score": _score,
    "stage": _stage,
    "assign": _assign,
    "reply": _reply,
    "send_template": _send_template,
    "notify_owner": _notify_owner,
    "start_journey": _start_journey,
}
