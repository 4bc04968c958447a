#!/usr/bin/env python3
"""The applier: events applied per second with a 200-rule playbook, and its lag behind sustained callbacks.

Throughput: N interactions (subscribes with booth, campaign and rep scenes, texts, menu clicks, scans across a few
thousand openids) are recorded into a fresh migrated database through the request's own code (wechat.inbound ->
handlers.dispatch.to_event -> scrm.accept.accept, which decides the reply and inserts the row), then the applier
(scrm.applier.apply_batch, what `flask apply` runs) applies them all; printed: events/s, batch sizes, time per
batch, and SQL statements per event (a before_cursor_execute listener on every engine the Database has).

Lag: gunicorn web (gunicorn_argv, as `make run`) and a `flask apply` process beside it, wrk sending signed
safe-mode callbacks at a paced --lag-rate (default 500/s) for --lag-seconds; then, once the backlog is 0, the lag of
each interaction from its interactions.received_at to its applied_at, p50/p99/max. Figures are printed, not asserted.

    .venv/bin/python bench/apply.py [--events 20000] [--followers 5000] [--database-url postgresql://...]
    .venv/bin/python bench/apply.py --skip-lag --profile       # where the applier's time goes (cProfile)
"""

from __future__ import annotations

import argparse
import base64
import cProfile
import math
import os
import pstats
import random
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from collections import Counter
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

import callback  # noqa: E402  (bench/callback.py: requests, wrk, servers, scratch databases)
import yaml  # noqa: E402
from sqlalchemy import event, func, select  # noqa: E402

from foundation.config import Settings  # noqa: E402
from foundation.db import Database  # noqa: E402
from scrm.models import Interaction  # noqa: E402

CREATED = 1_790_000_000  # CreateTime of the first generated event; one second apart, so event dedup keys differ
MODELS = {"engagement": {"half_life_days": 14, "rearm_margin": 10}, "fit": {}}


# ---- the playbook -------------------------------------------------------------------------------------------------


def playbook_200(seed: int = 7) -> str:
    """200 rules: inbound triggers (text keywords and regexes, menu clicks, scene patterns, subscribe, any) with
    tags, capped scores, stages, replies, templates and owner notifications; derived triggers (tag_added,
    score_crossed, stage_changed) chained on them, never replying (no reply is possible there)."""
    rnd = random.Random(seed)
    rules: list[dict[str, Any]] = []

    def add(name: str, when: Any, do: list[dict[str, Any]], **extra: Any) -> None:
        rules.append({"name": name, "when": when, **extra, "do": do})

    add("welcome", "subscribe", [{"score": 5, "cap": "once"}, {"reply": "Welcome! Reply PRICE for pricing."}])
    add("every-interaction", "any", [{"score": 1, "cap": {"per_day": 5}}], **{"if": {"subscribed": True}})
    add("price", {"text": ["price", "pricing"]}, [{"tag": "interest:pricing"}, {"score": 5, "cap": "daily"},
                                                  {"reply": "Our pricing: https://example.com/p"}])  # fmt: skip
    add("demo", {"text": "demo"}, [{"tag": "demo-requested"}, {"stage": "sql"}, {"notify_owner": "wants a demo"}])
    add("campaign", {"scene": "campaign:{campaign}"}, [{"tag": "campaign:{campaign}"}])
    for i in range(5):
        add(f"rep-{i}", {"scene": f"rep:{i}"}, [{"assign": f"rep{i}"}, {"tag": "source:rep"}])
    for i in range(45):
        add(f"click-{i}", {"click": f"MENU_{i}"},
            [{"tag": f"interest:m{i % 12}"}, {"score": rnd.randint(1, 10), "cap": "daily"}]
            + ([{"reply": f"Menu {i}"}] if i % 3 == 0 else []))  # fmt: skip
    for i in range(5):
        add(f"click-buy-{i}", {"click": f"BUY_{i}"}, [{"stage": "customer"}, {"send_template": f"buy{i}"}])
    for i in range(45):
        add(
            f"text-{i}",
            {"text": [f"k{i}a", f"k{i}b"]},
            [{"tag": f"kw:{i % 20}"}, {"score": 3, "cap": {"per_day": 2, "total": 30}}, {"reply": f"About {i}"}],
        )
    for i in range(10):
        add(f"regex-{i}", {"text": {"regex": f"order{i}-(?P<no>\\d+)"}},
            [{"tag": "order:{no}"}, {"notify_owner": "order {no}"}])  # fmt: skip
    for i in range(30):
        add(f"booth-{i}", {"scene": f"booth:ev{i}:{{booth}}"},
            [{"tag": [f"event:ev{i}", f"checkin:ev{i}:{{booth}}"]}, {"score": 15, "cap": "once"},
             {"reply": f"Thanks for visiting ev{i} booth {{booth}}!"}])  # fmt: skip
    for i in range(24):
        add(f"tagged-{i}", {"tag_added": f"interest:m{i % 12}"}, [{"score": 2, "model": "fit", "cap": "once"}],
            **{"if": {"not_tagged": ["customer"]}})  # fmt: skip
    for i in range(10):
        add(f"kw-template-{i}", {"tag_added": f"kw:{i}"}, [{"send_template": f"kw{i}"}])
    for i, threshold in enumerate(range(20, 120, 10)):
        add(f"crossed-{i}", {"score_crossed": threshold}, [{"notify_owner": f"at {threshold}"}])
    for i, stage in enumerate(["engaged", "mql", "sql", "customer", "mql"]):
        add(f"stage-{i}", {"stage_changed": stage}, [{"send_template": f"stage{i}"}, {"tag": f"reached:{stage}"}])
    add("checked-in", {"checked_in": "*"}, [{"score": 10, "model": "fit", "cap": "daily"}])
    while len(rules) < 200:
        n = len(rules)
        add(f"click-glob-{n}", {"click": f"MENU_{n % 10}*"}, [{"score": 1, "cap": {"per_day": 3}}])
    book = {"name": "bench-apply-200", "models": MODELS, "rules": rules}
    return yaml.safe_dump(book, sort_keys=False, allow_unicode=True)


