#!/usr/bin/env python3
"""Broadcast throughput, CPU per message and memory: N followers, the sandbox rate-limited, RQ workers sending.

What runs is what `make run` runs: the sandbox served by gunicorn (welead.run.gunicorn_argv), `flask worker`
processes, `flask scheduler` (the pump), and `flask broadcast send` as the broadcast process, each its own process
on one embedded Redis and one database. Printed: achieved send rate / configured rate (from the deliveries' sent_at,
steady state), 45009 answers (sends the sandbox refused for its rate limit, retried), time to enqueue, peak RSS of
the broadcast process and of each worker, CPU per message of the workers (their own /proc times, apart from the
sandbox's) and of the sandbox; then the enqueue side alone with --enqueue-followers (no workers).

    .venv/bin/python bench/broadcast.py [--followers 100000] [--rate 500] [--workers 2]
                                        [--enqueue-followers 1000000] [--database-url postgresql://...]
                                        [--before /tmp/welead-before] [--repeat 3] [--pin] [--profile]

--before PATH measures an older checkout (a git worktree) too, alternating with this one, run after run; the medians
of --repeat runs are printed side by side. --pin puts the sandbox on the last CPU and everything else on the others
(the fake WeChat server on a core of its own). --profile runs the workers under cProfile (main thread CPU clock) in
an extra, unmeasured run per checkout and prints where a worker's CPU goes, by phase.

With --database-url each run gets a fresh database `<db>_bench_<name>` on that server (the role needs CREATEDB);
without it, SQLite files under bench/out/.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import shutil
import signal
import statistics
import subprocess
import sys
import time
import urllib.error
import urllib.request
from contextlib import ExitStack, suppress
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

import redis  # noqa: E402
from sqlalchemy import func, insert, literal, select  # noqa: E402

from bench.broadcast_profile import phases, print_phases  # noqa: E402
from bench.callback import free_port, fresh_database  # noqa: E402
from foundation.clock import utcnow  # noqa: E402
from foundation.db import Database  # noqa: E402
from scrm.delivery_models import Broadcast, Delivery  # noqa: E402
from scrm.models import Follower, FollowerTag, Tag  # noqa: E402
from wechat.sandbox_state import K, SandboxControl  # noqa: E402
from welead.embedded import EmbeddedRedis  # noqa: E402
from welead.run import flask_argv, gunicorn_argv  # noqa: E402

OUT = ROOT / "bench" / "out"
SEND = "oa/message/template/send"
SEED_CHUNK = 20_000


@dataclass(frozen=True)
class Checkout:
    """What is measured: this checkout ("after") or an older one (`--before`)."""

    name: str
    path: Path


def seed(db: Database, n: int) -> float:
    """`n` subscribed followers tagged "bench", inserted in chunks (the bench process's memory is not measured)."""
    started, now = time.monotonic(), utcnow()
    for start in range(0, n, SEED_CHUNK):
        with db.transaction() as s:
            rows = [
                {"openid": f"oBench{i:09d}", "channel": "oa", "subscribed": True, "stage": "new", "profile": {},
                 "created_at": now, "subscribed_at": now}
                for i in range(start, min(n, start + SEED_CHUNK))
            ]  # fmt: skip
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


def wait_http(url: str, timeout: float = 60) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            with urllib.request.urlopen(url, timeout=2):
                return
        except (urllib.error.URLError, OSError):
            time.sleep(0.2)
    raise SystemExit(f"{url} did not answer")


def affinity(cpus: set[int] | None):
    return (lambda: os.sched_setaffinity(0, cpus)) if cpus else None


class Stack:
    """The processes of one run, stopped in reverse order."""

    def __init__(self, env: dict[str, str], logs: Path, cwd: Path, cpus: set[int] | None) -> None:
        self.env, self.logs, self.cwd, self.cpus, self.procs = env, logs, cwd, cpus, []

    def start(self, name: str, argv: list[str], cpus: set[int] | None = None, **env: str) -> subprocess.Popen:
        log = (self.logs / f"{name}.log").open("wb")
        proc = subprocess.Popen(argv, cwd=self.cwd, env={**self.env, **env}, stdout=log, stderr=subprocess.STDOUT,
                                preexec_fn=affinity(cpus or self.cpus))  # fmt: skip
        self.procs.append((name, proc, log))
        return proc

    def stop(self) -> None:
        for _name, proc, log in reversed(self.procs):
            if proc.poll() is None:
                proc.terminate()
                try:
                    proc.wait(30)
                except subprocess.TimeoutExpired:
                    proc.kill()
                    proc.wait(5)
            log.close()
        self.procs = []


def run_cli(env: dict[str, str], log: Path, cwd: Path, cpus: set[int] | None) -> tuple[float, float, int]:
    """`flask broadcast send --no-wait` as its own process: (enqueue seconds, peak RSS MB, deliveries enqueued).

    The peak is the child's VmHWM, sampled while it runs: wait4's ru_maxrss would also count the pages it shared
    with this (larger) process between fork and exec.
    """
    argv = flask_argv("broadcast", "send", "--segment", '{"tag": "bench"}', "--template", "event_checkin",
                      "--data", '{"event_name": "Bench Expo"}', "--no-wait")  # fmt: skip
    peak = 0.0
    with log.open("wb") as out:
        proc = subprocess.Popen(argv, cwd=cwd, env=env, stdout=out, stderr=subprocess.STDOUT,
                                preexec_fn=affinity(cpus))  # fmt: skip
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


def migrate(url: str, co: Checkout) -> None:
    """The checkout's own migrations (an older one must not get this one's schema: indexes, constraints)."""
    code = "import sys; from welead.migrate import upgrade; upgrade(sys.argv[1])"
    subprocess.run([sys.executable, "-c", code, url], cwd=co.path, env={**os.environ, "PYTHONPATH": str(co.path)},
                   check=True)  # fmt: skip


def prepare(args: argparse.Namespace, workdir: Path, name: str, base_url: str, n: int,
            co: Checkout) -> tuple[Database, dict]:  # fmt: skip
    url = fresh_database(base_url, workdir, name)
    migrate(url, co)
    db = Database(url)
    took = seed(db, n)
    print(f"[{name}] seeded {n:,} followers in {took:.1f}s", flush=True)
    env = {k: v for k, v in os.environ.items() if not k.startswith(("WELEAD_", "WECHAT_", "WECOM_"))}
    env.update(
        DATABASE_URL=url,
        PYTHONUNBUFFERED="1",
        WELEAD_QUIET_HOURS="off",
        WELEAD_TEMPLATE_DAILY_QUOTA="100000000",
    )  # the run sends more than WeChat's default day (100k)
    return db, env


def cpu_split(args: argparse.Namespace) -> tuple[set[int] | None, set[int] | None]:
    """(CPUs for the sandbox, CPUs for everything else) with --pin; (None, None) without."""
    cpus = sorted(os.sched_getaffinity(0))
    if not args.pin or len(cpus) < 2:
        return None, None
    return {cpus[-1]}, set(cpus[:-1])


def send_run(args: argparse.Namespace, workdir: Path, redis_url: str, co: Checkout, tag: str) -> dict:
    db, env = prepare(args, workdir, f"send_{co.name}_{tag}", args.database_url or "", args.followers, co)
    port = free_port()
    base = f"http://127.0.0.1:{port}"
    env.update(PORT=str(port), WELEAD_PUBLIC_URL=base, WELEAD_SEND_RATE=str(args.rate), REDIS_URL=redis_url,
               WECHAT_API_BASE=f"{base}/sandbox/oa/cgi-bin/", WECOM_API_BASE=f"{base}/sandbox/wecom/cgi-bin/",
               PYTHONPATH=str(co.path))  # fmt: skip
    conn = redis.Redis.from_url(redis_url)
    conn.flushdb()
    sandbox_cpus, other_cpus = cpu_split(args)
    logs = workdir / f"{co.name}-{tag}"
    logs.mkdir()
    stack = Stack(env, logs, co.path, other_cpus)
    profiles = [logs / f"worker-{i}.pstats" for i in range(args.workers)] if tag == "profile" else []
    try:
        threads = f"--worker-class gthread --threads {args.sandbox_threads}" if args.sandbox_threads else ""
        stack.start("sandbox", gunicorn_argv("wsgi:app", f"127.0.0.1:{port}", workers=args.sandbox_workers),
                    sandbox_cpus, GUNICORN_CMD_ARGS=threads)  # fmt: skip
        wait_http(f"{base}/healthz")
        SandboxControl(conn).set_rate_limit(args.rate, SEND)
        worker_argv = [[sys.executable, str(ROOT / "bench" / "profiled.py"), str(out), *flask_argv("worker")[2:]]
                       for out in profiles] or [flask_argv("worker")] * args.workers  # fmt: skip
        workers = [stack.start(f"worker-{i}", argv) for i, argv in enumerate(worker_argv)]
        stack.start("scheduler", flask_argv("scheduler"))
        time.sleep(3)  # workers up and listening
        for proc in workers if profiles else ():
            proc.send_signal(signal.SIGUSR1)
        idle = {name: cpu_seconds(proc.pid) for name, proc, _ in stack.procs}  # start-up, not sending
        started = time.monotonic()
        enqueue_s, cli_rss, enqueued = run_cli(env, logs / "cli-send.log", co.path, other_cpus)
        while True:
            state, total, done = broadcast_state(db)
            if state != "running" or time.monotonic() - started > args.timeout:
                break
            if int(time.monotonic() - started) % 10 == 0:
                print(f"  [{co.name}] {done:,}/{total:,} deliveries final", flush=True)
            time.sleep(1)
        figures = sending_figures(db)
        cpu = {name: cpu_seconds(proc.pid) - idle[name] for name, proc, _ in stack.procs if proc.poll() is None}
        result = {
            "state": state, "enqueued": enqueued, "enqueue_s": enqueue_s, "cli_rss": cli_rss,
            "worker_rss": max(peak_rss_mb(w.pid) for w in workers), "refused_45009": refused(conn),
            "wall_s": time.monotonic() - started, "cpu_s": cpu, **figures,
        }  # fmt: skip
    finally:
        stack.stop()
        db.dispose()
    sent = max(result["sent"], 1)
    if profiles:
        result["phases"] = phases(profiles)
    result["worker_ms"] = sum(v for k, v in cpu.items() if k.startswith("worker")) / sent * 1000
    result["sandbox_ms"] = cpu.get("sandbox", 0.0) / sent * 1000
    result["ratio"] = result["rate"] / args.rate
    return result


def enqueue_run(args: argparse.Namespace, workdir: Path, redis_url: str, co: Checkout, tag: str) -> dict:
    db, env = prepare(args, workdir, f"enq_{co.name}_{tag}", args.database_url or "", args.enqueue_followers, co)
    env.update(WECHAT_API_BASE="http://127.0.0.1:9/sandbox/oa/cgi-bin/", REDIS_URL=redis_url,
               WELEAD_SEND_RATE=str(args.rate), PYTHONPATH=str(co.path))  # nothing is sent: no worker runs  # fmt: skip
    conn = redis.Redis.from_url(redis_url)
    conn.flushdb()
    try:
        enqueue_s, cli_rss, enqueued = run_cli(env, workdir / f"cli-enqueue-{co.name}-{tag}.log", co.path, None)
        jobs = conn.llen("rq:queue:default")
        redis_mb = int(conn.info("memory")["used_memory"]) / 2**20
    finally:
        db.dispose()
    return {"enqueued": enqueued, "enqueue_s": enqueue_s, "cli_rss": cli_rss, "jobs": jobs, "redis_mb": redis_mb}


def median(runs: list[dict], key: str) -> float:
    return statistics.median(r[key] for r in runs)


def both_ms(runs: list[dict]) -> float:
    return median(runs, "worker_ms") + median(runs, "sandbox_ms")


def per_second(runs: list[dict], args: argparse.Namespace) -> float:
    return args.enqueue_followers / max(median(runs, "enqueue_s"), 1e-9)


SEND_ROWS = [
    ("achieved / configured rate", lambda rs, a: f"{median(rs, 'rate'):.0f}/s = {median(rs, 'ratio'):.2f}x"),
    ("worker CPU per message", lambda rs, a: f"{median(rs, 'worker_ms'):.2f} ms"),
    ("sandbox CPU per message", lambda rs, a: f"{median(rs, 'sandbox_ms'):.2f} ms"),
    ("ceiling, sandbox off the cores", lambda rs, a: f"{a.workers / (median(rs, 'worker_ms') / 1000):,.0f}/s"),
    ("ceiling, sandbox sharing them", lambda rs, a: f"{os.cpu_count() / (both_ms(rs) / 1000):,.0f}/s"),
    ("45009 answers / retries", lambda rs, a: f"{median(rs, 'refused_45009'):.0f} / {median(rs, 'retries'):.0f}"),
    ("time to enqueue (send run)", lambda rs, a: f"{median(rs, 'enqueue_s'):.1f} s"),
    ("peak RSS worker / broadcast", lambda rs, a: f"{median(rs, 'worker_rss'):.0f} / {median(rs, 'cli_rss'):.0f} MB"),
    ("final states", lambda rs, a: ", ".join(sorted({r["state"] for r in rs}))),
]
ENQUEUE_ROWS = [
    ("time to enqueue", lambda rs, a: f"{median(rs, 'enqueue_s'):.1f} s ({per_second(rs, a):,.0f}/s)"),
    ("peak RSS broadcast process", lambda rs, a: f"{median(rs, 'cli_rss'):.0f} MB"),
    ("RQ jobs / Redis used", lambda rs, a: f"{median(rs, 'jobs'):,.0f} / {median(rs, 'redis_mb'):.0f} MB"),
]


def table(title: str, rows: list, results: dict[str, list[dict]], args: argparse.Namespace) -> None:
    names = [n for n in results if results[n]]
    if not names:
        return
    print(f"\n{title} (median of {len(results[names[0]])} run(s))")
    print(f"  {'':34}" + "".join(f"{n:>28}" for n in names))
    for label, cell in rows:
        print(f"  {label:34}" + "".join(f"{cell(results[n], args):>28}" for n in names))


def report(args: argparse.Namespace, send: dict[str, list[dict]], enqueue: dict[str, list[dict]],
           profiled: dict[str, dict]) -> None:  # fmt: skip
    db = "PostgreSQL" if args.database_url else "SQLite"
    print("\n== broadcast bench", datetime.now().isoformat(timespec="seconds"), f"({os.cpu_count()} CPUs, {db})")
    pinned = ", pinned to a CPU of its own" if args.pin else ""
    print(f"send: {args.followers:,} followers, configured {args.rate}/s = the sandbox's limit, "
          f"{args.workers} workers, sandbox {args.sandbox_workers} gunicorn workers x {args.sandbox_threads or 1} "
          f"thread(s){pinned}")  # fmt: skip
    table("send", SEND_ROWS, send, args)
    if args.enqueue_followers:
        title = f"enqueue only: {args.enqueue_followers:,} followers, configured {args.rate}/s (the send jobs' size)"
        table(title, ENQUEUE_ROWS, enqueue, args)
    for name, run in profiled.items():
        print_phases(name, run["phases"], run["sent"])
    print(json.dumps({"send": send, "enqueue": enqueue}, default=str))


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--followers", type=int, default=100_000)
    p.add_argument("--rate", type=int, default=500, help="configured send rate = the sandbox's limit (per second)")
    p.add_argument("--workers", type=int, default=2)
    p.add_argument("--sandbox-workers", type=int, default=3)
    p.add_argument("--sandbox-threads", type=int, default=4,
                   help="gthread workers keep connections alive as WeChat does; 0: sync workers (a connection per "
                        "request, the figures before 2026-12-02)")  # fmt: skip
    p.add_argument("--enqueue-followers", type=int, default=1_000_000, help="0 to skip the enqueue-only run")
    p.add_argument("--skip-send", action="store_true")
    p.add_argument("--database-url", help="a PostgreSQL server: each run gets a fresh <db>_bench_<name> on it")
    p.add_argument("--before", type=Path, help="also measure this older checkout (a git worktree), as 'before'")
    p.add_argument("--after", type=Path, help="the checkout measured as 'after' (default: this one)")
    p.add_argument("--repeat", type=int, default=1, help="runs per checkout; medians are printed")
    p.add_argument("--pin", action="store_true", help="the sandbox on a CPU of its own, the rest on the others")
    p.add_argument("--profile", action="store_true", help="one more send run per checkout under cProfile: phases")
    p.add_argument("--timeout", type=float, default=1800)
    p.add_argument("--keep", action="store_true", help="keep bench/out/broadcast-* (databases, logs)")
    args = p.parse_args()
    checkouts = [Checkout("before", args.before.resolve())] if args.before else []
    checkouts.append(Checkout("after", (args.after or ROOT).resolve()))
    workdir = OUT / f"broadcast-{int(time.time())}"
    workdir.mkdir(parents=True)
    send: dict[str, list[dict]] = {co.name: [] for co in checkouts}
    enqueue: dict[str, list[dict]] = {co.name: [] for co in checkouts}
    profiled: dict[str, dict] = {}  # name -> a send run with its phases
    with ExitStack() as stack:
        server = EmbeddedRedis()
        server.start()
        stack.callback(server.stop)
        if not args.keep:
            stack.callback(shutil.rmtree, workdir, True)
        for i in range(args.repeat):
            for co in checkouts:  # alternating, so a noisy minute hurts both
                if not args.skip_send:
                    send[co.name].append(send_run(args, workdir, server.url, co, str(i)))
                if args.enqueue_followers:
                    enqueue[co.name].append(enqueue_run(args, workdir, server.url, co, str(i)))
        for co in checkouts if args.profile else ():
            profiled[co.name] = send_run(args, workdir, server.url, co, "profile")
        report(args, send, enqueue, profiled)


if __name__ == "__main__":
    main()
