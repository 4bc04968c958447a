#!/usr/bin/env python3
"""Every report over 1,000,000 followers and 10,000,000 interactions, on SQLite and (with --database-url)
PostgreSQL; figures printed, not asserted (target: under 1 s each on PostgreSQL).

The data is generated as bench/segments.py generates it (its followers and tags, its bulk loaders: indexes dropped,
executemany on SQLite or COPY on PostgreSQL, indexes rebuilt, ANALYZE), plus what the reports read: follows,
unfollows and WeCom contact changes with their scenes (rep, team, booth, campaign, ref codes, none) among the
interactions; the stage history, assignments and rep actions on the timeline; deliveries; journey runs. Followers
are created over 180 days. Each report is timed for the last 30 days and for the whole 180 days, as an admin and
as one rep; the indexes each report's statements use are printed (EXPLAIN of the last statement it ran).

    .venv/bin/python bench/reports.py                                   # 100k followers, 1M interactions, SQLite
    .venv/bin/python bench/reports.py --scale 1 --database-url postgresql://u:p@host:5432/db --skip-sqlite
    .venv/bin/python bench/reports.py --reuse --sqlite-path /tmp/rep.db  # time again without regenerating
"""

from __future__ import annotations

import argparse
import json
import random
import sqlite3
import sys
import tempfile
import time
from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "bench"))

import segments as seg  # noqa: E402
from sqlalchemy import func, insert, select  # noqa: E402

from foundation.db import Database  # noqa: E402
from scrm import report_marks, reports  # noqa: E402
from scrm.models import Activity  # noqa: E402
from scrm.report_sql import Window  # noqa: E402
from welead.migrate import upgrade  # noqa: E402

NOW, CHUNK, REPS = seg.NOW, seg.CHUNK, seg.REPS
KINDS = ["text", "click", "view", "subscribe", "scan", "unsubscribe", "wecom_add", "wecom_del", "location"]
KIND_WEIGHTS = [38, 25, 15, 8, 5, 3, 2, 1, 3]
STAGES = ["new", "engaged", "mql", "sql", "customer"]
TEMPLATES = ["welcome", "pricing_intro", "case_study", "event_reminder", "mql_welcome", "we_miss_you"]
STATES, STATE_WEIGHTS = ["delivered", "sent", "failed", "blocked", "queued", "error", "unknown"], [70, 8, 6, 6, 5, 3, 2]
DAY = 86400

TABLES: dict[str, tuple[str, ...]] = {
    "followers": seg.TABLES["followers"],
    "follower_tags": seg.TABLES["follower_tags"],
    "interactions": ("id", "dedup_key", "channel", "kind", "follower_id", "openid", "event_key", "scene", "payload",
                     "at", "received_at", "applied_at"),
    "activities": ("id", "follower_id", "kind", "at", "data"),
    "deliveries": ("id", "key", "follower_id", "openid", "channel", "template", "args", "source", "state", "attempts",
                   "retries", "in_doubt", "created_at", "updated_at"),
    "journey_runs": ("id", "follower_id", "journey", "key", "step", "state", "started_at", "updated_at"),
}  # fmt: skip


def _text(at) -> str:
    return at.strftime("%Y-%m-%d %H:%M:%S.%f")


def _scene(rnd: random.Random) -> str | None:
    r = rnd.random()
    if r < 0.3:
        return None
    if r < 0.5:
        return f"rep:{rnd.randint(1, REPS)}"
    if r < 0.6:
        return f"team:{rnd.randint(1, 12)}"
    if r < 0.8:
        return f"booth:{rnd.choice(['expo2026', 'fair2025'])}:{rnd.choice('ABCDEFGH')}{rnd.randint(1, 9)}"
    return f"{rnd.choice(['campaign', 'ref'])}:{rnd.choice(['spring', 'summer', 'autumn', 'launch'])}"


def born(fid: int):
    """A follower's creation, spread over 180 days (the same in followers and in its timeline)."""
    return NOW - timedelta(seconds=(fid * 2654435761) % (180 * DAY))


