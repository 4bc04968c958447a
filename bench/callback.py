#!/usr/bin/env python3
"""Callback throughput and latency: WeLead's /wechat/callback beside a bare Flask endpoint, same gunicorn, wrk load.

The figure that matters is the ratio of the two under the same server setup (gunicorn command line shared with
`make run` through processes.gunicorn_argv) and the same requests: everything the bare app does not do (signature,
AES, safe XML parsing, one DB transaction, the Redis push) is what WeLead costs. Figures are printed, not asserted.

Every request is distinct and pre-built (encrypted with wechatpy's WeChatCrypto, signed with msg_signature) before
the timer starts, so dedup never short-cuts the work and the load generator only replays bytes. wrk (C, epoll, one
LuaJIT state per thread) does the replay; the target-rate phase paces sends from a monotonic clock in Lua.

    .venv/bin/python bench/callback.py [--duration 20] [--rate 200] [--database-url postgresql://...]
"""

from __future__ import annotations

import argparse
import base64
import hashlib
import json
import math
import os
import re
import secrets
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.parse
import urllib.request
from dataclasses import dataclass
from pathlib import Path
from types import FrameType

from flask import Flask

ROOT = Path(__file__).resolve().parent.parent
HERE = Path(__file__).resolve().parent
TOKEN = "welead-bench-token"
APP_ID = "wxbench000000000"
ACCOUNT = "gh_welead_bench"
TEXTS = ("hello", "price?", "I want a demo", "what is WeLead", "thanks", "contact me please")

# The bare endpoint: what any Flask app under this gunicorn costs. Imported by gunicorn as callback:bare_app.
bare_app = Flask("bare")


@bare_app.post("/wechat/callback")
def bare_callback() -> str:
    return "success"


# ---- requests ---------------------------------------------------------------------------------------------------


class Builder:
    """Signed, encrypted safe-mode callbacks; every one distinct (openid + CreateTime for events, MsgId for texts)."""

    def __init__(self, aes_key: str) -> None:
        from wechatpy.crypto import WeChatCrypto

        self.crypto = WeChatCrypto(TOKEN, aes_key, APP_ID)
        self.run = secrets.token_hex(3)
        self.msgid_base = secrets.randbits(40) << 22
        self.serial = 0  # makes openids and MsgIds unique
        self.texts = 0  # cycles the contents, whatever else was built in between

    def _envelope(self, plain: str, openid: str, now: int) -> str:
        nonce = secrets.token_hex(5)
        ts = str(now)
        sealed = self.crypto.encrypt_message(plain, nonce, ts)
        encrypt = re.search(r"<Encrypt><!\[CDATA\[(.*?)\]\]></Encrypt>", sealed).group(1)  # type: ignore[union-attr]
        msg_signature = hashlib.sha1("".join(sorted([TOKEN, ts, nonce, encrypt])).encode()).hexdigest()
        query = urllib.parse.urlencode(
            {
                "signature": hashlib.sha1("".join(sorted([TOKEN, ts, nonce])).encode()).hexdigest(),
                "timestamp": ts,
                "nonce": nonce,
                "openid": openid,
                "encrypt_type": "aes",
                "msg_signature": msg_signature,
            }
        )
        body = f"<xml><ToUserName><![CDATA[{ACCOUNT}]]></ToUserName><Encrypt><![CDATA[{encrypt}]]></Encrypt></xml>"
        return f"/wechat/callback?{query}\t{body}"

    def _head(self, openid: str, now: int, kind: str) -> str:
        return (
            f"<xml><ToUserName><![CDATA[{ACCOUNT}]]></ToUserName><FromUserName><![CDATA[{openid}]]></FromUserName>"
            f"<CreateTime>{now}</CreateTime><MsgType><![CDATA[{kind}]]></MsgType>"
        )

    def subscribe(self, now: int) -> tuple[str, str]:
        self.serial += 1
        openid = f"oBench{self.run}{self.serial:09d}"
        key = f"qrscene_campaign:bench{self.serial % 3}" if self.serial % 4 == 0 else ""
        plain = self._head(openid, now, "event") + f"<Event><![CDATA[subscribe]]></Event><EventKey><![CDATA[{key}]]>"
        plain += "</EventKey></xml>"
        return openid, self._envelope(plain, openid, now)

    def text(self, openid: str, now: int) -> str:
        self.serial += 1
        self.texts += 1
        content = TEXTS[self.texts % len(TEXTS)]
        plain = self._head(openid, now, "text") + f"<Content><![CDATA[{content}]]></Content>"
        plain += f"<MsgId>{self.msgid_base + self.serial}</MsgId></xml>"
        return self._envelope(plain, openid, now)

    def probe(self) -> str:
        """An event kind nobody handles: recorded and answered "success" whatever the playbook says."""
        self.serial += 1
        openid = f"oBench{self.run}probe{self.serial}"
        now = int(time.time())
        plain = self._head(openid, now, "event") + "<Event><![CDATA[welead_bench_probe]]></Event></xml>"
        return self._envelope(plain, openid, now)

    def pool(self, count: int, path: Path) -> Path:
        """Half new subscribers, half texts from the subscriber just before: a follower who says something."""
        now = int(time.time())
        with path.open("w") as f:
            openid = ""
            for i in range(count):
                if i % 2 == 0:
                    openid, line = self.subscribe(now)
                else:
                    line = self.text(openid, now)
                f.write(line + "\n")
        return path


