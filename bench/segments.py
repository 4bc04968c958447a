#!/usr/bin/env python3
"""Segments over 1,000,000 followers and 10,000,000 interactions, on SQLite and (with --database-url) PostgreSQL;
then the rules engine's throughput for a 200-rule playbook. Figures are printed, not asserted.

Data is generated here (seeded, identical on both databases), never committed: followers with sources, stages,
owners and last activity; ~2.5 tags each; decayed score totals for two models; interactions (clicks with menu keys,
texts, views, scans...). The load is bulk: secondary indexes dropped, executemany on SQLite (journal off) or COPY on
PostgreSQL, indexes rebuilt, ANALYZE. Each of five representative filters is then timed as the API runs it: a count,
and a first page (keyset, 50 followers, serialised with tags and scores); the query plan's indexes are printed.

    .venv/bin/python bench/segments.py --scale 0.1                       # 100k followers, 1M interactions
    .venv/bin/python bench/segments.py --database-url postgresql://u@host:5432/db   # full scale, both databases
    .venv/bin/python bench/segments.py --reuse --sqlite-path /tmp/seg.db  # time again without regenerating
"""

from __future__ import annotations

import argparse
import random
import re
import sqlite3
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

import sqlalchemy as sa  # noqa: E402
import yaml  # noqa: E402
from sqlalchemy import event  # noqa: E402

from foundation.db import Database  # noqa: E402
from scrm import segments  # noqa: E402
from scrm.playbook import store  # noqa: E402
from welead.migrate import upgrade  # noqa: E402

NOW = datetime(2026, 6, 1, 12, 0, 0)
CHUNK = 50_000
REPS = 50
INTEREST = ["interest:pricing", "interest:cases", "interest:api", "interest:security", "interest:mobile"]
TAGS = [*INTEREST, "event:expo2026", "event:fair2025", "vip", "customer", "churned", "hot", "demo-requested",
        "has-phone", "source:rep", "campaign:spring", "campaign:launch", "newsletter", "partner", "student",
        "checkin:expo2026:A1", "checkin:expo2026:B2", "checkin:expo2026:C3", "checkin:fair2025:A1"]  # fmt: skip
TAG_WEIGHTS = [14, 10, 6, 4, 4, 6, 4, 2, 3, 5, 3, 2, 3, 4, 5, 3, 6, 2, 1, 3, 2, 2, 2]
STAGES, STAGE_WEIGHTS = ["new", "engaged", "mql", "sql", "customer"], [50, 30, 12, 5, 3]
KINDS = ["text", "click", "view", "subscribe", "scan", "location", "image", "unsubscribe"]
KIND_WEIGHTS = [38, 25, 15, 8, 5, 4, 3, 2]
MENU = ["MENU_PRICING", "MENU_CASE_RETAIL", "MENU_CASE_FACTORY", "MENU_DEMO", "MENU_CONTACT"]
SCENES = ["rep:7", "booth:expo2026:A1", "booth:expo2026:B2", "campaign:spring", "campaign:launch"]

FILTERS: list[tuple[str, dict[str, Any]]] = [
    ("hot leads: engagement >= 50 (decayed), subscribed", {"score": {"engagement": {"min": 50}}, "subscribed": True}),
    ("pricing interest, not customers, active in 30 days",
     {"tags_all": ["interest:pricing"], "tags_none": ["customer"], "active_after": "30d"}),
    ("expo booth visitors who checked in", {"source": "booth:expo2026:*", "checked_in": "expo2026"}),
    ("rep 7's leads at mql or later", {"owner": 7, "stage": ["mql+"]}),
    ("clicked pricing in the last 7 days, unowned",
     {"did": {"kind": "click", "key": "MENU_PRICING", "since": "7d"}, "owner": "none"}),
]  # fmt: skip


# --- data ---------------------------------------------------------------------------------------------------------


def stamp(seconds_ago: float) -> str:
    """A naive-UTC timestamp as text (SQLAlchemy's SQLite format; PostgreSQL COPY parses it too)."""
    return (NOW - timedelta(seconds=seconds_ago)).strftime("%Y-%m-%d %H:%M:%S.%f")


_MINUTES: list[str] = []