# ---- the events ---------------------------------------------------------------------------------------------------


def _scene(rnd: random.Random) -> str:
    r = rnd.random()
    if r < 0.55:
        return f"booth:ev{rnd.randint(0, 39)}:B{rnd.randint(1, 9)}"
    if r < 0.8:
        return f"campaign:c{rnd.randint(0, 12)}"
    return f"rep:{rnd.randint(0, 6)}"


def _text(rnd: random.Random, i: int) -> str:
    r = rnd.random()
    if r < 0.5:
        return f"hi k{rnd.randint(0, 60)}{rnd.choice('ab')} there"
    if r < 0.6:
        return f"my order{rnd.randint(0, 12)}-{i}"
    return rnd.choice(["price?", "I want a demo", "hello", "thanks", "pricing please"])


def _first(rnd: random.Random) -> dict[str, str]:
    key = f"qrscene_{_scene(rnd)}" if rnd.random() < 0.8 else ""
    return {"MsgType": "event", "Event": "subscribe", "EventKey": key}


def _later(rnd: random.Random, i: int) -> dict[str, str]:
    r = rnd.random()
    if r < 0.45:
        return {"MsgType": "text", "Content": _text(rnd, i), "MsgId": str(10**15 + i)}
    if r < 0.88:
        menu = f"BUY_{rnd.randint(0, 4)}" if rnd.random() < 0.02 else f"MENU_{rnd.randint(0, 60)}"
        return {"MsgType": "event", "Event": "CLICK", "EventKey": menu}
    return {"MsgType": "event", "Event": "SCAN", "EventKey": _scene(rnd)}


def callback_docs(n: int, followers: int, seed: int) -> Iterator[dict[str, str]]:
    """Parsed callbacks as wechat.inbound reads them: a follower's first event is a subscribe (mostly via a QR
    scene), later ones texts, menu clicks and scans."""
    rnd = random.Random(seed)
    seen: set[int] = set()
    for i in range(n):
        k = rnd.randrange(followers)
        doc = {"ToUserName": "gh_bench", "FromUserName": f"oApply{k:06d}", "CreateTime": str(CREATED + i)}
        doc |= _later(rnd, i) if k in seen else _first(rnd)
        seen.add(k)
        yield doc


