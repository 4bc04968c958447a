"""Where follower reads get their scores. The playbook's scoring module replaces `totals` when it loads."""

from __future__ import annotations

from collections.abc import Callable

from sqlalchemy.orm import Session

Totals = Callable[[Session, list[int]], dict[int, dict[str, float]]]


def _no_models(session: Session, follower_ids: list[int]) -> dict[int, dict[str, float]]:
    return {}


totals: Totals = _no_models