def stamps(rnd: random.Random, n: int, days: int) -> list[str]:
    """`n` random times (whole minutes) within `days` before NOW: each minute's text is formatted once per run."""
    if len(_MINUTES) < days * 1440:
        _MINUTES[:] = [(NOW - timedelta(minutes=m)).strftime("%Y-%m-%d %H:%M:00.000000") for m in range(days * 1440)]
    r, span = rnd.random, days * 1440
    return [_MINUTES[int(r() * span)] for _ in range(n)]


def followers(n: int, seed: int) -> Iterator[list[tuple]]:
    rnd = random.Random(seed)
    created = stamp(200 * 86400)
    for start in range(1, n + 1, CHUNK):
        size = min(CHUNK, n + 1 - start)
        active = stamps(rnd, size, 180)
        stage = rnd.choices(STAGES, STAGE_WEIGHTS, k=size)
        rows = []
        for j in range(size):
            i = start + j
            source = _source(rnd)
            owner = None if rnd.random() < 0.55 else rnd.randint(1, REPS)
            subscribed = rnd.random() < 0.85
            channel = "oa" if rnd.random() < 0.95 else "wecom"
            since = created if subscribed else None
            rows.append(
                (i, f"o{i:012d}", channel, subscribed, since, source, stage[j], owner, "{}", created, active[j])
            )
        yield rows


def _source(rnd: random.Random) -> str | None:
    """The first scene: none (35 %), a rep's code, a booth code, or a campaign code."""
    r = rnd.random()
    if r < 0.35:
        return None
    if r < 0.55:
        return f"rep:{rnd.randint(1, REPS)}"
    if r < 0.75:
        return f"booth:{rnd.choice(['expo2026', 'fair2025'])}:{rnd.choice('ABCDEFGH')}{rnd.randint(1, 9)}"
    return f"campaign:{rnd.choice(['spring', 'summer', 'autumn', 'launch'])}"


def follower_tags(n: int, seed: int) -> Iterator[list[tuple]]:
    rnd = random.Random(seed + 1)
    added = stamp(30 * 86400)
    for start in range(1, n + 1, CHUNK):
        rows = []
        for i in range(start, min(start + CHUNK, n + 1)):
            picked = set(rnd.choices(range(1, len(TAGS) + 1), TAG_WEIGHTS, k=rnd.randint(0, 5)))
            rows += [(i, t, added) for t in picked]
        yield rows


def scores(n: int, seed: int) -> Iterator[list[tuple]]:
    rnd = random.Random(seed + 2)
    now = NOW.timestamp()
    for start in range(1, n + 1, CHUNK):
        rows = []
        for i in range(start, min(start + CHUNK, n + 1)):
            if rnd.random() < 0.7:
                rows.append((i, "engagement", rnd.expovariate(1 / 20), now - rnd.uniform(0, 60 * 86400), 14 * 86400.0))
            if rnd.random() < 0.3:
                rows.append((i, "fit", rnd.uniform(0, 60), now, None))
        yield rows


def interactions(n_followers: int, n: int, seed: int) -> Iterator[list[tuple]]:
    rnd = random.Random(seed + 3)
    for start in range(1, n + 1, CHUNK):
        size = min(CHUNK, n + 1 - start)
        kinds = rnd.choices(KINDS, KIND_WEIGHTS, k=size)
        at = stamps(rnd, size, 180)
        rows = []
        r = rnd.random
        for j in range(size):
            i, kind, fid = start + j, kinds[j], 1 + int(r() * n_followers)
            key = content = msg_id = None
            if kind == "click":
                key = rnd.choice(MENU)
            elif kind == "view":
                key = f"https://example.com/blog/{int(r() * 300)}"
            elif kind in ("subscribe", "scan"):
                key = rnd.choice(SCENES)
            elif kind == "text":
                content, msg_id = rnd.choice(["price?", "hello", "demo", "thanks", "where is the booth"]), str(i)
            rows.append((i, f"{i:040x}", "oa", kind, fid, f"o{fid:012d}", key, msg_id, content, "{}", at[j], at[j]))
        yield rows


TABLES: dict[str, tuple[str, ...]] = {
    "followers": ("id", "openid", "channel", "subscribed", "subscribed_at", "source", "stage", "owner_id", "profile",
                  "created_at", "last_active_at"),
    "follower_tags": ("follower_id", "tag_id", "added_at"),
    "follower_scores": ("follower_id", "model", "value", "as_of", "half_life"),
    "interactions": ("id", "dedup_key", "channel", "kind", "follower_id", "openid", "event_key", "msg_id", "content",
                     "payload", "at", "received_at"),
}  # fmt: skip