# ---- wrk ----------------------------------------------------------------------------------------------------------

# wrk's delay() for a paced phase: each thread sends at its share of `rate`, never bursting to catch up.
LUA_PACING = r"""if rate > 0 then
  local ffi = require("ffi")
  ffi.cdef[[
    typedef struct { long tv_sec; long tv_nsec; } wlb_timespec;
    int clock_gettime(int clk_id, wlb_timespec *tp);
  ]]
  local ts = ffi.new("wlb_timespec")
  local interval = 1000.0 * nthreads / rate  -- ms between sends of this thread
  local due = nil
  function delay()
    ffi.C.clock_gettime(1, ts)  -- CLOCK_MONOTONIC
    local now = tonumber(ts.tv_sec) * 1000 + tonumber(ts.tv_nsec) / 1e6
    if due == nil or now - due > 1000 then due = now end  -- more than 1 s behind: do not burst to catch up
    local wait = due - now
    due = due + interval
    if wait < 0 then return 0 end
    return math.floor(wait)
  end
end
"""

LUA = r"""
-- generated by bench/callback.py: replay pre-built requests, count statuses and bodies
local pool_file, rate, nthreads = "%(pool)s", %(rate)s, %(threads)d
local threads, counter = {}, 0

function setup(thread)
  thread:set("tid", counter)
  counter = counter + 1
  table.insert(threads, thread)
end

function init(args)
  reqs, n, idx, wraps = {}, 0, 0, 0
  non2xx, success, reply, other = 0, 0, 0, 0
  local i = 0
  local headers = {["Content-Type"] = "text/xml"}
  for line in io.lines(pool_file) do
    if i %% nthreads == tid then
      local tab = string.find(line, "\t", 1, true)
      n = n + 1
      reqs[n] = wrk.format("POST", string.sub(line, 1, tab - 1), headers, string.sub(line, tab + 1))
    end
    i = i + 1
  end
end

function request()
  idx = idx + 1
  if idx > n then idx, wraps = 1, wraps + 1 end
  return reqs[idx]
end

function response(status, headers, body)
  if status < 200 or status > 299 then non2xx = non2xx + 1
  elseif body == "success" then success = success + 1
  elseif string.sub(body, 1, 5) == "<xml>" then reply = reply + 1
  else other = other + 1 end
end

%(pacing)s

function done(summary, latency, requests)
  local t = {non2xx = 0, success = 0, reply = 0, other = 0, wraps = 0}
  for _, thread in ipairs(threads) do
    for k, _ in pairs(t) do t[k] = t[k] + thread:get(k) end
  end
  local e = summary.errors
  io.write(string.format(
    'WLBENCH {"requests": %%d, "duration_us": %%d, "p50_us": %%d, "p99_us": %%d, "mean_us": %%.1f, ' ..
    '"non2xx": %%d, "success": %%d, "reply": %%d, "other": %%d, "wraps": %%d, ' ..
    '"connect": %%d, "read": %%d, "write": %%d, "timeout": %%d}\n',
    summary.requests, summary.duration, latency:percentile(50), latency:percentile(99), latency.mean,
    t.non2xx, t.success, t.reply, t.other, t.wraps, e.connect, e.read, e.write, e.timeout))
end
"""