def record(db: Database, n: int, followers: int, seed: int) -> tuple[float, Counter[str]]:
    """Every event through the request's path (parse, decide, one insert); (seconds, kinds)."""
    from handlers.dispatch import to_event
    from scrm.accept import accept
    from wechat.inbound import to_inbound

    kinds: Counter[str] = Counter()
    events = [to_event(to_inbound("oa", d)) for d in callback_docs(n, followers, seed)]
    started = time.perf_counter()
    for ev in events:
        if accept(db, ev).id is None:
            raise RuntimeError(f"{ev.dedup_key}: recorded twice")
        kinds[ev.kind] += 1
    return time.perf_counter() - started, kinds


# ---- timing the applier -------------------------------------------------------------------------------------------


class Statements:
    """SQL statements sent while counting, on every engine the Database has (writes and reads)."""

    def __init__(self, db: Database) -> None:
        self.count = 0
        self.kinds: Counter[str] = Counter()
        self.texts: Counter[str] = Counter()  # by the statement's first 110 characters (printed with --profile)
        self.on = False
        for engine in {db.engine, db.reader}:
            event.listen(engine, "before_cursor_execute", self._seen)

    def _seen(self, conn, cursor, statement, parameters, context, executemany) -> None:
        if self.on:
            self.count += 1
            self.kinds[statement.lstrip().split(None, 1)[0].upper()] += 1
            self.texts[" ".join(statement.split())[:110]] += 1


def drain(db: Database, batch: int, statements: Statements, profile: Path | None) -> tuple[float, list[tuple]]:
    """apply_batch until nothing is pending; (seconds, [(applied, failed, seconds) per batch])."""
    from scrm.applier import apply_batch

    batches = []
    profiler = cProfile.Profile() if profile else None
    statements.on = True
    started = time.perf_counter()
    if profiler:
        profiler.enable()
    while True:
        t0 = time.perf_counter()
        report = apply_batch(db, batch)
        if not (report.applied or report.failed):
            break
        batches.append((report.applied, report.failed, time.perf_counter() - t0))
    seconds = time.perf_counter() - started
    if profiler:
        profiler.disable()
        profiler.dump_stats(profile)
    statements.on = False
    return seconds, batches


def rows_written(db: Database) -> dict[str, int]:
    from sqlalchemy import text

    tables = ("followers", "follower_tags", "score_events", "activities", "outbox")
    with db.reader.connect() as conn:
        return {t: int(conn.execute(text(f"SELECT count(*) FROM {t}")).scalar_one()) for t in tables}


def throughput(args: argparse.Namespace, url: str, label: str, redis_url: str) -> None:
    from scrm.playbook import store
    from scrm.playbook.validate import parse
    from welead.app import create_app
    from welead.migrate import upgrade

    upgrade(url)
    app = create_app(Settings.from_env().replace(database_url=url, redis_url=redis_url))
    db: Database = app.extensions["welead"].db
    source = playbook_200()
    book = parse(source)
    with db.transaction() as session:
        store.load(session, source, by="bench")
    print(f"\n{label}: playbook {book.name!r}, {len(book.rules)} rules; recording {args.events:,} interactions "
          f"from {args.followers:,} openids through scrm.accept.accept", flush=True)  # fmt: skip
    seconds, kinds = record(db, args.events, args.followers, args.seed)
    print(f"  recorded in {seconds:.1f} s ({args.events / seconds:,.0f}/s in one process): "
          f"{', '.join(f'{k} {v:,}' for k, v in kinds.most_common())}")  # fmt: skip
    statements = Statements(db)
    profile = Path(tempfile.gettempdir()) / f"welead-apply-{label.split()[0].lower()}.prof" if args.profile else None
    seconds, batches = drain(db, args.batch, statements, profile)
    report_throughput(label, seconds, batches, statements, rows_written(db))
    if profile:
        print("  most frequent statements:")
        for sql, n in statements.texts.most_common(12):
            print(f"    {n:>7,}  {sql}")
        print_profile(profile)
    db.dispose()