def batches(n_followers: int, n_interactions: int, seed: int) -> Iterator[tuple[str, list[tuple]]]:
    yield "reps", [(i, f"rep{i}", f"Rep {i}", stamp(365 * 86400)) for i in range(1, REPS + 1)]
    yield "tags", [(i, name, None, stamp(365 * 86400)) for i, name in enumerate(TAGS, 1)]
    for table, chunks in (
        ("followers", followers(n_followers, seed)),
        ("follower_tags", follower_tags(n_followers, seed)),
        ("follower_scores", scores(n_followers, seed)),
        ("interactions", interactions(n_followers, n_interactions, seed)),
    ):
        for rows in chunks:
            yield table, rows


SMALL = {"reps": ("id", "userid", "name", "created_at"), "tags": ("id", "name", "wechat_tag_id", "created_at")}


# --- loading ------------------------------------------------------------------------------------------------------


def load_sqlite(
    path: Path,
    n_followers: int,
    n_interactions: int,
    seed: int,
    tables: dict | None = None,
    source: Callable[[int, int, int], Iterator[tuple[str, list[tuple]]]] | None = None,
) -> None:
    """Generate and bulk-load; `tables` (columns per table) and `source` (the batches) default to this bench's."""
    tables, source = tables or TABLES, source or batches
    upgrade(f"sqlite:///{path}")
    conn = sqlite3.connect(path, isolation_level=None)
    conn.executescript("PRAGMA journal_mode=OFF; PRAGMA synchronous=OFF; PRAGMA cache_size=-1000000;")
    indexes = conn.execute(
        "SELECT name, sql FROM sqlite_master WHERE type = 'index' AND sql IS NOT NULL AND tbl_name IN "
        f"({', '.join('?' * len(tables))})",
        tuple(tables),
    ).fetchall()
    for name, _ in indexes:
        conn.execute(f"DROP INDEX {name}")
    conn.execute("BEGIN")
    for table, rows in _progress(source(n_followers, n_interactions, seed), n_followers, n_interactions):
        cols = {**SMALL, **tables}[table]
        conn.executemany(f"INSERT INTO {table} ({', '.join(cols)}) VALUES ({', '.join('?' * len(cols))})", rows)
    conn.execute("COMMIT")
    _timed("sqlite: rebuild indexes", lambda: [conn.execute(sql) for _, sql in indexes])
    _timed("sqlite: ANALYZE", lambda: conn.execute("ANALYZE"))
    conn.execute("PRAGMA journal_mode=WAL")
    conn.close()


def load_postgres(
    url: str,
    n_followers: int,
    n_interactions: int,
    seed: int,
    tables: dict | None = None,
    source: Callable[[int, int, int], Iterator[tuple[str, list[tuple]]]] | None = None,
) -> None:
    import psycopg

    tables, source = tables or TABLES, source or batches
    upgrade(url)
    with psycopg.connect(url.replace("postgresql+psycopg://", "postgresql://"), autocommit=True) as conn:
        conn.execute(f"TRUNCATE {', '.join(['reps', 'tags', *tables])} RESTART IDENTITY CASCADE")
        indexes = conn.execute(
            "SELECT indexname, indexdef FROM pg_indexes WHERE schemaname = 'public' AND tablename = ANY(%s)"
            " AND indexname NOT IN (SELECT conname FROM pg_constraint)",
            (list(tables),),
        ).fetchall()
        for name, _ in indexes:
            conn.execute(f'DROP INDEX "{name}"')
        for table, rows in _progress(source(n_followers, n_interactions, seed), n_followers, n_interactions):
            cols = {**SMALL, **tables}[table]
            with conn.cursor().copy(f"COPY {table} ({', '.join(cols)}) FROM STDIN") as copy:
                for row in rows:
                    copy.write_row(row)
        _timed("postgresql: rebuild indexes", lambda: [conn.execute(sql) for _, sql in indexes])
        serial = ("followers", "interactions", "reps", "tags", "activities", "deliveries", "journey_runs")
        for table in (t for t in serial if t in tables or t in SMALL):
            conn.execute(f"SELECT setval(pg_get_serial_sequence('{table}', 'id'), (SELECT max(id) FROM {table}))")
        _timed("postgresql: VACUUM ANALYZE", lambda: conn.execute("VACUUM ANALYZE"))


