"""What the engine runs of one applier batch share: each follower's score ledger and tag names read once for the
whole batch (one statement each), totals and timeline rows written once at its end (one statement each).

Runs of one follower follow each other in the batch and see each other's changes through these objects; nothing
else writes the follower meanwhile (the applier holds the follower's partition, SQLite its write lock).
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import insert
from sqlalchemy.orm import Session

from scrm import tags
from scrm.models import Activity
from scrm.score_caps import CapBook
from scrm.scoring import Ledger, fold_exact


class Shared:
    def __init__(self, session: Session, follower_ids: list[int], now: datetime) -> None:
        self.session = session
        self.caps = CapBook(session, follower_ids, now)
        self.ledgers = Ledger.preload(session, follower_ids, self.caps)
        self.tags = tags.names_of(session, follower_ids)
        self.notes: list[dict[str, Any]] = []

    def ledger(self, follower_id: int) -> Ledger:
        found = self.ledgers.get(follower_id)
        if found is None:
            found = self.ledgers[follower_id] = Ledger(self.session, follower_id, self.caps)
        return found

    def tag_set(self, follower_id: int) -> set[str]:
        return self.tags.setdefault(follower_id, set())

    def flush(self) -> None:
        """Write what the batch's runs left pending: score events and totals, then timeline rows."""
        conn = self.session.connection()
        self.caps.flush()
        totals = [row for ledger in self.ledgers.values() for row in ledger.pending()]
        if totals:
            conn.execute(fold_exact(self.session.get_bind().dialect.name), totals)
        if self.notes:
            conn.execute(insert(Activity.__table__), self.notes)
            self.notes = []
