"""Changes to the knowledge base: a whole file replaced, one entry added, edited or deleted. Each is a new version
written in one short transaction (validation happens before it), announced to every process after commit."""

from __future__ import annotations

from typing import Any

import redis

from foundation.db import Database
from scrm import faq_store
from scrm.faq_source import FIELDS, Entry, FaqError, check


class NotFound(LookupError):
    pass


class Exists(ValueError):
    pass


def replace_all(db: Database, entries: list[Entry], change: str, by: str | None,
                fast: redis.Redis | None) -> dict[str, Any]:  # fmt: skip
    """The whole knowledge base replaced by `entries` (validated by faq_source already)."""
    with db.transaction() as session:
        row = faq_store.store(session, entries, change, by)
        out = faq_store.summary(row)
    faq_store.announce(fast, out["version"], out["checksum"])
    return out


def entry_from(item: Any, entry_id: str | None = None) -> Entry:
    """One entry from an API body (its id from the path when given); FaqError naming the problems."""
    if not isinstance(item, dict):
        raise FaqError(["expected a JSON object with questions and answer"])
    problems = [f"unknown field {k!r}" for k in item if k not in FIELDS]
    problems += [f"{k}: expected a list of strings" for k in ("questions", "tags") if k in item and
                 not isinstance(item[k], list)]  # fmt: skip
    if "id" in item and not isinstance(item["id"], str):
        problems.append("id: expected a string")
    if problems:
        raise FaqError(problems)
    if entry_id is not None:
        if "id" in item and str(item["id"]) != entry_id:
            raise FaqError([f"the body's id {item['id']!r} is not the path's {entry_id!r}"])
        item = {**item, "id": entry_id}
    return check([item])[0]


def change(db: Database, entry: Entry | None, entry_id: str, mode: str, by: str | None,
           fast: redis.Redis | None) -> dict[str, Any]:  # fmt: skip
    """`mode` add (Exists when the id is taken), put (NotFound unless it exists) or delete (NotFound unless it
    exists): the active entries with that one change, as a new version."""
    with db.transaction() as session:
        _, items = faq_store.active_entries(session)
        ids = [e.id for e in items]
        if mode == "add" and entry_id in ids:
            raise Exists(f"FAQ entry {entry_id!r} exists; PUT /api/v1/faq/{entry_id} changes it")
        if mode in ("put", "delete") and entry_id not in ids:
            raise NotFound(f"no FAQ entry {entry_id!r}")
        if mode == "add":
            assert entry is not None
            items = [*items, entry]
        elif mode == "put":
            items = [entry if e.id == entry_id else e for e in items]  # type: ignore[misc]
        else:
            items = [e for e in items if e.id != entry_id]
        row = faq_store.store(session, items, f"{mode} {entry_id}", by)
        out = faq_store.summary(row)
    faq_store.announce(fast, out["version"], out["checksum"])
    return out