@dataclass
class Result:
    app: str
    phase: str
    requests: int
    seconds: float
    p50_ms: float
    p99_ms: float
    non2xx: int
    success: int
    reply: int
    other: int
    wraps: int
    socket_errors: int

    @property
    def rps(self) -> float:
        return self.requests / self.seconds if self.seconds else 0.0


def run_wrk(
    args: argparse.Namespace, port: int, pool: Path, seconds: float, rate: float, app: str, phase: str
) -> Result:
    script = pool.with_suffix(".lua")
    script.write_text(LUA % {"pool": pool, "rate": rate, "threads": args.threads, "pacing": LUA_PACING})
    cmd = [
        "wrk", "-t", str(args.threads), "-c", str(args.connections), "-d", f"{max(1, round(seconds))}s",
        "--timeout", "10s", "-s", str(script), f"http://127.0.0.1:{port}",
    ]  # fmt: skip
    out = subprocess.run(cmd, capture_output=True, text=True, check=False)
    line = next((x for x in out.stdout.splitlines() if x.startswith("WLBENCH ")), None)
    if out.returncode != 0 or line is None:
        raise RuntimeError(f"wrk failed ({out.returncode}): {out.stdout[-2000:]} {out.stderr[-2000:]}")
    d = json.loads(line.removeprefix("WLBENCH "))
    return Result(
        app=app,
        phase=phase,
        requests=d["requests"],
        seconds=d["duration_us"] / 1e6,
        p50_ms=d["p50_us"] / 1000,
        p99_ms=d["p99_us"] / 1000,
        non2xx=d["non2xx"],
        success=d["success"],
        reply=d["reply"],
        other=d["other"],
        wraps=d["wraps"],
        socket_errors=d["connect"] + d["read"] + d["write"] + d["timeout"],
    )


# ---- servers ------------------------------------------------------------------------------------------------------

_NO_PROXY = urllib.request.build_opener(urllib.request.ProxyHandler({}))  # loopback only, whatever http_proxy says


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def post(port: int, line: str) -> tuple[int, str]:
    path, body = line.split("\t", 1)
    req = urllib.request.Request(
        f"http://127.0.0.1:{port}{path}", data=body.encode(), headers={"Content-Type": "text/xml"}, method="POST"
    )
    try:
        with _NO_PROXY.open(req, timeout=10) as resp:
            return resp.status, resp.read().decode(errors="replace")
    except urllib.error.HTTPError as exc:
        return exc.code, exc.read().decode(errors="replace")


def health(port: int) -> dict:
    """/healthz as JSON (it answers 503 with the same JSON when something is down)."""
    try:
        with _NO_PROXY.open(f"http://127.0.0.1:{port}/healthz", timeout=10) as resp:
            return json.loads(resp.read())
    except urllib.error.HTTPError as exc:
        return json.loads(exc.read())


def stop(proc: subprocess.Popen) -> None:
    if proc.poll() is None:
        proc.terminate()
        try:
            proc.wait(20)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