def followers(n: int, seed: int) -> Iterator[list[tuple]]:
    """bench/segments.py's followers, created over 180 days (its rows all share one creation time)."""
    for rows in seg.followers(n, seed):
        yield [(*r[:9], _text(born(r[0])), r[10]) for r in rows]


def interactions(n_followers: int, n: int, seed: int) -> Iterator[list[tuple]]:
    rnd = random.Random(seed + 3)
    for start in range(1, n + 1, CHUNK):
        size = min(CHUNK, n + 1 - start)
        kinds, at = rnd.choices(KINDS, KIND_WEIGHTS, k=size), seg.stamps(rnd, size, 180)
        rows = []
        for j in range(size):
            i, kind, fid = start + j, kinds[j], 1 + int(rnd.random() * n_followers)
            channel, key, scene = "oa", None, None
            if kind in ("subscribe", "scan"):
                scene = _scene(rnd)
                key = f"qrscene_{scene}" if scene else None
            elif kind in ("wecom_add", "wecom_del"):
                channel, kind = "wecom", "change_external_contact"
                key = "add_external_contact" if kinds[j] == "wecom_add" else "del_external_contact"
                scene = _scene(rnd) if key.startswith("add") else None
            elif kind == "click":
                key = rnd.choice(seg.MENU)
            rows.append((i, f"{i:040x}", channel, kind, fid, f"o{fid:012d}", key, scene, "{}", at[j], at[j], at[j]))
        yield rows


def activities(n: int, seed: int) -> Iterator[list[tuple]]:
    """Per follower: a stage history up to a random stage, an assignment for 45 %, rep actions for 60 % of those."""
    rnd = random.Random(seed + 20)
    ident = 0
    for start in range(1, n + 1, CHUNK):
        rows = []
        for fid in range(start, min(start + CHUNK, n + 1)):
            at = created = born(fid)
            for k in range(rnd.choices(range(5), [50, 30, 12, 5, 3])[0]):
                at += timedelta(seconds=rnd.expovariate(1 / (2 * DAY)))
                ident += 1
                rows.append((ident, fid, "stage_changed", _text(at), json.dumps(
                    {"from": STAGES[k], "to": STAGES[k + 1], "reason": "score"})))  # fmt: skip
            if rnd.random() < 0.45:
                rep, assigned = rnd.randint(1, REPS), created + timedelta(seconds=rnd.random() * 3600)
                ident += 1
                rows.append((ident, fid, "owner_assigned", _text(assigned), json.dumps({"rep": rep, "via": "code"})))
                for _ in range(rnd.choices([0, 1, 2, 3], [40, 35, 15, 10])[0]):
                    ident += 1
                    acted = assigned + timedelta(seconds=rnd.expovariate(1 / (6 * 3600)))
                    rows.append((ident, fid, "rep_action", _text(acted), json.dumps(
                        {"rep": rep, "action": "followed_up"})))  # fmt: skip
        yield rows


def deliveries(n: int, seed: int) -> Iterator[list[tuple]]:
    rnd = random.Random(seed + 30)
    for start in range(1, n + 1, CHUNK):
        size = min(CHUNK, n + 1 - start)
        at, states = seg.stamps(rnd, size, 180), rnd.choices(STATES, STATE_WEIGHTS, k=size)
        rows = []
        for j in range(size):
            i, fid = start + j, 1 + int(rnd.random() * n)
            rows.append((i, f"d{i}", fid, f"o{fid:012d}", "template", rnd.choice(TEMPLATES), "{}", "rule", states[j],
                         1, 0, False, at[j], at[j]))  # fmt: skip
        yield rows