def _progress(items: Iterator[tuple[str, list[tuple]]], n_followers: int, n_interactions: int) -> Iterator[Any]:
    started, counts = time.perf_counter(), {}
    for table, rows in items:
        counts[table] = counts.get(table, 0) + len(rows)
        yield table, rows
    took = time.perf_counter() - started
    total = sum(counts.values())
    print(f"  generated and loaded {total:,} rows in {took:.1f}s ({total / took:,.0f} rows/s): "
          + ", ".join(f"{t} {c:,}" for t, c in counts.items()))  # fmt: skip


def _timed(label: str, fn: Callable[[], Any]) -> None:
    started = time.perf_counter()
    fn()
    print(f"  {label}: {time.perf_counter() - started:.1f}s")


# --- timing -------------------------------------------------------------------------------------------------------


class Capture:
    """The last statement sent to the database, to EXPLAIN it exactly as it ran."""

    def __init__(self, db: Database) -> None:
        self.statement, self.params = "", None
        for engine in {db.engine, getattr(db, "reader", db.engine)}:  # reads may use an engine of their own
            event.listen(engine, "before_cursor_execute", self._seen)

    def _seen(self, conn, cursor, statement, parameters, context, executemany) -> None:
        if statement.lstrip().upper().startswith("SELECT"):  # not BEGIN, pool resets...
            self.statement, self.params = statement, parameters


def indexes_used(plan: list[str]) -> list[str]:
    found = []
    for line in plan:
        for name in re.findall(r"(?:USING (?:COVERING )?INDEX|Index (?:Only )?Scan using|Bitmap Index Scan on) (\w+)",
                               line):  # fmt: skip
            if name not in found:
                found.append(name)
        if "INTEGER PRIMARY KEY" in line and "rowid (pk)" not in found:
            found.append("rowid (pk)")
    return found


def explain(db: Database, capture: Capture) -> list[str]:
    raw = db.engine.raw_connection()
    try:
        cur = raw.cursor()
        prefix = "EXPLAIN QUERY PLAN " if db.dialect == "sqlite" else "EXPLAIN "
        cur.execute(prefix + capture.statement, capture.params)
        rows = cur.fetchall()
    finally:
        raw.close()
    return [str(r[-1]) if db.dialect == "sqlite" else str(r[0]) for r in rows]


def best(fn: Callable[[], Any], runs: int = 3) -> tuple[float, float, Any]:
    """(first run, best of the others) in seconds, and the result."""
    times, result = [], None
    for _ in range(runs):
        started = time.perf_counter()
        result = fn()
        times.append(time.perf_counter() - started)
    return times[0], min(times[1:] or times), result


def time_filters(db: Database, label: str) -> None:
    capture = Capture(db)
    print(f"\n{label}: count and first page (50) per filter; cold = first run, warm = best of two more")
    print(f"  {'filter':<52} {'matches':>9} {'count cold/warm':>17} {'page cold/warm':>16}")
    plans = []
    for name, spec in FILTERS:
        with db.sessions() as session:
            c0, c1, n = best(lambda s=session, f=spec: segments.count(s, f, now=NOW))
            plan = explain(db, capture)
            p0, p1, _ = best(lambda s=session, f=spec: segments.page(s, f, limit=50, now=NOW))
        print(f"  {name:<52} {n:>9,} {c0 * 1000:>7.0f}/{c1 * 1000:<6.0f}ms {p0 * 1000:>6.0f}/{p1 * 1000:<6.0f}ms")
        plans.append((name, plan))
    print(f"\n{label}: indexes the count queries use")
    for name, plan in plans:
        print(f"  {name}: {', '.join(indexes_used(plan)) or '(none)'}")
        scans = [p.strip() for p in plan if re.search(r"\bSCAN\b|Seq Scan", p)]
        if scans:
            print(f"    full scans: {'; '.join(scans)}")


# --- the rules engine ---------------------------------------------------------------------------------------------