class Server:
    """One gunicorn, started the way `make run` starts it; logs go to a file shown when something fails."""

    def __init__(self, name: str, app: str, env: dict[str, str], workdir: Path, workers: int, extra: list[str],
                 cwd: Path = ROOT) -> None:  # fmt: skip
        from welead.processes import gunicorn_argv

        self.name = name
        self.port = free_port()
        self.log = workdir / f"{name}.log"
        argv = gunicorn_argv(app, f"127.0.0.1:{self.port}", workers) + extra
        with self.log.open("w") as log:
            self.proc = subprocess.Popen(argv, cwd=cwd, env=env, stdout=log, stderr=subprocess.STDOUT)

    def wait_ready(self, probe: str, timeout: float = 60.0) -> None:
        """Ready means the probe request is answered 200 "success": the endpoint works before it is measured."""
        deadline = time.monotonic() + timeout
        last = "no answer"
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                break
            try:
                status, body = post(self.port, probe)
            except (urllib.error.URLError, OSError) as exc:
                last = str(exc)
                time.sleep(0.2)
                continue
            if status == 200 and body == "success":
                return
            raise RuntimeError(f"{self.name}: probe answered {status} {body[:200]!r}; log: {self.log}")
        raise RuntimeError(f"{self.name}: not ready ({last}); log tail:\n{self.log.read_text()[-3000:]}")

    def stop(self) -> None:
        stop(self.proc)


def flask(env: dict[str, str], cwd: Path, *args: str) -> None:
    subprocess.run([sys.executable, "-m", "flask", "--app", "wsgi", *args], cwd=cwd, env=env, check=True,
                   stdout=subprocess.DEVNULL)  # fmt: skip


def applier(env: dict[str, str], workdir: Path, name: str) -> subprocess.Popen:
    """`flask apply`, as `make run` starts it beside web: the same env, sharing the machine's cores."""
    with (workdir / f"{name}-applier.log").open("w") as log:
        argv = [sys.executable, "-m", "flask", "--app", "wsgi", "apply"]
        return subprocess.Popen(argv, cwd=ROOT, env=env, stdout=log, stderr=subprocess.STDOUT)


def scalar(database_url: str, sql: str) -> int | None:
    """One count from the database (None when the table or column does not exist in that checkout's schema)."""
    from sqlalchemy import text
    from sqlalchemy.exc import SQLAlchemyError

    from foundation.db import make_engine

    engine = make_engine(database_url)
    try:
        with engine.connect() as conn:
            return int(conn.execute(text(sql)).scalar_one())
    except SQLAlchemyError:
        return None
    finally:
        engine.dispose()


def fresh_database(base_url: str, workdir: Path, name: str) -> str:
    """A database of its own per app: a SQLite file in the temp dir, or `<db>_bench_<name>` beside --database-url."""
    if not base_url:
        return f"sqlite:///{workdir / f'{name}.db'}"
    import sqlalchemy as sa

    target = sa.engine.make_url(base_url.replace("postgresql://", "postgresql+psycopg://", 1))
    db = f"{target.database}_bench_{name}"
    admin = sa.create_engine(target, isolation_level="AUTOCOMMIT")
    with admin.connect() as conn:
        conn.execute(sa.text(f'DROP DATABASE IF EXISTS "{db}" WITH (FORCE)'))
        conn.execute(sa.text(f'CREATE DATABASE "{db}"'))
    admin.dispose()
    return target.set(database=db).render_as_string(hide_password=False).replace("+psycopg", "", 1)


# ---- the bench ----------------------------------------------------------------------------------------------------


@dataclass
class App:
    """One thing measured: the bare endpoint, WeLead as checked out here, or an older checkout (`--before`)."""

    name: str
    checkout: Path | None  # None: the bare endpoint
    with_applier: bool = False
    faq: bool = False  # the demo FAQ loaded: the chatbot answers the texts no reply rule took
    note: list[str] | None = None


