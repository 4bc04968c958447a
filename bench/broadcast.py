#!/usr/bin/env python3
"""Broadcast throughput and memory: N followers, the sandbox rate-limited, RQ workers sending; figures printed.

What runs is what `make run` runs: the sandbox served by gunicorn (welead.run.gunicorn_argv), `flask worker`
processes, `flask scheduler` (the pump), and `flask broadcast send` as the broadcast process, each its own process
on one embedded Redis and one database. Printed: achieved send rate / configured rate (from the deliveries' sent_at,
steady state), 45009 answers (sends the sandbox refused for its rate limit, retried), time to enqueue, peak RSS of
the broadcast process and of each worker; then the enqueue side alone with --enqueue-followers (no workers).

    .venv/bin/python bench/broadcast.py [--followers 100000] [--rate 500] [--workers 2]
                                        [--enqueue-followers 1000000] [--database-url postgresql://...]

With --database-url the database must be empty (it is migrated here); SQLite files go under bench/out/.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import shutil
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from contextlib import ExitStack, suppress
from datetime import datetime
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

import redis  # noqa: E402
from sqlalchemy import func, insert, literal, select  # noqa: E402

from foundation.clock import utcnow  # noqa: E402
from foundation.db import Database  # noqa: E402
from scrm.delivery_models import Broadcast, Delivery  # noqa: E402
from scrm.models import Follower, FollowerTag, Tag  # noqa: E402
from wechat.sandbox_state import K, SandboxControl  # noqa: E402
from welead.embedded import EmbeddedRedis  # noqa: E402
from welead.migrate import upgrade  # noqa: E402
from welead.run import flask_argv, gunicorn_argv  # noqa: E402

OUT = ROOT / "bench" / "out"
SEND = "oa/message/template/send"
SEED_CHUNK = 20_000


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def seed(db: Database, n: int) -> float:
    """`n` subscribed followers tagged "bench", inserted in chunks (the bench process's memory is not measured)."""
    started, now = time.monotonic(), utcnow()
    for start in range(0, n, SEED_CHUNK):
        with db.transaction() as s:
            rows = [
                {
                    "openid": f"oBench{i:09d}",
                    "channel": "oa",
                    "subscribed": True,
                    "stage": "new",
                    "profile": {},
                    "created_at": now,
                    "subscribed_at": now,
                }
                for i in range(start, min(n, start + SEED_CHUNK))
            ]
            s.execute(Follower.__table__.insert(), rows)
    with db.transaction() as s:
        tag = Tag(name="bench", created_at=now)
        s.add(tag)
        s.flush()
        tagged = select(Follower.id, literal(tag.id), literal(now))
        s.execute(insert(FollowerTag).from_select(["follower_id", "tag_id", "added_at"], tagged))
    return time.monotonic() - started


def cpu_seconds(pid: int) -> float:
    """User + system CPU of a process and its children so far (gunicorn's workers are its children)."""
    total = 0.0
    tick = os.sysconf("SC_CLK_TCK")
    pids = [pid, *map(int, Path(f"/proc/{pid}/task/{pid}/children").read_text().split())]
    for p in pids:
        try:
            fields = Path(f"/proc/{p}/stat").read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        total += (int(fields[11]) + int(fields[12])) / tick
    return total


def peak_rss_mb(pid: int) -> float:
    """VmHWM: the process's peak resident set so far."""
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) / 1024
    return float("nan")


class Stack:
    """The processes of one run, stopped in reverse order."""

    def __init__(self, env: dict[str, str], logs: Path) -> None:
        self.env, self.logs, self.procs = env, logs, []

    def start(self, name: str, argv: list[str]) -> subprocess.Popen:
        log = (self.logs / f"{name}.log").open("wb")
        proc = subprocess.Popen(argv, cwd=ROOT, env=self.env, stdout=log, stderr=subprocess.STDOUT)
        self.procs.append((name, proc, log))
        return proc

    def stop(self) -> None:
        for _name, proc, log in reversed(self.procs):
            if proc.poll() is None:
                proc.terminate()
                try:
                    proc.wait(15)
                except subprocess.TimeoutExpired:
                    proc.kill()
                    proc.wait(5)
            log.close()
        self.procs = []


def wait_http(url: str, timeout: float = 60) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            with urllib.request.urlopen(url, timeout=2):
                return
        except (urllib.error.URLError, OSError):
            time.sleep(0.2)
    raise SystemExit(f"{url} did not answer")


