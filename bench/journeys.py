#!/usr/bin/env python3
"""Journeys at scale: N followers enter a 5-step journey; 2 step runners (`flask journey run`, real processes)
execute it. Prints steps/s, the lag of executed steps behind their due time (p50/p99/max), overall and per wave,
and each runner's peak memory (VmHWM). Figures are printed, not asserted.

The journey: tag → wait → if tagged (yes: score) → wait → send a template. Runs are written as segment entry writes
them (one executemany), due at `--entry-rate` runs per second from the start (0: all at once, a burst); the lag of a
step is `journey_steps.at` minus when it was due (the run's entry time, plus the waits before it).

With everyone entering at once, the steps fall due in three waves, `--wait` seconds apart: the first step (wave 0),
the first wait's end with the `if` and its `score` (wave 1), the second wait's end with the send (wave 2). With
waits shorter than a wave takes to run (the default 5 s) the waves pile up and the lag is the burst's: how long
600k steps take. With waits longer than that (a journey's real waits are hours or days) each wave is measured on
its own: its lag is how long one wave of N or 3N due steps takes.

    .venv/bin/python bench/journeys.py --followers 100000                 # SQLite, 2 runners, 5 s waits: a burst
    .venv/bin/python bench/journeys.py --followers 100000 --wait 120      # waves apart: each wave's lag
    .venv/bin/python bench/journeys.py --followers 20000 --entry-rate 150 # steady arrivals: the lag at that rate
    .venv/bin/python bench/journeys.py --database-url postgresql://u:p@host:5432/db  # a fresh <db>_bench_journeys
    .venv/bin/python bench/journeys.py --followers 20000 --before /work/wt/journeys-before  # that tree's runners too
"""

from __future__ import annotations

import argparse
import os
import shutil
import subprocess
import sys
import tempfile
import time
from datetime import timedelta
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

import sqlalchemy as sa  # noqa: E402

from foundation.clock import utcnow  # noqa: E402
from foundation.db import Database  # noqa: E402
from scrm.journey_models import RUNNING, JourneyRun  # noqa: E402
from scrm.models import Follower  # noqa: E402
from scrm.playbook import store  # noqa: E402
from welead.migrate import upgrade  # noqa: E402

BOOK = """
name: bench
journeys:
  bench:
    steps:
      - do: [{{tag: entered}}]
      - wait: {wait}s
      - if: {{tagged: [entered]}}
        yes: [{{do: [{{score: 5}}]}}]
      - wait: {wait}s
      - do: [{{send_template: case_study}}]
"""
WAVES = {"0": 0, "1": 1, "2": 1, "2.yes.0": 1, "3": 2, "4": 2}  # step path → the wave it falls due in
STEPS_PER_RUN = len(WAVES)
CHUNK = 20_000
LEAD = 10  # seconds between writing the runs and the first one being due


def fresh_url(args: argparse.Namespace, workdir: Path) -> str:
    if not args.database_url:
        return f"sqlite:///{workdir / 'journeys.db'}"
    from tests.helpers import recreate_pg_database

    url = sa.make_url(args.database_url)
    return recreate_pg_database(url, f"{url.database}_bench_journeys")


def populate(db: Database, n: int, entry_rate: float, wait: int) -> None:
    """N followers and their runs, due from now on at `entry_rate` per second (all now when 0)."""
    with db.transaction() as session:
        store.load(session, BOOK.format(wait=wait))
    t0 = utcnow() + timedelta(seconds=LEAD)  # the runners start meanwhile: their start-up is not lag
    for start in range(0, n, CHUNK):
        ids = range(start, min(n, start + CHUNK))
        with db.transaction() as session:
            session.execute(sa.insert(Follower.__table__), [{"openid": f"b{i}", "channel": "oa", "subscribed": True,
                            "stage": "new", "profile": {}, "created_at": t0} for i in ids])  # fmt: skip
            fids = dict(session.execute(sa.select(Follower.openid, Follower.id).where(Follower.openid.in_(
                [f"b{i}" for i in ids]))).all())  # fmt: skip
            due = [t0 + timedelta(seconds=i / entry_rate) if entry_rate else t0 for i in ids]
            session.execute(sa.insert(JourneyRun.__table__), [{"follower_id": fids[f"b{i}"], "journey": "bench",
                            "key": f"bench:{i}", "step": 0, "state": RUNNING, "started_at": due[k],
                            "updated_at": due[k], "version": 1, "position": "0", "due_at": due[k]}
                            for k, i in enumerate(ids)])  # fmt: skip


