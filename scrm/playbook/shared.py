"""What the engine runs of one applier batch share: each follower's score ledger and tag names read once for the
whole batch (one statement each); tags attached, outbox rows, score events, totals and timeline rows written once at
its end (one statement each).

Runs of one follower follow each other in the batch and see each other's changes through these objects; nothing
else writes the follower meanwhile (the applier holds the follower's partition, SQLite its write lock).
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import insert
from sqlalchemy.orm import Session

from foundation.sql import insert_ignore
from scrm import stages, tags
from scrm.models import Activity, Outbox
from scrm.playbook.compiled import Compiled
from scrm.score_caps import CapBook
from scrm.scoring import Ledger, fold_exact


class Shared:
    def __init__(
        self,
        session: Session,
        follower_ids: list[int],
        now: datetime,
        books: list[Compiled],
        caps: tuple[set[str], set[str]] = (set(), set()),
    ) -> None:
        """`caps`: capped rules beyond the books' own (keyed, counted), e.g. journeys' `journey:<name>`."""
        self.session = session
        self.follower_ids = follower_ids
        self.parts: dict[str, Any] = {}  # capabilities' own batch state, each with a flush() (scrm.event_checkins)
        keyed = {r for book in books for r in book.keyed_caps} | caps[0]
        counted = {r for book in books for r in book.counted_caps} | caps[1]
        self.caps = CapBook(session, follower_ids, now, keyed, counted)
        self.ledgers = Ledger.preload(session, follower_ids, self.caps)
        self.tags = tags.names_of(session, follower_ids)
        self.notes: list[dict[str, Any]] = []
        self.attached: dict[tuple[int, str], datetime] = {}  # tags the batch added, not written yet
        self.queued: dict[str, dict[str, Any]] = {}  # outbox rows by key (or a unique stand-in), not written yet
        self.outbox_ids: list[int] = []
        self.fired: dict[tuple[int, str, float], datetime] = {}  # thresholds the batch disarmed, not written yet
        self.rows: dict[tuple[Any, tuple[str, ...]], list[dict[str, Any]]] = {}  # insert_later's, by table

    def ledger(self, follower_id: int) -> Ledger:
        found = self.ledgers.get(follower_id)
        if found is None:
            found = self.ledgers[follower_id] = Ledger(self.session, follower_id, self.caps)
        return found

    def tag_set(self, follower_id: int) -> set[str]:
        return self.tags.setdefault(follower_id, set())

    def attach(self, follower_id: int, name: str, at: datetime) -> None:
        """Tag a follower the batch's tag set says lacks the tag."""
        self.attached[(follower_id, name)] = at

    def detach(self, follower_id: int, name: str) -> bool:
        """Take back a tag this batch attached and has not written: True when there was one."""
        return self.attached.pop((follower_id, name), None) is not None

    def arms(self, follower_id: int, model: str, fire: list[float], rearm: list[float], at: datetime) -> None:
        """As stages.save: re-arm first (a threshold this batch fired is simply forgotten), then disarm."""
        stored = [t for t in rearm if self.fired.pop((follower_id, model, t), None) is None]
        if stored:
            stages.save(self.session, follower_id, model, [], stored, at)
        for threshold in fire:
            self.fired.setdefault((follower_id, model, threshold), at)

    def enqueue(self, task: str, args: dict[str, Any], key: str | None, now: datetime) -> None:
        """An outbox row, written with the batch; with a `key`, once (a key seen before is ignored by the insert)."""
        slot = key if key is not None else f"\x00{len(self.queued)}"
        self.queued.setdefault(slot, {"task": task, "args": args, "key": key, "created_at": now, "run_after": None,
                                      "attempts": 0})  # fmt: skip

    def insert_later(self, model: Any, unique: tuple[str, ...], row: dict[str, Any]) -> None:
        """A row of an effect's own table, written with the batch in one statement per table; a row whose `unique`
        key exists already (a re-applied interaction) is skipped."""
        self.rows.setdefault((model, unique), []).append(row)

    def flush(self) -> None:
        """Write what the batch's runs left pending: tags, outbox rows, score events and totals, timeline rows."""
        conn = self.session.connection()
        for part in self.parts.values():
            part.flush()
        self.parts = {}
        tags.attach_many(self.session, [{"fid": f, "name": n, "at": at} for (f, n), at in self.attached.items()])
        self.attached = {}
        if self.queued:
            stmt = insert_ignore(self.session, Outbox, ["key"], "id")
            self.outbox_ids += conn.execute(stmt, list(self.queued.values())).scalars().all()
            self.queued = {}
        stages.save_fired(self.session, [{"follower_id": f, "model": m, "threshold": t, "fired_at": at}
                                         for (f, m, t), at in self.fired.items()])  # fmt: skip
        self.fired = {}
        self.caps.flush()
        totals = [row for ledger in self.ledgers.values() for row in ledger.pending()]
        if totals:
            conn.execute(fold_exact(self.session.get_bind().dialect.name), totals)
        if self.notes:
            conn.execute(insert(Activity.__table__), self.notes)
            self.notes = []
        for (model, unique), rows in self.rows.items():
            conn.execute(insert_ignore(self.session, model, list(unique)), rows)
        self.rows = {}