def measure(args: argparse.Namespace, server: Server, builder: Builder, workdir: Path,
            applier: subprocess.Popen | None = None) -> list[Result]:  # fmt: skip
    """Warm-up (unmeasured, also sizes the max phase), then the target-rate phase, then the unthrottled phase. With
    an applier, each measured phase starts once the backlog the previous one left is applied: a steady state."""
    results = []
    warm = run_wrk(args, server.port, builder.pool(args.warmup * 4000, workdir / f"{server.name}-warm.txt"),
                   args.warmup, 0, server.name, "warm-up")  # fmt: skip
    results.append(warm)
    n = math.ceil(args.rate * args.duration * 1.2) + 200
    print(f"  {server.name}: building {n} requests for the {args.rate:g} req/s phase", flush=True)
    pool = builder.pool(n, workdir / f"{server.name}-rate.txt")
    if applier:
        settle(args, server.port, applier)
    results.append(run_wrk(args, server.port, pool, args.duration, args.rate, server.name, f"{args.rate:g} req/s"))
    n = min(args.max_pool, math.ceil(max(warm.rps, 100) * args.duration * 1.5) + 1000)
    if server.name == "bare":
        n = min(n, 20_000)  # the bare endpoint ignores what it is sent: replaying a smaller pool changes nothing
    print(f"  {server.name}: building {n} requests for the unthrottled phase", flush=True)
    pool = builder.pool(n, workdir / f"{server.name}-max.txt")
    if applier:
        settle(args, server.port, applier)
    results.append(run_wrk(args, server.port, pool, args.duration, 0, server.name, "max"))
    return results


def settle(args: argparse.Namespace, port: int, applier: subprocess.Popen) -> dict:
    """Wait (up to --drain-timeout) until /healthz reports backlog 0; the last status."""
    started = time.monotonic()
    status = health(port)
    while (status.get("backlog") or 0) > 0 and time.monotonic() - started < args.drain_timeout:
        if applier.poll() is not None:
            raise RuntimeError(f"the applier exited with {applier.returncode}; see its log (--keep)")
        time.sleep(0.2)
        status = health(port)
    return status


def measure_bare(args: argparse.Namespace, env: dict[str, str], builder: Builder, workdir: Path) -> list[Result]:
    print("bare Flask endpoint", flush=True)
    server = Server("bare", "callback:bare_app", env, workdir, args.workers, ["--pythonpath", str(HERE)])
    try:
        server.wait_ready(builder.probe())
        return measure(args, server, builder, workdir)
    finally:
        server.stop()


def measure_app(args: argparse.Namespace, app: App, base: dict[str, str], builder: Builder, workdir: Path,
                aes_key: str) -> list[Result]:  # fmt: skip
    """Migrate a fresh database, load the demo playbook, start gunicorn (and the applier), measure, then check that
    every 2xx answer left exactly one interaction row and (with an applier) that the backlog drains to 0."""
    from welead.embedded import EmbeddedRedis

    assert app.checkout is not None
    print(f"{app.name}: /wechat/callback from {app.checkout}", flush=True)
    database_url = fresh_database(args.database_url, workdir, app.name)
    redis = EmbeddedRedis()
    env = dict(base, DATABASE_URL=database_url, REDIS_URL=redis.start(), WECHAT_TOKEN=TOKEN, WECHAT_APP_ID=APP_ID,
               WECHAT_AES_KEY=aes_key, PYTHONPATH=str(app.checkout),
               WELEAD_REPLAY_WINDOW=str(int(max(300, 3 * (args.duration + args.warmup) + 300))))  # fmt: skip
    procs: list[subprocess.Popen] = []
    try:
        flask(env, app.checkout, "db", "upgrade")
        if not args.no_playbook:
            flask(env, app.checkout, "playbook", "load-demo-if-empty")
        if app.faq:  # the chatbot answers texts no reply rule took (docs/chatbot.md)
            flask(env, app.checkout, "faq", "load-demo-if-empty")
        server = Server(app.name, "wsgi:app", env, workdir, args.workers, [], cwd=app.checkout)
        procs.append(server.proc)
        apply_proc = applier(env, workdir, app.name) if app.with_applier else None
        procs += [apply_proc] if apply_proc else []
        server.wait_ready(builder.probe())
        rows_before = scalar(database_url, "SELECT count(*) FROM interactions")
        results = measure(args, server, builder, workdir, apply_proc)
        app.note = check(args, app, server.port, database_url, rows_before, results, apply_proc)
        return results
    finally:
        for proc in procs:
            stop(proc)
        redis.stop()