def peak_kib(pid: int) -> int:
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmHWM:"):
                return int(line.split()[1])
    except OSError:
        pass
    return 0


def run_workers(
    args: argparse.Namespace, url: str, redis_url: str, db: Database, n: int, workdir: Path, code: Path
) -> dict:
    """`--workers` runner processes of the code in `code` (this tree, or `--before`'s) until every run finished."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("WELEAD_")}
    env.update(DATABASE_URL=url, REDIS_URL=redis_url, WELEAD_QUIET_HOURS="off", PYTHONUNBUFFERED="1")
    argv = [sys.executable, "-m", "flask", "--app", "wsgi", "journey", "run", "--batch", str(args.batch),
            "--idle", "0.2"]  # fmt: skip
    logs = [open(workdir / f"runner-{i}.log", "wb") for i in range(args.workers)]  # noqa: SIM115
    procs = [subprocess.Popen(argv, cwd=code, env=env, stdout=log, stderr=subprocess.STDOUT) for log in logs]
    started, peaks = time.monotonic(), [0] * len(procs)
    done_q = sa.select(sa.func.count()).select_from(JourneyRun).where(JourneyRun.state != RUNNING)
    try:
        while True:
            time.sleep(1.0)
            peaks = [max(p, peak_kib(proc.pid)) for p, proc in zip(peaks, procs, strict=True)]
            with db.sessions() as session:
                finished = session.scalar(done_q)
            if finished >= n or time.monotonic() - started > args.timeout:
                break
            if any(proc.poll() is not None for proc in procs):
                raise RuntimeError("a runner died: " + (workdir / "runner-0.log").read_text()[-2000:])
    finally:
        for proc in procs:
            proc.terminate()
            proc.wait(10)
        for log in logs:
            log.close()
    return {"seconds": time.monotonic() - started, "finished": finished, "peak_kib": peaks}


def lags(db: Database, wait: int) -> tuple[list[list[float]], list[list[float]]]:
    """Per wave: each executed step's lag behind its due time, and when it was executed (epoch seconds)."""
    query = sa.text("SELECT s.path, s.at, r.started_at FROM journey_steps s JOIN journey_runs r ON r.id = s.run_id")
    lag: list[list[float]] = [[], [], []]
    when: list[list[float]] = [[], [], []]
    with db.sessions() as session:
        for path, at, started in session.execute(query):
            at, started = _dt(at), _dt(started)
            wave = WAVES[path]
            lag[wave].append((at - (started + timedelta(seconds=wave * wait))).total_seconds())
            when[wave].append(at.timestamp())
    return lag, when


def _dt(value):
    from datetime import datetime

    return value if isinstance(value, datetime) else datetime.fromisoformat(str(value))


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--followers", type=int, default=100_000)
    p.add_argument("--entry-rate", type=float, default=0.0, help="runs entering per second (0: all at once)")
    p.add_argument("--wait", type=int, default=5, help="seconds of each of the journey's two waits")
    p.add_argument("--workers", type=int, default=2)
    p.add_argument("--batch", type=int, default=500, help="runs per transaction")
    p.add_argument("--timeout", type=float, default=3600.0)
    p.add_argument("--database-url", default="")
    p.add_argument("--before", type=Path, help="also run the runners of this tree (e.g. a worktree of main) first")
    args = p.parse_args()

    trees = ([("before", args.before.resolve())] if args.before else []) + [("this tree", ROOT)]
    results = [measure(args, name, code) for name, code in trees]
    if len(results) > 1:
        side_by_side(results)
    return 0


def measure(args: argparse.Namespace, name: str, code: Path) -> dict:
    """One fresh database, populated by this tree, stepped by `code`'s runners; the figures printed and returned."""
    from welead.embedded import EmbeddedRedis

    workdir = Path(tempfile.mkdtemp(prefix="wlb-journeys-", dir="/tmp"))
    redis = EmbeddedRedis()
    try:
        redis_url = redis.start()
        url = fresh_url(args, workdir)
        upgrade(url)
        db = Database(url)
        t = time.monotonic()
        populate(db, args.followers, args.entry_rate, args.wait)
        print(f"== {name}: runners from {code}, {os.getloadavg()[0]:.2f} load (1 min) ==")
        print(f"{args.followers:,} followers and runs written in {time.monotonic() - t:.1f} s "
              f"({'SQLite' if url.startswith('sqlite') else 'PostgreSQL'}, entry rate "
              f"{args.entry_rate or 'all at once'}, waits of {args.wait} s)")  # fmt: skip
        got = run_workers(args, url, redis_url, db, args.followers, workdir, code)
        out = report(args, db, got)
        db.dispose()
    finally:
        redis.stop()
        shutil.rmtree(workdir, ignore_errors=True)
    return {"name": name, **out}


