"""A journey's numbers, per version and per step: how many entered each step, are waiting at it, went each way
(yes/no, done/skipped, happened/timeout), and how many runs reached the goal or exited (and where). Two grouped
queries over indexed tables, whatever the number of runs."""

from __future__ import annotations

from collections import defaultdict
from typing import Any

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from scrm import journey_defs, journey_walk
from scrm.journey_models import CONVERTED, EXITED, RUNNING, STATES, JourneyRun, JourneyStep

_R, _S = JourneyRun.__table__.c, JourneyStep.__table__.c


def _steps(session: Session, name: str, version: int | None) -> dict[tuple[int | None, str], dict[str, int]]:
    query = (
        select(_R.version, _S.path, _S.outcome, func.count())
        .select_from(JourneyStep.__table__.join(JourneyRun.__table__, _S.run_id == _R.id))
        .where(_R.journey == name)
        .group_by(_R.version, _S.path, _S.outcome)
    )
    if version is not None:
        query = query.where(_R.version == version)
    out: dict[tuple[int | None, str], dict[str, int]] = defaultdict(dict)
    for v, path, outcome, n in session.execute(query):
        out[(v, path)][outcome] = n
    return out


def _runs(session: Session, name: str, version: int | None) -> list[Any]:
    query = (
        select(_R.version, _R.state, _R.position, func.count())
        .where(_R.journey == name)
        .group_by(_R.version, _R.state, _R.position)
    )
    if version is not None:
        query = query.where(_R.version == version)
    return list(session.execute(query))


def _step_rows(journey: Any, v: int | None, done: dict, runs: list[Any]) -> list[dict[str, Any]]:
    at: dict[tuple[str, str], int] = defaultdict(int)
    for rv, state, position, n in runs:
        if rv == v and position is not None:
            at[(state, position)] += n
    listed = [(p, journey_walk.kind(s)) for p, s in journey_walk.paths(journey.steps)] if journey else []
    known = {p for p, _ in listed}
    listed += [(p, "?") for (rv, p) in sorted(done) if rv == v and p not in known]  # a path of a migrated run
    rows = []
    for path, kind in listed:
        ways = done.get((v, path), {})
        rows.append({"path": path, "kind": kind, "entered": sum(ways.values()) + at[(RUNNING, path)], "ways": ways,
                     "waiting": at[(RUNNING, path)], "converted_here": at[(CONVERTED, path)],
                     "exited_here": at[(EXITED, path)]})  # fmt: skip
    return rows


def status(session: Session, name: str, version: int | None = None) -> dict[str, Any]:
    """A run waiting at a step has entered it (its row is written when it leaves).

    {"journey", "versions": [{"version", "runs": {entered, running, finished, converted, exited, stopped},
    "conversion", "steps": [{"path", "kind", "entered", "waiting", "ways": {outcome: n}, "converted_here",
    "exited_here"}]}], "totals": {...}}; `version` limits it to one version. `conversion` = converted / entered."""
    done, runs = _steps(session, name, version), _runs(session, name, version)
    numbers = sorted({r[0] for r in runs} | {v for v, _ in done}, key=lambda v: (v is None, v or 0))
    out = [_version(session, name, v, done, runs) for v in numbers]
    return {"journey": name, "versions": out, "totals": _totals([o["runs"] for o in out])}


def _version(session: Session, name: str, v: int | None, done: dict, runs: list[Any]) -> dict[str, Any]:
    counts = {s: 0 for s in STATES}
    for rv, state, _, n in runs:
        if rv == v:
            counts[state] = counts.get(state, 0) + n
    entered = sum(counts.values())
    journey = journey_defs.definition(session, name, v) if v is not None else None
    return {"version": v, "runs": {"entered": entered, **counts}, "conversion": _rate(counts[CONVERTED], entered),
            "steps": _step_rows(journey, v, done, runs)}  # fmt: skip


def _totals(per_version: list[dict[str, int]]) -> dict[str, Any]:
    keys = ("entered", *STATES)
    total = {k: sum(v.get(k, 0) for v in per_version) for k in keys}
    return {**total, "conversion": _rate(total[CONVERTED], total["entered"])}


def _rate(part: int, whole: int) -> float | None:
    return round(part / whole, 4) if whole else None


def listing(session: Session) -> list[dict[str, Any]]:
    """Every journey with versions or runs: its newest version and run counts by state (one grouped query)."""
    counts: dict[str, dict[str, int]] = defaultdict(lambda: {s: 0 for s in STATES})
    for journey, state, n in session.execute(select(_R.journey, _R.state, func.count()).group_by(_R.journey, _R.state)):
        counts[journey][state] = n
    names = sorted(set(journey_defs.names(session)) | set(counts))
    return [{"journey": n, "version": journey_defs.newest(session, n),
             "runs": {"entered": sum(counts[n].values()), **counts[n]},
             "conversion": _rate(counts[n][CONVERTED], sum(counts[n].values()))} for n in names]  # fmt: skip