def playbook_200(seed: int = 5) -> str:
    """A 200-rule playbook with the mix a real one has: menu keys, keywords, regexes, scenes, tag chains..."""
    rnd = random.Random(seed)
    rules: list[dict[str, Any]] = []

    def add(name: str, when: Any, do: list[dict[str, Any]], **extra: Any) -> None:
        rules.append({"name": name, "when": when, **extra, "do": do})

    for i in range(50):
        add(f"click-{i}", {"click": f"MENU_{i}"},
            [{"tag": f"interest:m{i % 12}"}, {"score": rnd.randint(1, 10), "cap": "daily"}])  # fmt: skip
    for i in range(10):
        add(f"click-glob-{i}", {"click": f"MENU_{i}*"}, [{"score": 1, "cap": {"per_day": 3}}])
    for i in range(50):
        words = [f"w{i}x{j}" for j in range(3)]
        add(f"text-{i}", {"text": words},
            [{"tag": f"kw:{i % 20}"}, {"score": 3, "cap": {"per_day": 2}}, {"reply": f"About w{i}"}])  # fmt: skip
    for i in range(10):
        add(f"regex-{i}", {"text": {"regex": f"order{i}-(?P<no>\\d+)"}},
            [{"tag": "order:{no}"}, {"notify_owner": "order {no}"}])  # fmt: skip
    for i in range(30):
        add(f"scene-{i}", {"scene": f"booth:ev{i}:{{booth}}"},
            [{"tag": [f"event:ev{i}", f"checkin:ev{i}:{{booth}}"]}, {"score": 15, "cap": "once"}])  # fmt: skip
    for i in range(20):
        add(f"tag-{i}", {"tag_added": f"interest:m{i % 12}"}, [{"score": 2, "model": "fit", "cap": "once"}],
            **{"if": {"not_tagged": ["customer"]}})  # fmt: skip
    for i in range(10):
        add(f"view-{i}", {"view": f"https://example.com/p{i}/*"}, [{"score": 1}])
    add("every-interaction", "any", [{"score": 1, "cap": {"per_day": 5}}], **{"if": {"subscribed": True}})
    for i in range(4):
        add(f"location-{i}", "location", [{"tag": f"located:{i}"}], **{"if": {"tagged": [f"region:{i}"]}})
    for i, threshold in enumerate(range(20, 120, 10)):
        add(f"crossed-{i}", {"score_crossed": threshold}, [{"notify_owner": f"at {threshold}"}])
    for i, stage in enumerate(["engaged", "mql", "sql", "engaged", "mql"]):
        add(f"stage-{i}", {"stage_changed": stage}, [{"send_template": f"t{i}"}])
    assert len(rules) == 200, len(rules)
    book = {"name": "bench-200", "models": {"engagement": {"half_life_days": 14}, "fit": {}}, "rules": rules}
    return yaml.safe_dump(book, sort_keys=False, allow_unicode=True)


def inbound_docs(n: int, seed: int = 9) -> list[dict[str, str]]:
    """Callback documents as wechat.inbound parses them: subscribes via booth codes, clicks, texts, views."""
    rnd = random.Random(seed)
    docs, created = [], 1_780_000_000
    for i in range(n):
        openid = f"oEng{rnd.randint(1, 2000):05d}"
        r, created = rnd.random(), created + 1
        doc = {"ToUserName": "gh_bench", "FromUserName": openid, "CreateTime": str(created)}
        if r < 0.15:
            doc |= {"MsgType": "event", "Event": "subscribe",
                    "EventKey": f"qrscene_booth:ev{rnd.randint(0, 40)}:B{rnd.randint(1, 9)}"}  # fmt: skip
        elif r < 0.5:
            doc |= {"MsgType": "event", "Event": "CLICK", "EventKey": f"MENU_{rnd.randint(0, 80)}"}
        elif r < 0.9:
            word = rnd.choice([f"w{rnd.randint(0, 60)}x{rnd.randint(0, 2)}", "hello there", f"order3-{i}", "thanks"])
            doc |= {"MsgType": "text", "Content": f"hi {word}", "MsgId": str(10**12 + i)}
        else:
            doc |= {"MsgType": "event", "Event": "VIEW", "EventKey": f"https://example.com/p{rnd.randint(0, 12)}/x"}
        docs.append(doc)
    return docs