def check(args: argparse.Namespace, app: App, port: int, database_url: str, rows_before: int | None,
          results: list[Result], apply_proc: subprocess.Popen | None) -> list[str]:  # fmt: skip
    """Rows written against 2xx answers; with an applier, the backlog at the end of the load and how long it took
    to drain, then every row applied."""
    notes = []
    if apply_proc:
        status = health(port)
        notes.append(f"backlog when the unthrottled phase ended: {status.get('backlog')} "
                     f"(lag {status.get('lag_seconds')} s)")  # fmt: skip
        started = time.monotonic()
        status = settle(args, port, apply_proc)
        notes.append(f"backlog {status.get('backlog')} after {time.monotonic() - started:.1f} s; "
                     f"failed {status.get('failed')}")  # fmt: skip
    rows_after = scalar(database_url, "SELECT count(*) FROM interactions")
    if rows_before is None or rows_after is None:
        return [*notes, "interactions table not readable: rows not checked"]
    rows = rows_after - rows_before
    answered = sum(r.success + r.reply for r in results)
    in_flight = args.connections * len(results)  # answered by the server after wrk stopped reading, at most
    verdict = "ok" if 0 <= rows - answered <= in_flight else "MISMATCH"
    notes.append(f"interaction rows written: {rows}; 2xx answers counted by wrk: {answered}; difference "
                 f"{rows - answered} ({verdict}: requests in flight when a phase ends are recorded, not counted; "
                 f"at most {in_flight})")  # fmt: skip
    if app.with_applier:
        applied = scalar(database_url, "SELECT count(*) FROM interactions WHERE applied_at IS NOT NULL")
        notes.append(f"rows applied: {applied} of {rows_after}")
    return notes


