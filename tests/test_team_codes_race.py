"""Two appliers draining team-code scans at once (PostgreSQL: each its own connection, splitting the follower
partitions; SQLite: taking turns on the write lock): caps hold exactly and the weights still share exactly."""

from __future__ import annotations

import os
import threading
import time
from collections import Counter

from sqlalchemy import func, select

from foundation.db import Database
from scrm.applier import APPLIER_NAME, apply_batch, backlog
from scrm.assignment_models import RepDayLoad
from scrm.code_models import ContactCode
from tests.assignment_kit import Clock, add_rep, failed, owners, scan, svc

PG = os.environ.get("DATABASE_URL", "").startswith("postgresql")


def team_code(app, members: list[dict], backup: int | None = None) -> int:
    """A team code row without its WeChat halves: the scans are what is under test."""
    with svc(app).db.transaction() as s:
        code = ContactCode(kind="team", name="race", members=members, backup_rep_id=backup, tags=[], wecom_users=[])
        s.add(code)
        s.flush()
        return code.id


def race(app) -> Counter:
    """Two appliers drain what is pending, in batches of 25; how many interactions each applied."""
    url, start, done = svc(app).db.url, threading.Barrier(2), Counter()
    errors: list[BaseException] = []

    def run(name: str) -> None:
        mine = Database(url, name=APPLIER_NAME)
        try:
            start.wait()
            while True:
                report = apply_batch(mine, 25)
                done[name] += report.applied + report.failed
                if not (report.applied or report.failed):
                    with mine.sessions() as s:
                        if backlog(s)[0] == 0:
                            return
                    time.sleep(0.005)  # the peer holds what is left
        except BaseException as exc:  # reported below
            errors.append(exc)
        finally:
            mine.dispose()

    threads = [threading.Thread(target=run, args=(n,)) for n in ("a", "b")]
    for t in threads:
        t.start()
    for t in threads:
        t.join(180)
    assert not errors, errors
    return done


def test_two_appliers_respect_caps_and_weights(app, client):
    scans = 400
    capped = [add_rep(app, f"c{i}", daily_cap=30) for i in range(3)]
    backup = add_rep(app, "backup")
    light, heavy = add_rep(app, "light"), add_rep(app, "heavy", weight=3)
    full = team_code(app, [{"rep_id": r} for r in capped], backup)
    shared = team_code(app, [{"rep_id": light}, {"rep_id": heavy}])
    tick = Clock()
    for i in range(scans):  # interleaved: every batch picks from both pools
        code = full if i % 2 else shared
        scan(client, f"o{i}", f"team:{code}", tick(), apply=False)
    done = race(app)
    assert sum(done.values()) == scans and failed(app) == []
    if PG:
        assert min(done.values()) > 0, f"one applier did everything: {dict(done)}"
    got = owners(app)
    assert [got[r] for r in capped] == [30, 30, 30]  # never a 31st: picks are serialised
    assert got[backup] == scans // 2 - 90
    assert (got[light], got[heavy]) == (scans // 8, 3 * scans // 8)  # one global order of picks: exact
    with svc(app).db.sessions() as s:
        query = select(RepDayLoad.rep_id, func.sum(RepDayLoad.assigned)).group_by(RepDayLoad.rep_id)
        counted = {rep: int(n) for rep, n in s.execute(query)}
    assert counted == {rep: n for rep, n in got.items() if rep is not None}