def run_cli(env: dict[str, str], log: Path) -> tuple[float, float, int]:
    """`flask broadcast send --no-wait` as its own process: (enqueue seconds, peak RSS MB, deliveries enqueued).

    The peak is the child's VmHWM, sampled while it runs: wait4's ru_maxrss would also count the pages it shared
    with this (larger) process between fork and exec.
    """
    argv = flask_argv("broadcast", "send", "--segment", '{"tag": "bench"}', "--template", "event_checkin",
                      "--data", '{"event_name": "Bench Expo"}', "--no-wait")  # fmt: skip
    peak = 0.0
    with log.open("wb") as out:
        proc = subprocess.Popen(argv, cwd=ROOT, env=env, stdout=out, stderr=subprocess.STDOUT)
        while proc.poll() is None:
            with suppress(OSError):  # it may have just exited
                peak = max(peak, peak_rss_mb(proc.pid))
            time.sleep(0.1)
    text = log.read_text(errors="replace")
    found = re.search(r"enqueued (\d+) deliveries in ([\d.]+)s", text)
    if proc.returncode != 0 or not found:
        raise SystemExit(f"broadcast send failed ({proc.returncode}):\n{text[-2000:]}")
    return float(found.group(2)), peak, int(found.group(1))


def refused(conn: redis.Redis) -> int:
    """Template sends the sandbox answered 45009 (its rate limit), read from its record in slices."""
    total, step = 0, 5000
    for start in range(0, int(conn.llen(K.sent)), step):
        for raw in conn.lrange(K.sent, start, start + step - 1):
            rec = json.loads(raw)
            total += rec["endpoint"] == SEND and rec["errcode"] == 45009
    return total


def sending_figures(db: Database) -> dict[str, float]:
    with db.sessions() as s:
        first, last, sent = s.execute(
            select(func.min(Delivery.sent_at), func.max(Delivery.sent_at), func.count()).where(Delivery.state == "sent")
        ).one()
        retries = s.scalar(select(func.sum(Delivery.retries))) or 0
    span = (last - first).total_seconds() if sent > 1 else float("nan")
    return {"sent": sent, "span": span, "rate": (sent - 1) / span if span else float("nan"), "retries": retries}


def broadcast_state(db: Database) -> tuple[str, int, int]:
    with db.sessions() as s:
        b = s.scalar(select(Broadcast).order_by(Broadcast.id.desc()).limit(1))
        done = s.scalar(select(func.count()).where(Delivery.state.not_in(("queued", "sending")))) or 0
        return (b.state if b else "none"), (b.total if b else 0), done


def prepare(workdir: Path, name: str, database_url: str | None, redis_url: str, n: int) -> tuple[Database, dict]:
    url = database_url or f"sqlite:///{workdir / f'{name}.db'}"
    upgrade(url)
    db = Database(url)
    took = seed(db, n)
    print(f"[{name}] seeded {n:,} followers in {took:.1f}s", flush=True)
    env = {k: v for k, v in os.environ.items() if not k.startswith(("WELEAD_", "WECHAT_", "WECOM_"))}
    env.update(
        DATABASE_URL=url,
        REDIS_URL=redis_url,
        PYTHONUNBUFFERED="1",
        WELEAD_QUIET_HOURS="off",
        WELEAD_TEMPLATE_DAILY_QUOTA="100000000",
    )  # the run sends more than WeChat's default day (100k)
    return db, env


def send_run(args: argparse.Namespace, workdir: Path, redis_url: str) -> dict:
    db, env = prepare(workdir, "send", args.database_url, redis_url, args.followers)
    port = free_port()
    base = f"http://127.0.0.1:{port}"
    env.update(
        PORT=str(port),
        WELEAD_PUBLIC_URL=base,
        WELEAD_SEND_RATE=str(args.rate),
        WECHAT_API_BASE=f"{base}/sandbox/oa/cgi-bin/",
        WECOM_API_BASE=f"{base}/sandbox/wecom/cgi-bin/",
    )
    conn = redis.Redis.from_url(redis_url)
    conn.flushdb()
    stack = Stack(env, workdir)
    try:
        stack.start("sandbox", gunicorn_argv("wsgi:app", f"127.0.0.1:{port}", workers=args.sandbox_workers))
        wait_http(f"{base}/healthz")
        control = SandboxControl(conn)
        control.set_rate_limit(args.rate, SEND)
        workers = [stack.start(f"worker-{i}", flask_argv("worker")) for i in range(args.workers)]
        stack.start("scheduler", flask_argv("scheduler"))
        time.sleep(2)  # workers up and listening
        started = time.monotonic()
        enqueue_s, cli_rss, enqueued = run_cli(env, workdir / "cli-send.log")
        while True:
            state, total, done = broadcast_state(db)
            if state != "running" or time.monotonic() - started > args.timeout:
                break
            if int(time.monotonic() - started) % 10 == 0:
                print(f"  {done:,}/{total:,} deliveries final", flush=True)
            time.sleep(1)
        figures = sending_figures(db)
        cpu = {name: round(cpu_seconds(proc.pid), 1) for name, proc, _ in stack.procs if proc.poll() is None}
        refused_45009 = refused(conn)
        return {
            "state": state,
            "enqueued": enqueued,
            "enqueue_s": enqueue_s,
            "cli_rss": cli_rss,
            "worker_rss": [peak_rss_mb(w.pid) for w in workers],
            "refused_45009": refused_45009,
            "wall_s": time.monotonic() - started,
            "cpu_s": cpu,
            **figures,
        }
    finally:
        stack.stop()
        db.dispose()


