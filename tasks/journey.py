"""The journey jobs: "journey.start" (written by the playbook's `start_journey`) and "journey.step" (a run's next
stretch after a wait, a delayed outbox row). The work is scrm.journeys; outbox rows it writes that are due now are
pushed after commit (the sweeper pushes delayed ones when they come due)."""

from __future__ import annotations

from typing import Any

from foundation.services import services
from scrm import journeys
from tasks.queue import push
from tasks.registry import GiveUp, task


@task("journey.start")
def journey_start(openid: str, journey: str, key: str) -> dict[str, Any]:
    svc = services()
    with svc.db.transaction() as session:
        out = journeys.start(session, openid, journey, key)
    if out is None:
        raise GiveUp(f"no follower {openid!r}")
    push(svc.redis_slow, out.outbox_ids)
    return {"run": out.run_id, "state": out.state}


@task("journey.step")
def journey_step(run_id: int, index: int) -> dict[str, Any]:
    svc = services()
    with svc.db.transaction() as session:
        out = journeys.step(session, run_id, index)
    push(svc.redis_slow, out.outbox_ids)
    return {"run": out.run_id, "state": out.state}
