"""Where follower reads get their scores: the decayed totals kept by scrm.scoring (imported lazily, since
scrm.scoring itself reads scrm.followers)."""

from __future__ import annotations

from collections.abc import Callable

from sqlalchemy.orm import Session

Totals = Callable[[Session, list[int]], dict[int, dict[str, float]]]


def _decayed(session: Session, follower_ids: list[int]) -> dict[int, dict[str, float]]:
    from scrm.scoring import totals as decayed_totals

    return decayed_totals(session, follower_ids)


totals: Totals = _decayed
