"""What an admin does to runs of an old journey version: stop them, or move them to another version. Both are set
statements over the journey's runs, in the caller's transaction; neither touches steps already executed."""

from __future__ import annotations

from collections import Counter
from typing import Any

from sqlalchemy import func, select, update
from sqlalchemy.orm import Session

from foundation.clock import utcnow
from scrm import journey_defs, journey_walk
from scrm.journey_models import EXITED, RUNNING, STOPPED, JourneyRun


class JourneyAdminError(ValueError):
    """A version that does not exist, or a request that makes no sense; the message says which."""


def _running(name: str, version: int):
    return (JourneyRun.journey == name, JourneyRun.version == version, JourneyRun.state == RUNNING)


def stop(session: Session, name: str, version: int, by: str | None = None) -> int:
    """End every running run of `name` at `version` (state stopped); how many."""
    if journey_defs.definition(session, name, version) is None:
        raise JourneyAdminError(f"journey {name!r} has no version {version}")
    reason = f"stopped by {by}" if by else "stopped"
    now = utcnow()
    done = session.execute(
        update(JourneyRun).where(*_running(name, version))
        .values(state=STOPPED, reason=reason, due_at=None, updated_at=now)
        .execution_options(synchronize_session=False)
    )  # fmt: skip
    return int(done.rowcount or 0)


def migrate(session: Session, name: str, source: int, target: int) -> dict[str, Any]:
    """Move running runs of `source` to `target`: a run keeps its position (the path of its next step) when
    `target` has a step there, else it exits ("no step <path> in version <target>"). Counts of both."""
    if source == target:
        raise JourneyAdminError("--from and --to are the same version")
    new = journey_defs.definition(session, name, target)
    if journey_defs.definition(session, name, source) is None or new is None:
        raise JourneyAdminError(f"journey {name!r} has no version {source if new else target}")
    positions = session.execute(
        select(JourneyRun.position, func.count()).where(*_running(name, source)).group_by(JourneyRun.position)
    ).all()
    moved, exited = Counter[str](), Counter[str]()
    now = utcnow()
    for path, n in positions:
        fits = path is None or journey_walk.at(new, path) is not None
        values: dict[str, Any] = {"version": target, "updated_at": now}
        if not fits:
            values.update(state=EXITED, reason=f"no step {path} in version {target}", due_at=None)
        session.execute(
            update(JourneyRun).where(*_running(name, source), JourneyRun.position == path).values(**values)
            .execution_options(synchronize_session=False)
        )  # fmt: skip
        (moved if fits else exited)[str(path)] += n
    return {"moved": sum(moved.values()), "exited": sum(exited.values()), "exited_at": dict(exited)}
