"""The journey jobs: "journey.start" (written by the playbook's `start_journey`), "journey.tick" (the scheduler's
step runner: due runs in batches, and segment entries) and "journey.step" (delayed rows of runs started before
migration 0019). The work is scrm.journeys; outbox rows it writes are pushed after commit."""

from __future__ import annotations

import time
from typing import Any

from foundation.services import services
from scrm import journey_entry, journey_recheck, journeys
from tasks.queue import push
from tasks.registry import GiveUp, task
from tasks.send import rules

BATCH = 500  # runs per transaction
BUDGET = 4.0  # seconds one tick may run (the scheduler calls it every 5 s)


@task("journey.start")
def journey_start(openid: str, journey: str, key: str, context: dict[str, Any] | None = None) -> dict[str, Any]:
    svc = services()
    with svc.db.transaction() as session:
        out = journeys.start(session, openid, journey, key, context=context, rules=rules())
    if out is None:
        raise GiveUp(f"no follower {openid!r}")
    push(svc.redis_slow, out.outbox_ids)
    return {"run": out.run_id, "state": out.state}


@task("journey.step")
def journey_step(run_id: int, index: int) -> dict[str, Any]:
    svc = services()
    with svc.db.transaction() as session:
        out = journeys.step(session, run_id, index, rules=rules())
    push(svc.redis_slow, out.outbox_ids)
    return {"run": out.run_id, "state": out.state}


def run_batch(batch: int = BATCH) -> journeys.Outcome:
    """One transaction of due runs; outbox rows pushed after commit (the sweeper backs that up)."""
    svc = services()
    with svc.db.transaction() as session:
        out = journeys.run_due(session, limit=batch, rules=rules())
    push(svc.redis_slow, out.outbox_ids)
    return out


def tick(batch: int = BATCH, budget: float = BUDGET) -> dict[str, int]:
    """Segment entries, then due runs batch after batch until none is due or the budget is spent, then (at most
    every journey_recheck.EVERY) the goals and exits of waiting runs whose follower changed."""
    svc = services()
    with svc.db.transaction() as session:
        entered = journey_entry.enter_segments(session)
    done = {"entered": entered, "runs": 0, "steps": 0}
    deadline = time.monotonic() + budget
    while time.monotonic() < deadline:
        out = run_batch(batch)
        done["runs"] += out.runs
        done["steps"] += out.steps
        if out.runs < batch:
            break
    if time.monotonic() < deadline:
        done["rechecked"] = recheck_waiting(batch)
    return done


_LAST_RECHECK = [float("-inf")]


def recheck_waiting(batch: int = BATCH) -> int:
    """One batch of waiting runs' goals and exits (scrm.journey_recheck), unless this process did one less than
    `EVERY` ago; the runs ended."""
    if time.monotonic() - _LAST_RECHECK[0] < journey_recheck.EVERY.total_seconds():
        return 0
    _LAST_RECHECK[0] = time.monotonic()
    with services().db.transaction() as session:
        return journey_recheck.recheck(session, limit=batch, rules=rules())["ended"]