def enqueue_run(args: argparse.Namespace, workdir: Path, redis_url: str) -> dict:
    db, env = prepare(workdir, "enqueue", args.enqueue_database_url, redis_url, args.enqueue_followers)
    env["WECHAT_API_BASE"] = "http://127.0.0.1:9/sandbox/oa/cgi-bin/"  # nothing is sent: no worker runs
    conn = redis.Redis.from_url(redis_url)
    conn.flushdb()
    try:
        enqueue_s, cli_rss, enqueued = run_cli(env, workdir / "cli-enqueue.log")
        jobs = conn.llen("rq:queue:default")
        redis_mb = int(conn.info("memory")["used_memory"]) / 2**20
    finally:
        db.dispose()
    return {"enqueued": enqueued, "enqueue_s": enqueue_s, "cli_rss": cli_rss, "jobs": jobs, "redis_mb": redis_mb}


def report(args: argparse.Namespace, send: dict | None, enqueue: dict | None) -> None:
    print("\n== broadcast bench", datetime.now().isoformat(timespec="seconds"), f"({os.cpu_count()} CPUs)")
    if send:
        print(
            f"send: {args.followers:,} followers, configured {args.rate}/s, {args.workers} workers, "
            f"sandbox limit {args.rate}/s ({args.sandbox_workers} gunicorn workers)"
        )
        print(
            f"  final state            {send['state']}  (sent {send['sent']:,}, retries {send['retries']:,}, "
            f"45009 answers {send['refused_45009']:,})"
        )
        print(
            f"  achieved rate          {send['rate']:.1f}/s = {send['rate'] / args.rate:.3f} of configured "
            f"(over {send['span']:.1f}s of sending)"
        )
        print(
            f"  time to enqueue        {send['enqueue_s']:.1f}s for {send['enqueued']:,} deliveries "
            f"({send['enqueued'] / max(send['enqueue_s'], 1e-9):,.0f}/s)"
        )
        print(f"  peak RSS broadcast     {send['cli_rss']:.0f} MB")
        print(f"  peak RSS workers       {', '.join(f'{m:.0f} MB' for m in send['worker_rss'])}")
        per_send = {k: f"{v / max(send['sent'], 1) * 1000:.1f} ms" for k, v in send["cpu_s"].items()}
        print(f"  CPU per message        {per_send}")
    if enqueue:
        print(f"enqueue only: {args.enqueue_followers:,} followers")
        print(
            f"  time to enqueue        {enqueue['enqueue_s']:.1f}s for {enqueue['enqueued']:,} deliveries "
            f"({enqueue['enqueued'] / max(enqueue['enqueue_s'], 1e-9):,.0f}/s), {enqueue['jobs']:,} RQ jobs"
        )
        print(f"  peak RSS broadcast     {enqueue['cli_rss']:.0f} MB   (Redis used {enqueue['redis_mb']:.0f} MB)")
    print(json.dumps({"send": send, "enqueue": enqueue}, default=str))


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--followers", type=int, default=100_000)
    p.add_argument("--rate", type=int, default=500, help="configured send rate = the sandbox's limit (per second)")
    p.add_argument("--workers", type=int, default=2)
    p.add_argument("--sandbox-workers", type=int, default=3)
    p.add_argument("--enqueue-followers", type=int, default=1_000_000, help="0 to skip the enqueue-only run")
    p.add_argument("--skip-send", action="store_true")
    p.add_argument("--database-url", help="an empty database for the send run (default: SQLite under bench/out)")
    p.add_argument("--enqueue-database-url", help="an empty database for the enqueue run")
    p.add_argument("--timeout", type=float, default=1800)
    p.add_argument("--keep", action="store_true", help="keep bench/out/broadcast-* (databases, logs)")
    args = p.parse_args()
    workdir = OUT / f"broadcast-{int(time.time())}"
    workdir.mkdir(parents=True)
    with ExitStack() as stack:
        server = EmbeddedRedis()
        server.start()
        stack.callback(server.stop)
        if not args.keep:
            stack.callback(shutil.rmtree, workdir, True)
        send = None if args.skip_send else send_run(args, workdir, server.url)
        enqueue = enqueue_run(args, workdir, server.url) if args.enqueue_followers else None
        report(args, send, enqueue)


if __name__ == "__main__":
    main()