def engine_bench(url: str, label: str, events: int) -> None:
    """Two figures: matching alone (in memory), and the engine (matching + actions with their SQL) timed inside the
    applier's batches; then the applier as a whole (scrm.applier.drain). The events are recorded first through the
    request's path (scrm.accept.accept). bench/apply.py measures the applier in more detail.
    """
    import scrm.playbook.inbound as inbound
    from handlers.dispatch import to_event
    from scrm.accept import accept
    from scrm.applier import drain
    from wechat.inbound import to_inbound

    evs = [to_event(to_inbound("oa", d)) for d in inbound_docs(events)]
    db = Database(url)
    statements = [0]
    for engine in {db.engine, db.reader}:
        event.listen(engine, "before_cursor_execute", lambda *a: statements.__setitem__(0, statements[0] + 1))
    with db.transaction() as session:
        store.load(session, playbook_200())
        compiled = store.active(session)
    for ev in evs:
        accept(db, ev)
    sigs = [inbound.signals(ev) for ev in evs]
    started = time.perf_counter()
    matched = sum(len(compiled.matches(s)) for ss in sigs for s in ss)
    matching = time.perf_counter() - started
    engine_time, original = [0.0], inbound.run

    def timed_run(visit, book) -> None:
        started = time.perf_counter()
        original(visit, book)
        engine_time[0] += time.perf_counter() - started

    inbound.run = timed_run
    statements[0] = 0
    try:
        started = time.perf_counter()
        applied = drain(db).applied
        full = time.perf_counter() - started
    finally:
        inbound.run = original
    with db.sessions() as session:
        counts = {t: session.scalar(sa.text(f"SELECT count(*) FROM {t}")) for t in
                  ("score_events", "activities", "follower_tags", "outbox")}  # fmt: skip
    db.dispose()
    n = len(evs)
    print(f"\n{label}: rules engine, 200-rule playbook, {n:,} inbound events from 2,000 followers "
          f"({matched / n:.2f} rules matched per event)")  # fmt: skip
    print(f"  matching only (signals -> rules, in memory):        {n / matching:>9,.0f} events/s")
    print(f"  engine: matching + actions (SQL in the batch):       {n / engine_time[0]:>9,.0f} events/s")
    print(f"  the applier, whole batches ({applied:,} applied):     {applied / full:>9,.0f} events/s "
          f"({statements[0] / n:.1f} SQL statements per event)")  # fmt: skip
    print(f"  rows the rules wrote: {', '.join(f'{k} {v:,}' for k, v in counts.items())}")


# --- main ---------------------------------------------------------------------------------------------------------


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--scale", type=float, default=1.0, help="1.0 = 1M followers, 10M interactions")
    ap.add_argument("--database-url", help="also run on this PostgreSQL database (its tables are replaced)")
    ap.add_argument("--sqlite-path", type=Path, help="keep the SQLite database here (default: a temp dir)")
    ap.add_argument("--reuse", action="store_true", help="time an existing database, do not generate")
    ap.add_argument("--skip-sqlite", action="store_true")
    ap.add_argument("--engine-events", type=int, default=10_000, help="0 skips the rules-engine run")
    ap.add_argument("--seed", type=int, default=42)
    args = ap.parse_args()
    n_followers, n_interactions = int(1_000_000 * args.scale), int(10_000_000 * args.scale)
    print(f"segments bench: {n_followers:,} followers, {n_interactions:,} interactions, now = {NOW:%Y-%m-%d %H:%M}")
    with tempfile.TemporaryDirectory(prefix="welead-seg-") as tmp:
        if not args.skip_sqlite:
            path = args.sqlite_path or Path(tmp) / "segments.db"
            if not args.reuse:
                path.unlink(missing_ok=True)
                print(f"\nloading SQLite {path}")
                load_sqlite(path, n_followers, n_interactions, args.seed)
            time_filters(Database(f"sqlite:///{path}"), f"SQLite {sqlite3.sqlite_version}")
        if args.database_url:
            if not args.reuse:
                print("\nloading PostgreSQL")
                load_postgres(args.database_url, n_followers, n_interactions, args.seed)
            time_filters(Database(args.database_url), "PostgreSQL")
        if args.engine_events:
            scratch = f"sqlite:///{Path(tmp) / 'engine.db'}"
            upgrade(scratch)
            engine_bench(scratch, "SQLite", args.engine_events)
            if args.database_url:
                engine_bench(_scratch_pg(args.database_url), "PostgreSQL", args.engine_events)


def _scratch_pg(url: str) -> str:
    """A fresh database beside the segments one, for the engine run (dropped and re-created)."""
    target = sa.engine.make_url(url.replace("postgresql://", "postgresql+psycopg://", 1))
    name = f"{target.database}_engine"
    admin = sa.create_engine(target, isolation_level="AUTOCOMMIT")
    with admin.connect() as conn:
        conn.execute(sa.text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
        conn.execute(sa.text(f'CREATE DATABASE "{name}"'))
    admin.dispose()
    scratch = target.set(database=name).render_as_string(hide_password=False)
    upgrade(scratch)
    return scratch


if __name__ == "__main__":
    main()
