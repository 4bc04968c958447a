"""What a rep does from a lead card: "followed up" (with a note), set the stage, add or remove a tag.

Each action runs in the caller's one short transaction: the lead is locked and its owner checked in that transaction
(a lead reassigned a moment ago is not the rep's any more: NotYours), an Activity of kind "rep_action" records it
on the timeline (`{"rep": id, "action": ..., ...}`: what the lead pool reads as "the owner acted"), and stage and tag
changes go through the rules engine (scrm.playbook.engine.Run in a `Quiet` context), exactly as a rule's own
actions do: the same timeline entries (`stage_changed` with reason "rep", `tag_added` / `tag_removed` with rule
`rep:<id>`), the same triggers (`tag_added`, `stage_changed` rules fire), the same notices and outbox keys. The
outbox rows it queued are returned, to be announced after commit.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime

from sqlalchemy import select
from sqlalchemy.orm import Session

from foundation.clock import utcnow
from scrm import rep_view, stages, tags
from scrm.models import Activity, Follower
from scrm.playbook import store
from scrm.playbook.compiled import Compiled
from scrm.playbook.engine import Quiet, Run
from scrm.playbook.grammar import Playbook

KIND = "rep_action"
ACTIONS = ("followed_up", "stage", "tag_added", "tag_removed")
MAX_NOTE = 1000
_DEFAULT = Compiled(Playbook(), "")  # before any playbook is loaded: the default stages, no rules


class NotYours(LookupError):
    """The lead does not exist or is not the rep's (the pages answer 404)."""


class Refused(ValueError):
    """Input the action cannot take; the message says why (the pages answer 400)."""


@dataclass
class Done:
    activity_id: int
    changed: bool
    outbox_ids: list[int] = field(default_factory=list)


def _clean(text: str | None, limit: int, what: str, lines: bool = False) -> str:
    """`text` stripped; Refused when too long, or holding control characters (newlines only in `lines` text) or
    lone surrogates (not UTF-8: no column stores them)."""
    text = (text or "").strip()
    if len(text) > limit:
        raise Refused(f"{what} has at most {limit} characters")
    allowed = "\n\r\t" if lines else ""
    if any((ord(ch) < 32 and ch not in allowed) or 0xD800 <= ord(ch) <= 0xDFFF for ch in text):
        raise Refused(f"{what} may not contain control characters")
    return text


def _locked(session: Session, rep_id: int, follower_id: int) -> Follower:
    """The lead, locked for this transaction (PostgreSQL: FOR NO KEY UPDATE, as the rules engine takes it)."""
    if not 0 < follower_id <= rep_view.MAX_ID:
        raise NotYours(follower_id)
    query = select(Follower).where(
        Follower.id == follower_id, Follower.owner_id == rep_id, Follower.merged_into.is_(None)
    )
    found = session.scalar(query.with_for_update(key_share=True))
    if found is None:
        raise NotYours(follower_id)
    return found


def _record(session: Session, follower: Follower, data: dict, now: datetime) -> Activity:
    row = Activity(follower_id=follower.id, kind=KIND, at=now, data=data)
    session.add(row)
    session.flush()
    return row


def followed_up(session: Session, rep_id: int, follower_id: int, note: str = "", now: datetime | None = None) -> Done:
    """The rep says they followed the lead up, optionally how."""
    note = _clean(note, MAX_NOTE, "the note", lines=True)
    follower = _locked(session, rep_id, follower_id)
    data = {"rep": rep_id, "action": "followed_up", **({"note": note} if note else {})}
    return Done(_record(session, follower, data, now or utcnow()).id, True)


def set_stage(session: Session, rep_id: int, follower_id: int, stage: str, now: datetime | None = None) -> Done:
    """Move the lead to `stage`, one of the stage model's; a stage change fires the playbook's triggers."""
    book = store.active(session) or _DEFAULT
    if stage not in book.stage_names():
        raise Refused(f"unknown stage {stage!r}: one of {', '.join(book.stage_names())}")
    now = now or utcnow()
    follower = _locked(session, rep_id, follower_id)
    old = follower.stage
    data = {"rep": rep_id, "action": "stage", "from": old, "to": stage, "changed": stage != old}
    done = Done(_record(session, follower, data, now).id, stage != old)
    if done.changed:
        up = stages.index(book.stages, stage) > stages.index(book.stages, old)
        step = stages.Step(old, stage, "up" if up else "down")
        done.outbox_ids = _run(session, book, follower, done, now, lambda run: run.move([step], "rep", None))
    return done


def tag(session: Session, rep_id: int, follower_id: int, name: str, add: bool, now: datetime | None = None) -> Done:
    """Add (or remove) a tag; an added tag fires the playbook's `tag_added` rules, a removed one `tag_removed`."""
    name = _clean(name, tags.MAX_NAME, "a tag")
    if not name:
        raise Refused("a tag has at least one character")
    now = now or utcnow()
    follower = _locked(session, rep_id, follower_id)
    has = name in tags.names(session, follower.id)
    action = "tag_added" if add else "tag_removed"
    data = {"rep": rep_id, "action": action, "tag": name, "changed": has != add}
    done = Done(_record(session, follower, data, now).id, has != add)
    if done.changed:
        book, rule = store.active(session) or _DEFAULT, f"rep:{rep_id}"
        change = (lambda run: run.add_tag(name, rule)) if add else (lambda run: run.remove_tag(name, rule))
        done.outbox_ids = _run(session, book, follower, done, now, change)
    return done


def _run(
    session: Session, book: Compiled, follower: Follower, done: Done, now: datetime, change: Callable[[Run], None]
) -> list[int]:
    """One engine run for the change: scoped by the rep_action's id, so its outbox keys are its own."""
    ctx = Quiet(session, follower)
    run = Run(book, ctx, scope=f"{KIND}:{done.activity_id}", now=now)
    change(run)
    run.drain()
    return ctx.outbox_ids
