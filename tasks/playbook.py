"""The playbook's periodic job: `inactive` triggers and demotion by decay (scrm.playbook.periodic), every minute."""

from __future__ import annotations

from foundation.services import services
from scrm.playbook import periodic
from tasks.queue import push


def tick(batch: int = 500) -> dict[str, int]:
    """One pass in one transaction; outbox rows the rules wrote are pushed after commit (the sweeper backs it up)."""
    svc = services()
    with svc.db.transaction() as session:
        done = periodic.tick(session, batch=batch)
    push(svc.redis_slow, done.outbox_ids)
    return {"inactive": done.inactive, "demoted": done.demoted, "outbox": len(done.outbox_ids)}
