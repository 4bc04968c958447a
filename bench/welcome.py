#!/usr/bin/env python3
"""Welcome-message latency, from the WeCom callback to the send, while a 10,000-message broadcast is being sent.

What runs is what `make run` runs: gunicorn (the callbacks and the sandbox as WeChat/WeCom), `flask apply`,
`flask worker` (one, as `make run` starts; --workers for more), `flask scheduler`, and `flask broadcast send` as the
broadcast process, each its own process on one embedded Redis and one database. The broadcast goes to --followers
followers at --rate (the sandbox's template-send limit is the same). While its deliveries are being sent, this
process posts signed `add_external_contact` callbacks (state `rep:<id>` of a personal code with a welcome text, a
fresh WelcomeCode each) at --welcome-rate. Latency = the sandbox's record of `send_welcome_msg` (its clock) minus
the moment just before the callback's POST (this process's clock, the same machine). Only welcomes posted while the
broadcast's deliveries were still going out count in the "during" figures; a baseline phase first, no broadcast.

    .venv/bin/python bench/welcome.py [--followers 10000] [--rate 400] [--welcomes 100] [--welcome-rate 4]
                                      [--workers 1] [--baseline 30] [--database-url postgresql://...]

Target: p99 < 3 s during the broadcast (WeCom accepts a welcome for 20 s after the event).
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import sys
import threading
import time
import urllib.parse
import urllib.request
from collections.abc import Callable
from contextlib import ExitStack
from datetime import UTC, datetime
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

import broadcast as bb  # noqa: E402  (bench/broadcast.py: seeding, processes, the broadcast CLI run)
import redis  # noqa: E402
from rq import Worker  # noqa: E402
from sqlalchemy import func, select  # noqa: E402

from foundation.clock import utcnow  # noqa: E402
from foundation.config import Settings  # noqa: E402
from foundation.db import Database  # noqa: E402
from scrm.code_models import ContactCode  # noqa: E402
from scrm.delivery_models import Delivery  # noqa: E402
from scrm.models import Rep  # noqa: E402
from scrm.notification_models import WelcomeMessage  # noqa: E402
from wechat.sandbox_state import K, SandboxControl  # noqa: E402
from wechat.sandbox_welcome import mint_welcome_code  # noqa: E402
from wechat.simulate import build_callback  # noqa: E402
from welead.embedded import EmbeddedRedis  # noqa: E402
from welead.run import flask_argv, gunicorn_argv  # noqa: E402

WELCOME = "wecom/externalcontact/send_welcome_msg"
TEXT = "您好, 我是 Bench Rep, 有问题随时找我"


def add_code(db: Database) -> str:
    """A rep with a personal code that has a welcome text: the state the callbacks carry."""
    with db.transaction() as s:
        rep = Rep(userid="bench.rep", name="Bench Rep", created_at=utcnow())
        s.add(rep)
        s.flush()
        s.add(ContactCode(kind="rep", name="Bench Rep", rep_id=rep.id, welcome=TEXT, members=[], tags=[],
                          wecom_users=["bench.rep"], created_at=utcnow()))  # fmt: skip
        return f"rep:{rep.id}"


class Poster:
    """Posts signed add-contact callbacks and remembers when each was posted (by its WelcomeCode)."""

    def __init__(self, base: str, settings: Settings, state: str) -> None:
        self.base, self.settings, self.state = base, settings, state
        self.posted: dict[str, float] = {}
        self.failed = self.n = 0

    def post(self) -> None:
        self.n += 1
        t0 = time.time()
        code = mint_welcome_code(t0)
        query, body = build_callback("wecom-add-contact", self.settings, userid="bench.rep", state=self.state,
                                     external_userid=f"wmBench{self.n:06d}", welcome_code=code,
                                     create_time=int(t0))  # fmt: skip
        request = urllib.request.Request(f"{self.base}/wecom/callback?{urllib.parse.urlencode(query)}", data=body)
        try:
            with urllib.request.urlopen(request, timeout=5) as answer:
                ok = answer.status == 200
        except OSError:
            ok = False
        if ok:
            self.posted[code] = t0
        else:
            self.failed += 1

    def run(self, count: int, rate: float, until: threading.Event | None = None) -> None:
        start = time.monotonic()
        for i in range(count):
            if until is not None and until.is_set():
                return
            time.sleep(max(0.0, start + i / rate - time.monotonic()))
            self.post()


def accepted(conn: redis.Redis) -> dict[str, float]:
    """WelcomeCode → when the sandbox accepted its send_welcome_msg (its record's time)."""
    out: dict[str, float] = {}
    for start in range(0, int(conn.llen(K.sent)), 5000):
        for raw in conn.lrange(K.sent, start, start + 4999):
            rec = json.loads(raw)
            if rec["endpoint"] == WELCOME and rec["errcode"] == 0:
                out.setdefault(rec["body"]["welcome_code"], rec["at"])
    return out


def percentile(values: list[float], p: float) -> float:
    """Nearest rank."""
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, max(0, -(-len(ordered) * p // 100) - 1))] if ordered else float("nan")


def wait_for(predicate: Callable[[], bool], timeout: float, step: float = 0.2) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return True
        time.sleep(step)
    return False


def outcomes(db: Database) -> dict[str, int]:
    with db.sessions() as s:
        return dict(s.execute(select(WelcomeMessage.status, func.count()).group_by(WelcomeMessage.status)).all())


def delivery_window(db: Database) -> tuple[float, float, int]:
    """(first, last) broadcast delivery sent_at as epoch seconds, and how many were sent."""
    with db.sessions() as s:
        first, last, n = s.execute(
            select(func.min(Delivery.sent_at), func.max(Delivery.sent_at), func.count()).where(Delivery.state == "sent")
        ).one()
    if not n:
        return float("nan"), float("nan"), 0
    return first.replace(tzinfo=UTC).timestamp(), last.replace(tzinfo=UTC).timestamp(), n


def start_stack(args: argparse.Namespace, stack: bb.Stack, base: str, port: int, conn: redis.Redis) -> None:
    stack.start("web", gunicorn_argv("wsgi:app", f"127.0.0.1:{port}", workers=args.web_workers))
    bb.wait_http(f"{base}/healthz")
    SandboxControl(conn).set_rate_limit(args.rate, bb.SEND)
    stack.start("applier", flask_argv("apply"))
    for i in range(args.workers):
        stack.start(f"worker-{i}", flask_argv("worker"))
    stack.start("scheduler", flask_argv("scheduler"))
    if not wait_for(lambda: len(Worker.all(connection=conn)) >= args.workers, 120):  # listening, not just started
        raise SystemExit("the workers did not start")
    time.sleep(1)


def measure(
    args: argparse.Namespace, db: Database, env: dict, workdir: Path, poster: Poster, conn: redis.Redis
) -> dict:
    baseline = []
    if args.baseline:
        poster.run(args.baseline, args.welcome_rate)
        baseline = list(poster.posted)
        wait_for(lambda: set(baseline) <= set(accepted(conn)), 30)
    cli = threading.Thread(target=bb.run_cli, args=(env, workdir / "cli-send.log", bb.ROOT, None), daemon=True)
    cli.start()
    wait_for(lambda: delivery_window(db)[2] > 0, 300)  # the broadcast's first messages went out
    finished = threading.Event()

    def watch() -> None:
        wait_for(lambda: bb.broadcast_state(db)[0] != "running", 3600, step=0.5)
        finished.set()

    threading.Thread(target=watch, daemon=True).start()
    before = set(poster.posted)
    poster.run(args.welcomes, args.welcome_rate, until=finished)
    during = [c for c in poster.posted if c not in before]
    cli.join(600)
    finished.wait(3600)
    wait_for(lambda: set(during) <= set(accepted(conn)), 30)
    first, last, sent = delivery_window(db)
    at = accepted(conn)
    counted = [c for c in during if poster.posted[c] <= last]  # posted while deliveries were still going out
    return {
        "baseline": [at[c] - poster.posted[c] for c in baseline if c in at],
        "during": [at[c] - poster.posted[c] for c in counted if c in at],
        "during_posted": len(counted), "not_sent": len([c for c in counted if c not in at]),
        "post_failures": poster.failed, "outcomes": outcomes(db), "broadcast_sent": sent,
        "broadcast_rate": (sent - 1) / (last - first) if sent > 1 else float("nan"), "broadcast_span": last - first,
    }  # fmt: skip


def run(args: argparse.Namespace, workdir: Path, redis_url: str) -> dict:
    # bench/broadcast.py's helpers, this checkout (their signatures grew a checkout and CPUs for --before / --pin)
    db, env = bb.prepare(args, workdir, "welcome", args.database_url or "", args.followers, bb.Checkout("after", ROOT))
    env.update(REDIS_URL=redis_url, PYTHONPATH=str(ROOT))
    state = add_code(db)
    port = bb.free_port()
    base = f"http://127.0.0.1:{port}"
    env.update(PORT=str(port), WELEAD_PUBLIC_URL=base, WELEAD_SEND_RATE=str(args.rate))
    env.update(WECHAT_API_BASE=f"{base}/sandbox/oa/cgi-bin/", WECOM_API_BASE=f"{base}/sandbox/wecom/cgi-bin/")
    conn = redis.Redis.from_url(redis_url)
    conn.flushdb()
    settings = Settings.from_env()  # the sandbox's WeCom token, AES key and CorpID, as the server has them
    stack = bb.Stack(env, workdir, ROOT, None)
    try:
        start_stack(args, stack, base, port, conn)
        return measure(args, db, env, workdir, Poster(base, settings, state), conn)
    finally:
        stack.stop()
        db.dispose()


def report(args: argparse.Namespace, out: dict) -> None:
    print("\n== welcome bench", datetime.now().isoformat(timespec="seconds"), f"({os.cpu_count()} CPUs)")
    print(
        f"broadcast: {args.followers:,} followers at {args.rate}/s, {args.workers} worker(s); sent "
        f"{out['broadcast_sent']:,} at {out['broadcast_rate']:.0f}/s over {out['broadcast_span']:.1f}s"
    )
    for name in ("baseline", "during"):
        values = out[name]
        if not values:
            print(f"  {name:<9} no samples")
            continue
        print(f"  {name:<9} n={len(values):<4} p50 {percentile(values, 50) * 1000:6.0f} ms   "
              f"p99 {percentile(values, 99) * 1000:6.0f} ms   max {max(values) * 1000:6.0f} ms")  # fmt: skip
    print(
        f"  welcomes posted while the broadcast was sending: {out['during_posted']} (not sent: {out['not_sent']}, "
        f"callback errors: {out['post_failures']}); outcomes {out['outcomes']}"
    )
    print("  target: p99 < 3000 ms during the broadcast")
    print(json.dumps({k: v for k, v in out.items() if k not in ("baseline", "during")}, default=str))


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--followers", type=int, default=10_000, help="the broadcast's audience")
    p.add_argument("--rate", type=int, default=400, help="broadcast send rate = the sandbox's limit (per second)")
    p.add_argument("--welcomes", type=int, default=100, help="welcome callbacks posted during the broadcast (at most)")
    p.add_argument("--welcome-rate", type=float, default=4.0, help="welcome callbacks a second")
    p.add_argument("--baseline", type=int, default=30, help="welcome callbacks before the broadcast (0: none)")
    p.add_argument("--workers", type=int, default=1, help="flask worker processes (make run starts one)")
    p.add_argument("--web-workers", type=int, default=2)
    p.add_argument("--database-url", help="an empty database (default: SQLite under bench/out)")
    p.add_argument("--keep", action="store_true", help="keep bench/out/welcome-* (database, logs)")
    args = p.parse_args()
    workdir = bb.OUT / f"welcome-{int(time.time())}"
    workdir.mkdir(parents=True)
    with ExitStack() as stack:
        server = EmbeddedRedis()
        server.start()
        stack.callback(server.stop)
        if not args.keep:
            stack.callback(shutil.rmtree, workdir, True)
        report(args, run(args, workdir, server.url))


if __name__ == "__main__":
    main()