def report(results: list[Result], apps: list[App], args: argparse.Namespace, db_label: str) -> None:
    print()
    print(f"gunicorn: {args.workers} sync workers; wrk: {args.threads} thread(s), {args.connections} connections; "
          f"{args.duration:g} s per phase; database: {db_label}")  # fmt: skip
    head = f"{'app':<8} {'phase':<12} {'req/s':>9} {'p50 ms':>8} {'p99 ms':>8} {'non-2xx':>8} {'sock err':>8}"
    head += f" {'success':>8} {'replies':>8} {'other':>6} {'wraps':>6}"
    print(head)
    print("-" * len(head))
    for r in results:
        if r.phase == "warm-up":
            continue
        print(
            f"{r.app:<8} {r.phase:<12} {r.rps:>9.1f} {r.p50_ms:>8.2f} {r.p99_ms:>8.2f} {r.non2xx:>8} "
            f"{r.socket_errors:>8} {r.success:>8} {r.reply:>8} {r.other:>6} {r.wraps:>6}"
        )
    by = {(r.app, r.phase): r for r in results}
    rate = f"{args.rate:g} req/s"
    bare, paced = by.get(("bare", "max")), by.get(("bare", rate))
    for app in apps:
        print(f"\n{app.name}" + (" (applier running beside web)" if app.with_applier else ""))
        mine, mine_paced = by.get((app.name, "max")), by.get((app.name, rate))
        if mine and bare and bare.rps:
            print(f"  throughput ratio {app.name}/bare (unthrottled): {mine.rps / bare.rps:.2f}x "
                  f"({mine.rps:.0f} vs {bare.rps:.0f} req/s; target >= 0.3x)")  # fmt: skip
        if mine_paced:
            vs = f" (bare {paced.p50_ms:.2f} / {paced.p99_ms:.2f} ms)" if paced else ""
            print(f"  at {rate}: achieved {mine_paced.rps:.0f} req/s, p50 {mine_paced.p50_ms:.2f} ms, "
                  f"p99 {mine_paced.p99_ms:.2f} ms{vs}; target p99 < 20 ms")  # fmt: skip
        for line in app.note or []:
            print(f"  {line}")
    if any(r.wraps for r in results if r.app != "bare"):
        print("note: some requests were replayed (wraps > 0): those were duplicates, answered from dedup; "
              "raise --max-pool")  # fmt: skip


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--duration", type=float, default=20.0, help="seconds per measured phase (default 20)")
    p.add_argument("--rate", type=float, default=200.0, help="target requests/s of the paced phase (default 200)")
    p.add_argument("--warmup", type=int, default=3, help="seconds of unmeasured warm-up per app (default 3)")
    p.add_argument("--connections", type=int, default=16, help="wrk connections (default 16)")
    p.add_argument("--threads", type=int, default=1, help="wrk threads (default 1: the server needs the cores)")
    p.add_argument("--workers", type=int, default=0, help="gunicorn workers (default: what `make run` uses)")
    p.add_argument("--database-url", default="",
                   help="PostgreSQL server to measure on: each app gets a fresh <db>_bench_<app> database beside it "
                        "(default: a SQLite file per app in a temp dir)")  # fmt: skip
    p.add_argument("--before", type=Path, help="also measure this older checkout (e.g. a git worktree), as 'before'")
    p.add_argument("--max-pool", type=int, default=400_000, help="cap on pre-built requests for the max phase")
    p.add_argument("--drain-timeout", type=float, default=300.0, help="seconds to wait for the applier's backlog")
    p.add_argument("--no-applier", action="store_true", help="do not run `flask apply` beside WeLead's web")
    p.add_argument("--no-playbook", action="store_true", help="skip loading the demo playbook")
    p.add_argument("--faq", action="store_true",
                   help="also measure WeLead with the demo FAQ loaded (app 'faq'), beside it without")  # fmt: skip
    p.add_argument("--skip-bare", action="store_true", help="measure WeLead only")
    p.add_argument("--keep", action="store_true", help="keep the temp dir (logs, pools, SQLite files)")
    args = p.parse_args()

    if shutil.which("wrk") is None:
        print("bench/callback.py needs wrk, the HTTP load generator: install it with `apt-get install wrk` "
              "(Debian/Ubuntu) or `brew install wrk` (macOS)", file=sys.stderr)  # fmt: skip
        return 2
    sys.path.insert(0, str(ROOT))
    from welead.processes import web_workers

    aes_key = base64.b64encode(os.urandom(32)).decode().rstrip("=")
    workdir = Path(tempfile.mkdtemp(prefix="wlb-", dir="/tmp"))
    args.workers = args.workers or web_workers(args.database_url)
    db_label = "PostgreSQL" if args.database_url.startswith("postgres") else "SQLite (file, WAL)"
    apps = [App("welead", ROOT, with_applier=not args.no_applier)]
    if args.before:
        apps.insert(0, App("before", args.before.resolve()))
    if args.faq:
        apps.append(App("faq", ROOT, with_applier=not args.no_applier, faq=True))

    def on_term(signum: int, _frame: FrameType | None) -> None:
        raise SystemExit(128 + signum)

    signal.signal(signal.SIGTERM, on_term)
    results: list[Result] = []
    try:
        base = {k: v for k, v in os.environ.items() if not k.startswith(("WECHAT_", "WECOM_", "WELEAD_"))}
        base.update(PYTHONUNBUFFERED="1", GUNICORN_CMD_ARGS="")
        builder = Builder(aes_key)
        if not args.skip_bare:
            results += measure_bare(args, base, builder, workdir)
        for app in apps:
            results += measure_app(args, app, base, builder, workdir, aes_key)
    except (RuntimeError, subprocess.CalledProcessError) as exc:
        print(f"bench failed: {exc}", file=sys.stderr)
        return 1
    finally:
        if args.keep:
            print(f"kept {workdir}")
        else:
            shutil.rmtree(workdir, ignore_errors=True)
    report(results, apps, args, db_label)
    return 0


if __name__ == "__main__":
    sys.exit(main())