def _p(values: list[float], q: float) -> float:
    return values[min(len(values) - 1, int(len(values) * q))] if values else 0.0


WHAT = (
    "the first step, due at entry",
    "the first wait's end: the `if` and its score",
    "the second wait's end: the send",
)


def report(args: argparse.Namespace, db: Database, got: dict) -> dict:
    lag, when = lags(db, args.wait)
    every = sorted(v for wave in lag for v in wave)
    times = [t for wave in when for t in wave]
    steps, span = len(every), max(max(times, default=0) - min(times, default=0), 1e-9)
    print(f"runs finished: {got['finished']:,} / {args.followers:,}  steps executed: {steps:,} "
          f"(expected {args.followers * STEPS_PER_RUN:,})")  # fmt: skip
    print(f"all steps: {steps / span:,.0f} steps/s with {args.workers} runners (first to last step {span:.1f} s, "
          f"the {2 * args.wait} s of waits included); lag p50 {_p(every, 0.5):.2f} s  p99 {_p(every, 0.99):.2f} s  "
          f"max {every[-1] if every else 0:.2f} s")  # fmt: skip
    waves, spans = [], []
    for k, (values, at) in enumerate(zip(lag, when, strict=True)):
        values.sort()
        took = max(max(at, default=0) - min(at, default=0), 1e-9)
        spans.append((min(at, default=0), max(at, default=0)))
        waves.append({"steps": len(values), "rate": len(values) / took, "p99": _p(values, 0.99)})
        print(
            f"  wave {k} ({WHAT[k]}): {len(values):,} steps in {took:.1f} s, {len(values) / took:,.0f} steps/s; "
            f"lag p50 {_p(values, 0.5):.2f} s  p99 {_p(values, 0.99):.2f} s  max {values[-1] if values else 0:.2f} s"
        )
    busy = _union(spans)
    apart = all(spans[k][1] <= spans[k + 1][0] for k in range(len(spans) - 1))
    how = (f"waves apart, the worst wave's lag p99 {max(w['p99'] for w in waves):.2f} s" if apart else
           f"waves overlapped ({args.wait} s waits are shorter than a wave takes): the lag is the burst's")  # fmt: skip
    print(f"while busy (each wave's first to last step, their union {busy:.1f} s): {steps / busy:,.0f} steps/s; {how}")
    print("runner peak memory (VmHWM): " + ", ".join(f"{k / 1024:.0f} MiB" for k in got["peak_kib"]))
    return {"steps": steps, "rate": steps / span, "busy": steps / busy, "p99": _p(every, 0.99), "apart": apart,
            "waves": waves, "peak_mib": max(got["peak_kib"], default=0) / 1024}  # fmt: skip


def _union(spans: list[tuple[float, float]]) -> float:
    """The length of the union of the (start, end) intervals."""
    total, end = 0.0, float("-inf")
    for a, b in sorted(spans):
        if b > end:
            total += b - max(a, end)
            end = b
    return max(total, 1e-9)


def side_by_side(results: list[dict]) -> None:
    print("\n                      " + "".join(f"{r['name']:>16}" for r in results))
    rows = [("steps/s (first-last)", lambda r: f"{r['rate']:,.0f}"),
            ("steps/s while busy", lambda r: f"{r['busy']:,.0f}"),
            ("waves", lambda r: "apart" if r["apart"] else "overlapped"),
            ("lag p99, all steps", lambda r: f"{r['p99']:.2f} s")]  # fmt: skip
    rows += [(f"lag p99, wave {k}", lambda r, k=k: f"{r['waves'][k]['p99']:.2f} s") for k in range(3)]
    rows += [("runner peak memory", lambda r: f"{r['peak_mib']:.0f} MiB")]
    for label, cell in rows:
        print(f"{label:<22}" + "".join(f"{cell(r):>16}" for r in results))


if __name__ == "__main__":
    sys.exit(main())