def journey_runs(n: int, seed: int) -> Iterator[list[tuple]]:
    rnd = random.Random(seed + 40)
    rows = []
    for i in range(1, n // 10 + 1):
        fid, step = 1 + int(rnd.random() * n), rnd.randint(1, 5)
        state = "finished" if step == 5 else rnd.choice(["running", "running", "exited"])
        at = _text(NOW - timedelta(seconds=rnd.random() * 180 * DAY))
        rows.append((i, fid, rnd.choice(["booth-nurture", "welcome-series"]), f"r{i}", step, state, at, at))
    yield rows


def batches(n_followers: int, n_interactions: int, seed: int) -> Iterator[tuple[str, list[tuple]]]:
    yield "reps", [(i, f"rep{i}", f"Rep {i}", seg.stamp(365 * DAY)) for i in range(1, REPS + 1)]
    yield "tags", [(i, name, None, seg.stamp(365 * DAY)) for i, name in enumerate(seg.TAGS, 1)]
    for table, chunks in (
        ("followers", followers(n_followers, seed)),
        ("follower_tags", seg.follower_tags(n_followers, seed)),
        ("interactions", interactions(n_followers, n_interactions, seed)),
        ("activities", activities(n_followers, seed)),
        ("deliveries", deliveries(n_followers // 2, seed)),
        ("journey_runs", journey_runs(n_followers, seed)),
    ):
        for rows in chunks:
            yield table, rows


# --- timing -------------------------------------------------------------------------------------------------------


def windows() -> list[tuple[str, Window]]:
    last = (NOW + timedelta(hours=8)).date()
    return [(f"{days} days", Window(last - timedelta(days=days - 1), last)) for days in (30, 180)]


def time_reports(db: Database, label: str) -> None:
    capture = seg.Capture(db)
    print(f"\n{label}: each report, cold = first run, warm = best of two more")
    print(f"  {'report':<12} {'window':<9} {'scope':<6} {'cold':>8} {'warm':>8}  result")
    plans = {}
    for name in reports.NAMES:
        for span, win in windows():
            for scope, rep in (("admin", None), ("rep 7", 7)):
                with db.sessions() as session:
                    cold, warm, out = seg.best(lambda s=session, n=name, w=win, r=rep: reports.run(s, n, w, rep=r))
                    if span == "30 days" and rep is None:
                        plans[name] = seg.explain(db, capture)
                print(f"  {name:<12} {span:<9} {scope:<6} {cold * 1000:>6.0f}ms {warm * 1000:>6.0f}ms  {_gist(out)}")
    print(f"\n{label}: indexes the last statement of each report uses (30 days, admin)")
    for name, plan in plans.items():
        print(f"  {name}: {', '.join(seg.indexes_used(plan)) or '(none)'}")


def write_cost(db: Database, label: str, n_followers: int, batches: int = 100, size: int = 100) -> None:
    """What the report triggers add to the writes that carry timeline entries: the same batches (as the applier
    inserts its notes: one statement per batch) with the triggers and without, each run in a transaction that is
    rolled back, so the data set stays as it was. A quarter each: stage changes, assignments, rep actions, tags."""
    rnd = random.Random(7)
    kinds = [("stage_changed", lambda: {"from": "new", "to": rnd.choice(STAGES[1:])}),
             ("owner_assigned", lambda: {"rep": rnd.randint(1, REPS), "via": "code"}),
             ("rep_action", lambda: {"rep": rnd.randint(1, REPS), "action": "followed_up"}),
             ("tag_added", lambda: {"tag": "vip"})]  # fmt: skip
    row = lambda b, kind, make: {"follower_id": 1 + int(rnd.random() * n_followers), "kind": kind,  # noqa: E731
                                 "at": NOW + timedelta(seconds=b), "data": make()}  # fmt: skip
    work = [[row(b, *kinds[i % 4]) for i in range(size)] for b in range(batches)]
    took = {}
    for triggers in (True, False, True, False):
        with db.engine.connect() as conn:
            tx = conn.begin()
            if not triggers:
                report_marks.uninstall(conn)
            started = time.perf_counter()
            for rows in work:
                conn.execute(insert(Activity.__table__), rows)
            took[triggers] = min(took.get(triggers, 1e9), time.perf_counter() - started)
            tx.rollback()
    per = {k: v / (batches * size) * 1e6 for k, v in took.items()}
    print(
        f"\n{label}: {batches} batches of {size} timeline rows inserted, best of two: with the report triggers "
        f"{took[True]:.2f}s ({per[True]:.0f} us/row), without {took[False]:.2f}s ({per[False]:.0f} us/row)"
    )


def _gist(out: dict) -> str:
    if out["report"] == "sources":
        return f"gained {out['totals']['gained']:,} lost {out['totals']['lost']:,}, {len(out['rows']):,} rows"
    if out["report"] == "funnel":
        return "reached " + " > ".join(f"{r['reached']:,}" for r in out["rows"])
    if out["report"] == "deliveries":
        return f"{out['total']:,} messages"
    if out["report"] == "reps":
        return f"{sum(r['leads'] for r in out['rows']):,} leads, {len(out['rows'])} reps"
    if out["report"] == "journeys":
        return f"{sum(j['entered'] for j in out['journeys']):,} runs"
    return f"{len(out['rows'])} rows"


def load(url: str, loader, *args) -> None:
    """Bulk-load as bench/segments.py does, with the report triggers (scrm/report_marks.py) off, then fill their
    tables from the loaded timeline with the backfill migration 0023 runs: a COPY of 1.7M timeline rows is not
    what the applier does, and the backfill is how an existing database gets them."""
    upgrade(url)
    db = Database(url)
    with db.engine.begin() as conn:
        report_marks.uninstall(conn)
    db.engine.dispose()  # SQLite: the loader switches the journal off, which needs the file to itself
    loader(*args)
    started = time.perf_counter()
    with db.engine.begin() as conn:
        report_marks.backfill(conn)
        report_marks.install(conn)
    with db.engine.connect() as conn:
        counts = [
            conn.scalar(select(func.count()).select_from(t))
            for t in (report_marks.StageEntry.__table__, report_marks.LeadAssignment.__table__)
        ]
    with db.engine.connect().execution_options(isolation_level="AUTOCOMMIT") as conn:
        analyze = "VACUUM ANALYZE" if db.dialect == "postgresql" else "ANALYZE"
        for table in ("stage_entries", "lead_assignments"):
            conn.exec_driver_sql(f"{analyze} {table}")
    print(f"  report marks backfilled in {time.perf_counter() - started:.1f}s: {counts[0]:,} stage entries, "
          f"{counts[1]:,} assignments")  # fmt: skip
    db.engine.dispose()


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--scale", type=float, default=0.1, help="1.0 = 1M followers, 10M interactions (default 0.1)")
    ap.add_argument("--database-url", help="also run on this PostgreSQL database (its tables are replaced)")
    ap.add_argument("--sqlite-path", type=Path, help="keep the SQLite database here (default: a temp dir)")
    ap.add_argument("--reuse", action="store_true", help="time existing databases, do not generate")
    ap.add_argument("--skip-sqlite", action="store_true")
    ap.add_argument("--seed", type=int, default=42)
    args = ap.parse_args()
    n_f, n_i = int(1_000_000 * args.scale), int(10_000_000 * args.scale)
    print(f"reports bench: {n_f:,} followers, {n_i:,} interactions, now = {NOW:%Y-%m-%d %H:%M} UTC")
    with tempfile.TemporaryDirectory(prefix="welead-rep-") as tmp:
        if not args.skip_sqlite:
            path = args.sqlite_path or Path(tmp) / "reports.db"
            if not args.reuse:
                path.unlink(missing_ok=True)
                print(f"\nloading SQLite {path}")
                load(f"sqlite:///{path}", seg.load_sqlite, path, n_f, n_i, args.seed, TABLES, batches)
            else:
                upgrade(f"sqlite:///{path}")  # data generated before migration 0023 gets its backfill here
            time_reports(Database(f"sqlite:///{path}"), f"SQLite {sqlite3.sqlite_version}")
            write_cost(Database(f"sqlite:///{path}"), f"SQLite {sqlite3.sqlite_version}", n_f)
        if args.database_url:
            if not args.reuse:
                print("\nloading PostgreSQL")
                load(args.database_url, seg.load_postgres, args.database_url, n_f, n_i, args.seed, TABLES, batches)
            else:
                upgrade(args.database_url)
            time_reports(Database(args.database_url), "PostgreSQL")
            write_cost(Database(args.database_url), "PostgreSQL", n_f)


if __name__ == "__main__":
    main()