def report_throughput(label: str, seconds: float, batches: list[tuple], st: Statements, rows: dict) -> None:
    applied = sum(b[0] for b in batches)
    failed = sum(b[1] for b in batches)
    times = sorted(b[2] for b in batches)
    print(f"  applied {applied:,} (failed {failed}) in {seconds:.2f} s: {applied / seconds:,.0f} events/s "
          f"(target: >= 2,000/s SQLite, >= 3,000/s PostgreSQL)")  # fmt: skip
    print(f"  {len(batches)} batches of up to {max(b[0] + b[1] for b in batches)}; per batch p50 "
          f"{statistics.median(times) * 1000:.0f} ms, max {times[-1] * 1000:.0f} ms")  # fmt: skip
    kinds = ", ".join(f"{k} {v:,}" for k, v in st.kinds.most_common())
    print(f"  SQL statements: {st.count:,} = {st.count / max(applied, 1):.2f} per event ({kinds})")
    print(f"  rows now: {', '.join(f'{k} {v:,}' for k, v in rows.items())}")


def print_profile(path: Path) -> None:
    print(f"  cProfile ({path}), top functions by own time:")
    stats = pstats.Stats(str(path))
    stats.sort_stats("tottime").print_stats(18)


# ---- lag behind sustained callbacks -------------------------------------------------------------------------------

_I = Interaction.__table__.c


def lag_phase(args: argparse.Namespace, label: str, workdir: Path, redis_url: str) -> None:
    """gunicorn + `flask apply`, wrk paced at --lag-rate; then lag = applied_at - received_at per interaction."""
    from scrm.playbook import store
    from welead.migrate import upgrade
    from welead.processes import web_workers

    url = callback.fresh_database(args.database_url, workdir, "lag")
    upgrade(url)
    db = Database(url)
    with db.transaction() as session:
        store.load(session, playbook_200(), by="bench")
    aes_key = base64.b64encode(os.urandom(32)).decode().rstrip("=")
    env = _env(url, redis_url, aes_key, args)
    builder = callback.Builder(aes_key)
    wrk = argparse.Namespace(threads=1, connections=args.connections)
    print(f"\n{label}: lag at {args.lag_rate:g} callbacks/s for {args.lag_seconds:g} s "
          f"(gunicorn {web_workers(url)} workers + flask apply)", flush=True)  # fmt: skip
    server = callback.Server("lag", "wsgi:app", env, workdir, web_workers(url), [])
    procs = [server.proc, callback.applier(env, workdir, "lag")]
    try:
        server.wait_ready(builder.probe())
        with _drained(db, args.drain_timeout, procs[1]):
            first = _last_id(db)
        pool = builder.pool(math.ceil(args.lag_rate * args.lag_seconds * 1.2) + 200, workdir / "lag.txt")
        result = callback.run_wrk(wrk, server.port, pool, args.lag_seconds, args.lag_rate, "welead", "lag")
        with _drained(db, args.drain_timeout, procs[1]) as waited:
            lags = _lags(db, first)
    finally:
        for proc in procs:
            callback.stop(proc)
    report_lag(result, lags, waited)
    db.dispose()


def _env(url: str, redis_url: str, aes_key: str, args: argparse.Namespace) -> dict[str, str]:
    base = {k: v for k, v in os.environ.items() if not k.startswith(("WECHAT_", "WECOM_", "WELEAD_"))}
    return dict(base, PYTHONUNBUFFERED="1", GUNICORN_CMD_ARGS="", DATABASE_URL=url, REDIS_URL=redis_url,
                WECHAT_TOKEN=callback.TOKEN, WECHAT_APP_ID=callback.APP_ID, WECHAT_AES_KEY=aes_key,
                WELEAD_REPLAY_WINDOW=str(int(args.lag_seconds * 3 + 600)))  # fmt: skip


