#!/usr/bin/env python3
"""Booth rush: N visitors scan booth codes in the same second (new followers: subscribe via the code), a fifth of
them retried as WeChat retries, then each answers the lead form; two gunicorn workers and the applier, as `make run`
starts them (the server and applier helpers are bench/callback.py's).

Checks, printed: N check-ins and no duplicate (one per follower and booth, one scan each despite the retries), every
reply within WeChat's 5 s deadline; figures: p50/p99 of the scans and of the form answers, and the time from the
first scan until GET /api/v1/events/<slug>/stats shows all N check-ins. The form answers are text messages (the
offer "1", then name, company, mobile): the form flow of the conversation engine answers them when it is there,
the chatbot's fallback otherwise; either way they are the same requests through the same path.

    .venv/bin/python bench/booth_rush.py [--visitors 200] [--threads 64] [--database-url postgresql://...]
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import secrets
import sys
import tempfile
import threading
import time
import urllib.parse
import urllib.request
from concurrent.futures import ThreadPoolExecutor
from contextlib import suppress
from datetime import UTC, datetime, timedelta
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))
sys.path.insert(0, str(HERE.parent))

from callback import ROOT, Server, applier, flask, fresh_database, scalar, stop  # noqa: E402

TOKEN = "welead-rush-token"
ADMIN = "welead-rush-admin-" + secrets.token_hex(4)
DEADLINE = 5.0  # seconds WeChat waits for a passive reply
SLUG, BOOTHS = "rush", ("A1", "B2")
_NO_PROXY = urllib.request.build_opener(urllib.request.ProxyHandler({}))


def signed(port: int, xml: str) -> urllib.request.Request:
    """A plaintext-mode callback, signed as WeChat signs it."""
    ts, nonce = str(int(time.time())), secrets.token_hex(5)
    signature = hashlib.sha1("".join(sorted([TOKEN, ts, nonce])).encode()).hexdigest()
    query = urllib.parse.urlencode({"signature": signature, "timestamp": ts, "nonce": nonce})
    return urllib.request.Request(f"http://127.0.0.1:{port}/wechat/callback?{query}", data=xml.encode(),
                                  headers={"Content-Type": "text/xml"}, method="POST")  # fmt: skip


def scan_xml(openid: str, booth: str, at: int) -> str:
    return (f"<xml><ToUserName><![CDATA[gh_rush]]></ToUserName><FromUserName><![CDATA[{openid}]]></FromUserName>"
            f"<CreateTime>{at}</CreateTime><MsgType><![CDATA[event]]></MsgType><Event><![CDATA[subscribe]]></Event>"
            f"<EventKey><![CDATA[qrscene_booth:{SLUG}:{booth}]]></EventKey></xml>")  # fmt: skip


def text_xml(openid: str, content: str, msg_id: int) -> str:
    return (f"<xml><ToUserName><![CDATA[gh_rush]]></ToUserName><FromUserName><![CDATA[{openid}]]></FromUserName>"
            f"<CreateTime>{int(time.time())}</CreateTime><MsgType><![CDATA[text]]></MsgType>"
            f"<Content><![CDATA[{content}]]></Content><MsgId>{msg_id}</MsgId></xml>")  # fmt: skip


def timed(port: int, xml: str) -> tuple[float, int, str]:
    started = time.perf_counter()
    try:
        with _NO_PROXY.open(signed(port, xml), timeout=30) as resp:
            status, body = resp.status, resp.read().decode(errors="replace")
    except urllib.error.HTTPError as exc:
        status, body = exc.code, exc.read().decode(errors="replace")
    return time.perf_counter() - started, status, body


def api(port: int, method: str, path: str, body: dict | None = None) -> dict:
    data = json.dumps(body).encode() if body is not None else None
    req = urllib.request.Request(
        f"http://127.0.0.1:{port}/api/v1{path}",
        data=data,
        method=method,
        headers={"Authorization": f"Bearer {ADMIN}", "Content-Type": "application/json"},
    )
    with _NO_PROXY.open(req, timeout=60) as resp:
        return json.loads(resp.read())


def percentile(values: list[float], p: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(p / 100 * (len(ordered) - 1)))] if ordered else 0.0


def rush(port: int, visitors: int) -> tuple[list[tuple[float, int, str]], float]:
    """Every scan released at once from a barrier; a fifth of them sent twice (WeChat's retry, same CreateTime)."""
    at = int(time.time())
    jobs = [scan_xml(f"oRush{i:05d}", BOOTHS[i % len(BOOTHS)], at) for i in range(visitors)]
    jobs += jobs[: visitors // 5]
    gate = threading.Barrier(len(jobs))  # one client thread per request: all are released together

    def one(xml: str) -> tuple[float, int, str]:
        with suppress(threading.BrokenBarrierError):
            gate.wait(timeout=10)
        return timed(port, xml)

    started = time.monotonic()
    with ThreadPoolExecutor(len(jobs)) as pool:
        return list(pool.map(one, jobs)), started


def form(port: int, visitors: int, threads: int) -> list[tuple[float, int, str]]:
    """Each visitor takes the offer and answers name, company, mobile, one message after the other."""
    base = secrets.randbits(40) << 20

    def visitor(i: int) -> list[tuple[float, int, str]]:
        answers = ["1", f"访客{i}", f"公司{i % 17}", f"138{i:08d}"]
        return [timed(port, text_xml(f"oRush{i:05d}", a, base + i * 10 + k)) for k, a in enumerate(answers)]

    with ThreadPoolExecutor(threads) as pool:
        return [r for answers in pool.map(visitor, range(visitors)) for r in answers]


def ready(server: Server, timeout: float = 60) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline and server.proc.poll() is None:
        try:
            with _NO_PROXY.open(f"http://127.0.0.1:{server.port}/healthz", timeout=5):
                return
        except (urllib.error.URLError, OSError):
            time.sleep(0.2)
    raise RuntimeError(f"gunicorn not ready; log tail:\n{server.log.read_text()[-3000:]}")


def until_stats(port: int, want: int, started: float, figure: str = "checkins", timeout: float = 120) -> float | None:
    while time.monotonic() - started < timeout:
        if api(port, "GET", f"/events/{SLUG}/stats")[figure] >= want:
            return time.monotonic() - started
        time.sleep(0.05)
    return None


def report(name: str, results: list[tuple[float, int, str]]) -> None:
    latencies = [r[0] for r in results]
    bad = sum(1 for r in results if r[1] != 200)
    late = sum(1 for r in latencies if r > DEADLINE)
    replies = sum(1 for r in results if r[2].startswith("<xml>"))
    print(f"{name:<13} {len(results):>5} requests  p50 {percentile(latencies, 50) * 1000:7.1f} ms  "
          f"p99 {percentile(latencies, 99) * 1000:7.1f} ms  max {max(latencies) * 1000:7.1f} ms  "
          f"non-200 {bad}  over {DEADLINE:g} s {late}  with a reply {replies}")  # fmt: skip


def check(database_url: str, visitors: int) -> None:
    rows = scalar(database_url, "SELECT count(*) FROM checkins")
    pairs = scalar(database_url, "SELECT count(*) FROM (SELECT DISTINCT follower_id, booth_id FROM checkins) AS d")
    scans = scalar(database_url, "SELECT coalesce(sum(scans), 0) FROM checkins")
    people = scalar(database_url, "SELECT count(DISTINCT follower_id) FROM checkins")
    leads = scalar(database_url, "SELECT count(*) FROM event_leads")
    print(f"check-ins {rows} (want {visitors}), duplicates {(rows or 0) - (pairs or 0)}, scans counted {scans}"
          f" (retries must not count), visitors {people}, leads {leads}")  # fmt: skip


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--visitors", type=int, default=200)
    parser.add_argument("--threads", type=int, default=64, help="client connections at once for the form answers")
    parser.add_argument("--workers", type=int, default=2, help="gunicorn web workers")
    parser.add_argument("--database-url", default="", help="PostgreSQL base URL (default: a SQLite file)")
    args = parser.parse_args()
    from welead.embedded import EmbeddedRedis

    workdir = Path(tempfile.mkdtemp(prefix="welead-rush-"))
    database_url = fresh_database(args.database_url, workdir, "rush")
    redis = EmbeddedRedis()
    env = dict(os.environ, DATABASE_URL=database_url, REDIS_URL=redis.start(), WECHAT_TOKEN=TOKEN,
               WELEAD_ADMIN_TOKEN=ADMIN, PYTHONPATH=str(ROOT))  # fmt: skip
    env.pop("WECHAT_AES_KEY", None)
    procs = []
    try:
        flask(env, ROOT, "db", "upgrade")
        flask(env, ROOT, "tokens", "ensure-admin")
        flask(env, ROOT, "playbook", "load-demo-if-empty")
        server = Server("rush", "wsgi:app", dict(env, WELEAD_PUBLIC_URL="http://127.0.0.1:0"), workdir,
                        args.workers, [])  # fmt: skip
        procs.append(server.proc)
        ready(server)
        procs.append(applier(env, workdir, "rush"))
        now = datetime.now(UTC)
        api(server.port, "POST", "/events", {
            "slug": SLUG, "name": "Booth rush", "starts_at": (now - timedelta(hours=1)).isoformat(),
            "ends_at": (now + timedelta(days=1)).isoformat(), "booths": [{"slug": b} for b in BOOTHS]})  # fmt: skip
        time.sleep(1.2)  # every worker's booth table is at most a second old
        print(f"{args.visitors} visitors, {args.workers} web workers, {args.threads} client threads,"
              f" {'PostgreSQL' if args.database_url else 'SQLite'}", flush=True)  # fmt: skip
        scans, started = rush(server.port, args.visitors)
        seen = until_stats(server.port, args.visitors, started)
        report("scans", scans)
        print(f"stats show all {args.visitors} check-ins after {seen:.2f} s" if seen is not None else "stats: TIMEOUT")
        form_started = time.monotonic()
        answers = form(server.port, args.visitors, args.threads)
        report("form answers", answers)
        seen = until_stats(server.port, args.visitors, form_started, "leads", timeout=30)
        print(f"stats show all {args.visitors} leads {seen:.2f} s after the first answer" if seen else "leads: TIMEOUT")
        check(database_url, args.visitors)
        return 0
    finally:
        for proc in procs:
            stop(proc)
        redis.stop()


if __name__ == "__main__":
    sys.exit(main())
