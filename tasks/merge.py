"""The "contact.merge" job: merge the identities that share a unionid into one contact (scrm.merge).

Queued by the profile fetch (tasks/profile.py) when the unionid it wrote is another identity's too. Idempotent:
a repeated or concurrent run finds the identities merged (or an admin's undo keeping them apart) and does nothing.
"""

from __future__ import annotations

from foundation.services import services
from scrm import merge
from tasks.registry import task


@task("contact.merge")
def merge_unionid(unionid: str) -> dict[str, list[int]]:
    with services().db.transaction() as session:
        done = merge.by_unionid(session, unionid)
        return {"merges": [m.id for m in done]}