@contextmanager
def _drained(db: Database, timeout: float, applier: subprocess.Popen) -> Iterator[list[float]]:
    """Wait until nothing is pending; yields [seconds waited]."""
    started = time.monotonic()
    pending = select(func.count()).where(_I.applied_at.is_(None))
    while True:
        with db.reader.connect() as conn:
            if not conn.execute(pending).scalar_one():
                break
        if applier.poll() is not None:
            raise RuntimeError(f"the applier exited with {applier.returncode}")
        if time.monotonic() - started > timeout:
            raise RuntimeError(f"backlog not drained after {timeout:g} s")
        time.sleep(0.1)
    yield [time.monotonic() - started]


def _last_id(db: Database) -> int:
    with db.reader.connect() as conn:
        return int(conn.execute(select(func.coalesce(func.max(_I.id), 0))).scalar_one())


def _lags(db: Database, after: int) -> list[float]:
    query = select(_I.received_at, _I.applied_at).where(_I.id > after)
    with db.reader.connect() as conn:
        return sorted((applied - received).total_seconds() for received, applied in conn.execute(query))


def _percentile(values: list[float], q: float) -> float:
    return values[min(len(values) - 1, max(0, math.ceil(q * len(values)) - 1))] if values else float("nan")


def report_lag(result: callback.Result, lags: list[float], waited: list[float]) -> None:
    print(f"  callbacks: {result.rps:.0f} req/s achieved, p50 {result.p50_ms:.2f} ms, p99 {result.p99_ms:.2f} ms, "
          f"non-2xx {result.non2xx}, socket errors {result.socket_errors}")  # fmt: skip
    print(f"  backlog drained {waited[0]:.1f} s after the load ended")
    print(f"  lag received_at -> applied_at over {len(lags):,} interactions: p50 {_percentile(lags, 0.5) * 1000:.0f} "
          f"ms, p99 {_percentile(lags, 0.99) * 1000:.0f} ms, max {lags[-1] * 1000 if lags else 0:.0f} ms "
          f"(target p99 < 1 s)")  # fmt: skip


# ---- main ---------------------------------------------------------------------------------------------------------


def run(args: argparse.Namespace, workdir: Path, redis_url: str) -> None:
    if args.database_url:
        url, label = callback.fresh_database(args.database_url, workdir, "apply"), "PostgreSQL"
    else:
        url, label = f"sqlite:///{workdir / 'apply.db'}", "SQLite"
    if not args.skip_throughput:
        throughput(args, url, f"{label} applier", redis_url)
    if not args.skip_lag:
        if shutil.which("wrk") is None:
            print("the lag phase needs wrk: apt-get install wrk (or pass --skip-lag)", file=sys.stderr)
            return
        lag_phase(args, label, workdir, redis_url)


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--events", type=int, default=20_000, help="interactions to apply (default 20,000)")
    p.add_argument("--followers", type=int, default=5_000, help="distinct openids among them (default 5,000)")
    p.add_argument(
        "--batch", type=int, default=500, help="interactions per applier batch (default 500, as flask apply)"
    )
    p.add_argument("--seed", type=int, default=11)
    p.add_argument("--database-url", default="",
                   help="PostgreSQL server: fresh <db>_bench_apply / <db>_bench_lag databases are made beside it "
                        "(default: SQLite files in a temp dir)")  # fmt: skip
    p.add_argument("--profile", action="store_true", help="run the applier under cProfile and print the top")
    p.add_argument("--lag-rate", type=float, default=500.0, help="callbacks/s of the lag phase (default 500)")
    p.add_argument("--lag-seconds", type=float, default=20.0, help="seconds of the lag phase (default 20)")
    p.add_argument("--connections", type=int, default=16, help="wrk connections in the lag phase (default 16)")
    p.add_argument("--drain-timeout", type=float, default=300.0)
    p.add_argument("--skip-throughput", action="store_true")
    p.add_argument("--skip-lag", action="store_true")
    args = p.parse_args()

    from welead.embedded import EmbeddedRedis

    workdir = Path(tempfile.mkdtemp(prefix="wlb-apply-", dir="/tmp"))
    redis = EmbeddedRedis()
    try:
        run(args, workdir, redis.start())
    except (RuntimeError, subprocess.CalledProcessError) as exc:
        print(f"bench failed: {exc}", file=sys.stderr)
        return 1
    finally:
        redis.stop()
        shutil.rmtree(workdir, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
