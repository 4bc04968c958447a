#!/usr/bin/env python3
"""Journeys at scale: N followers enter a 5-step journey; 2 step runners (`flask journey run`, real processes)
execute it. Prints steps/s, the lag of executed steps behind their due time (p50/p99/max), and each runner's peak
memory (VmHWM). Figures are printed, not asserted.

The journey: tag → wait → if tagged (yes: score) → wait → send a template. Runs are written as segment entry writes
them (one executemany), due at `--entry-rate` runs per second from the start (0: all at once, a burst); the lag of a
step is `journey_steps.at` minus when it was due (the run's entry time, plus the waits before it).

    .venv/bin/python bench/journeys.py --followers 100000                 # SQLite, 2 runners
    .venv/bin/python bench/journeys.py --followers 20000 --entry-rate 150 # steady arrivals: the lag at that rate
    .venv/bin/python bench/journeys.py --database-url postgresql://u:p@host:5432/db  # a fresh <db>_bench_journeys
"""

from __future__ import annotations

import argparse
import os
import shutil
import statistics
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

WAIT1, WAIT2 = 5, 5  # seconds
BOOK = f"""
name: bench
journeys:
  bench:
    steps:
      - do: [{{tag: entered}}]
      - wait: {WAIT1}s
      - if: {{tagged: [entered]}}
        yes: [{{do: [{{score: 5}}]}}]
      - wait: {WAIT2}s
      - do: [{{send_template: case_study}}]
"""
OFFSETS = {"0": 0, "1": WAIT1, "2": WAIT1, "2.yes.0": WAIT1, "3": WAIT1 + WAIT2, "4": WAIT1 + WAIT2}
STEPS_PER_RUN = len(OFFSETS)
CHUNK = 20_000
LEAD = 10  # seconds between writing the runs and the first one being due


def fresh_url(args: argparse.Namespace, workdir: Path) -> str:
    if not args.database_url:
        return f"sqlite:///{workdir / 'journeys.db'}"
    from tests.helpers import recreate_pg_database

    url = sa.make_url(args.database_url)
    return recreate_pg_database(url, f"{url.database}_bench_journeys")


def populate(db: Database, n: int, entry_rate: float) -> None:
    """N followers and their runs, due from now on at `entry_rate` per second (all now when 0)."""
    with db.transaction() as session:
        store.load(session, BOOK)
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


def run_workers(args: argparse.Namespace, url: str, redis_url: str, db: Database, n: int, workdir: Path) -> dict:
    env = {k: v for k, v in os.environ.items() if not k.startswith("WELEAD_")}
    env.update(DATABASE_URL=url, REDIS_URL=redis_url, WELEAD_QUIET_HOURS="off", PYTHONUNBUFFERED="1")
    argv = [sys.executable, "-m", "flask", "--app", "wsgi", "journey", "run", "--batch", str(args.batch),
            "--idle", "0.2"]  # fmt: skip
    logs = [open(workdir / f"runner-{i}.log", "wb") for i in range(args.workers)]  # noqa: SIM115
    procs = [subprocess.Popen(argv, cwd=ROOT, env=env, stdout=log, stderr=subprocess.STDOUT) for log in logs]
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


def lags(db: Database) -> tuple[list[float], float, float]:
    """Each executed step's lag behind its due time; and the first and last execution times (epoch seconds)."""
    query = sa.text("SELECT s.path, s.at, r.started_at FROM journey_steps s JOIN journey_runs r ON r.id = s.run_id")
    out, first, last = [], float("inf"), 0.0
    with db.sessions() as session:
        for path, at, started in session.execute(query):
            at, started = _dt(at), _dt(started)
            due = started + timedelta(seconds=OFFSETS[path])
            out.append((at - due).total_seconds())
            first, last = min(first, at.timestamp()), max(last, at.timestamp())
    return out, first, last


def _dt(value):
    from datetime import datetime

    return value if isinstance(value, datetime) else datetime.fromisoformat(str(value))


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--followers", type=int, default=100_000)
    p.add_argument("--entry-rate", type=float, default=0.0, help="runs entering per second (0: all at once)")
    p.add_argument("--workers", type=int, default=2)
    p.add_argument("--batch", type=int, default=500, help="runs per transaction")
    p.add_argument("--timeout", type=float, default=3600.0)
    p.add_argument("--database-url", default="")
    args = p.parse_args()

    from welead.embedded import EmbeddedRedis

    workdir = Path(tempfile.mkdtemp(prefix="wlb-journeys-", dir="/tmp"))
    redis = EmbeddedRedis()
    try:
        redis_url = redis.start()
        url = fresh_url(args, workdir)
        upgrade(url)
        db = Database(url)
        t = time.monotonic()
        populate(db, args.followers, args.entry_rate)
        print(f"{args.followers:,} followers and runs written in {time.monotonic() - t:.1f} s "
              f"({'SQLite' if url.startswith('sqlite') else 'PostgreSQL'}, entry rate "
              f"{args.entry_rate or 'all at once'})")  # fmt: skip
        got = run_workers(args, url, redis_url, db, args.followers, workdir)
        report(args, db, got)
        db.dispose()
    finally:
        redis.stop()
        shutil.rmtree(workdir, ignore_errors=True)
    return 0


def report(args: argparse.Namespace, db: Database, got: dict) -> None:
    values, first, last = lags(db)
    steps = len(values)
    span = max(last - first, 1e-9)
    values.sort()
    p99 = values[min(len(values) - 1, int(len(values) * 0.99))] if values else 0.0
    print(f"runs finished: {got['finished']:,} / {args.followers:,}  steps executed: {steps:,} "
          f"(expected {args.followers * STEPS_PER_RUN:,})")  # fmt: skip
    print(f"steps/s with {args.workers} runners: {steps / span:,.0f}  (first to last step {span:.1f} s, the "
          f"{WAIT1 + WAIT2} s of waits included)")  # fmt: skip
    if values:
        print(f"lag behind due time: p50 {statistics.median(values):.2f} s  p99 {p99:.2f} s  max {values[-1]:.2f} s")
    print("runner peak memory (VmHWM): " + ", ".join(f"{k / 1024:.0f} MiB" for k in got["peak_kib"]))


if __name__ == "__main__":
    sys.exit(main())
