"""`python -m welead.run` (what `make run` starts): one foreground supervisor for the whole local stack.

It starts an embedded Redis when REDIS_URL is unset, migrates, loads the demo playbook, ensures the admin token, then
runs gunicorn, the RQ worker, the scheduler and the applier as children, each in a process group of its own. A dead
child is restarted with backoff; one that keeps dying stops everything with a non-zero exit. SIGTERM, SIGINT (Ctrl-C)
or SIGHUP to the supervisor or to its group stop everything it started one after the other (web, scheduler, worker,
applier, then the embedded Redis last): since the children are not in the group, the signal reaches only the
supervisor, which stops each in turn: terminate, wait, kill.

Why not honcho or supervisord: the contract is "no leftover processes", which needs the Redis child to outlive the
app processes during shutdown and every grandchild to be accounted for. The supervisor makes itself a child
subreaper, so anything orphaned below it (a gunicorn worker whose master was killed, an RQ work horse, which runs in a
session of its own) becomes its child and is ended too; children also get SIGTERM if the supervisor itself is killed.
"""

from __future__ import annotations

import contextlib
import logging
import os
import signal
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from types import FrameType

import redis

from foundation.config import INSTANCE, ConfigError, Settings
from foundation.redisconn import URL_FILE
from welead.app import configure_logging
from welead.banner import banner
from welead.embedded import EmbeddedRedis
from welead.processes import (
    PR_SET_CHILD_SUBREAPER,
    alive,
    children_of,
    flask_argv,
    gunicorn_argv,
    own_group,
    popen,
    port_free,
    prctl,
    send_signal,
    web_workers,
)

log = logging.getLogger("welead.run")

TERM_TIMEOUT = 15.0  # between SIGTERM and SIGKILL; longer than gunicorn's graceful timeout below
STOP_ORDER = ("web", "scheduler", "worker", "applier")  # no new callbacks, no new jobs, jobs end, effects applied
GROUP_GRACE = 2.0  # a signal to our group already reached a setup step (`flask db upgrade`...): let it act first
FIRST_BACKOFF = 0.5
MAX_BACKOFF = 30.0
STABLE_AFTER = 30.0  # a child that ran this long is healthy again: its backoff starts over
RESTART_WINDOW = 60.0
MAX_DEATHS = 5  # this many deaths of one child inside RESTART_WINDOW stop the whole stack
READY_TIMEOUT = 60.0
POLL = 0.2


@dataclass
class Child:
    """One supervised process and its restart bookkeeping."""

    name: str
    spawn: Callable[[], subprocess.Popen]
    proc: subprocess.Popen | None = None
    started: float = 0.0
    restart_at: float = 0.0
    backoff: float = FIRST_BACKOFF
    deaths: deque[float] = field(default_factory=deque)

    def start(self) -> None:
        self.proc = self.spawn()
        self.started = time.monotonic()
        log.info("started %s (pid %d)", self.name, self.proc.pid)


class Supervisor:
    """Owns every process `make run` starts; `run()` returns the exit code."""

    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self.pid = os.getpid()
        self.stopping = False
        self.signalled = False
        self.signalled_at = 0.0
        self.force = False
        self.exit_code = 0
        self.redis: EmbeddedRedis | None = None
        self.redis_child: Child | None = None
        self.children: list[Child] = []
        self.env = dict(os.environ, PYTHONUNBUFFERED="1")
        self.url_written: str | None = None

    # ---- signals -------------------------------------------------------------------------------------------------

    def _on_signal(self, signum: int, _frame: FrameType | None) -> None:
        if self.signalled:
            # A signal right after the first is the same request arriving twice (a group-wide SIGTERM also reaches
            # make, which forwards it to us); a later one is an impatient operator: stop waiting and kill.
            if time.monotonic() - self.signalled_at > 1.0 and not self.force:
                self.force = True
                log.warning("%s again: killing what is left", signal.Signals(signum).name)
            return
        log.info("%s: stopping", signal.Signals(signum).name)
        self.stopping = True
        self.signalled = True
        self.signalled_at = time.monotonic()

    def _install_signals(self) -> None:
        for sig in (signal.SIGTERM, signal.SIGINT, signal.SIGHUP):
            signal.signal(sig, self._on_signal)

    # ---- the run ------------------------------------------------------------------------------------------------

    def run(self) -> int:
        self._install_signals()
        try:
            prctl(PR_SET_CHILD_SUBREAPER, 1)
        except OSError as exc:  # not Linux: orphans go to init (gunicorn's workers still follow a dead master)
            log.warning("cannot become a child subreaper (%s)", exc)
        INSTANCE.mkdir(parents=True, exist_ok=True)
        self._metrics_dir()
        if not port_free(self.settings.port):
            log.error("127.0.0.1:%d is in use (another `make run`?): stop it or set PORT", self.settings.port)
            return 1
        try:
            if not self._start_redis():
                return 1
            token = self._setup()
            if token is None:
                return self.exit_code if self.signalled else 1
            self._start_services()
            self._supervise(token)
            return self.exit_code
        finally:
            self._shutdown()

    def _metrics_dir(self) -> None:
        """Every child records its Prometheus samples in one directory, emptied at start, that /metrics sums."""
        path = Path(self.env.get("PROMETHEUS_MULTIPROC_DIR") or INSTANCE / "metrics")
        path.mkdir(parents=True, exist_ok=True)
        for old in path.glob("*.db"):
            old.unlink(missing_ok=True)
        self.env["PROMETHEUS_MULTIPROC_DIR"] = str(path)

    def _start_redis(self) -> bool:
        if self.settings.redis_url:
            log.info("using REDIS_URL from the environment")
            return True
        if not self._url_file_is_stale(URL_FILE):
            log.error("%s points at a live Redis: is another `make run` running? Stop it first.", URL_FILE)
            return False
        embedded = EmbeddedRedis()
        self.redis = embedded

        def spawn() -> subprocess.Popen:
            embedded.start(**own_group())
            assert embedded.proc is not None
            return embedded.proc

        self.redis_child = Child("redis", spawn)
        try:
            self.redis_child.start()
        except (RuntimeError, OSError) as exc:
            log.error("embedded Redis did not start: %s", exc)
            return False
        self.env["REDIS_URL"] = embedded.url
        URL_FILE.write_text(embedded.url + "\n")
        self.url_written = embedded.url
        log.info("embedded Redis at %s (announced in %s)", embedded.url, URL_FILE)
        return True

    @staticmethod
    def _url_file_is_stale(url_file: Path) -> bool:
        """A leftover file from a killed run is stale; one whose Redis answers belongs to a live run."""
        if not url_file.exists():
            return True
        try:
            redis.Redis.from_url(url_file.read_text().strip(), socket_timeout=0.5, socket_connect_timeout=0.5).ping()
        except (redis.RedisError, OSError, ValueError):
            return True
        return False

    def _setup(self) -> str | None:
        """Migrate, seed, get the admin token: each a `flask` command, as an operator would run them."""
        for args in (
            ("db", "upgrade"),
            ("playbook", "load-demo-if-empty"),
            ("faq", "load-demo-if-empty"),
            ("campaign", "load-demo-if-empty"),
        ):
            if self._step(args) is None:
                return None
        out = self._step(("tokens", "ensure-admin"), capture=True)
        if out is None:
            return None
        lines = [line.strip() for line in out.splitlines() if line.strip()]
        return lines[-1].split()[-1] if lines else ""

    def _step(self, args: tuple[str, ...], capture: bool = False) -> str | None:
        """Run one setup command; None when it failed or a stop was requested meanwhile."""
        if self.stopping:
            return None
        log.info("running: flask %s", " ".join(args))
        proc = popen(flask_argv(*args), self.env, stdout=subprocess.PIPE if capture else None, text=True)
        out = ""
        while True:
            if self.stopping:
                self._stop_all([proc], grace=GROUP_GRACE if self.signalled else 0)
                return None
            try:
                out, _ = proc.communicate(timeout=POLL)
                break
            except subprocess.TimeoutExpired:
                continue
        if self.stopping:  # it got the group's Ctrl-C too: not a failure
            return None
        if proc.returncode != 0:
            log.error("flask %s failed with exit code %d", " ".join(args), proc.returncode)
            self.exit_code = 1
            return None
        return out or ""

    def _start_services(self) -> None:
        bind = f"127.0.0.1:{self.settings.port}"
        specs = {
            "web": gunicorn_argv("wsgi:app", bind, web_workers(self.settings.database_url)),
            "worker": flask_argv("worker"),
            "scheduler": flask_argv("scheduler"),
            "applier": flask_argv("apply"),
        }
        for name, argv in specs.items():

            def spawn(argv: list[str] = argv) -> subprocess.Popen:
                return popen(argv, self.env, separate=True)

            child = Child(name, spawn)
            self.children.append(child)
            child.start()

    def _supervise(self, token: str) -> None:
        started = time.monotonic()
        ready = False
        next_reap = 0.0
        watched = ([self.redis_child] if self.redis_child else []) + self.children
        while not self.stopping:
            now = time.monotonic()
            for child in watched:
                self._watch(child, now)
                if self.stopping:
                    return
            if not ready:
                status = self._health()
                if status in (200, 503) or now - started > READY_TIMEOUT:
                    ready = True
                    self._banner(token, status)
            if now >= next_reap:
                self._reap_orphans()
                next_reap = now + 1.0
            time.sleep(POLL)

    def _watch(self, child: Child, now: float) -> None:
        """Restart a dead child after its backoff; give up on one that keeps dying."""
        if child.proc is None:
            if now >= child.restart_at:
                try:
                    child.start()
                except (RuntimeError, OSError) as exc:
                    log.error("%s did not start: %s", child.name, exc)
                    self._died(child, now)
            return
        code = child.proc.poll()
        if code is None:
            if child.backoff > FIRST_BACKOFF and now - child.started > STABLE_AFTER:
                child.backoff = FIRST_BACKOFF
            return
        if self.stopping:
            return
        log.warning("%s (pid %d) exited with %s", child.name, child.proc.pid, code)
        child.proc = None
        # What it leaves behind is now ours (subreaper): e.g. gunicorn workers still holding the listening socket,
        # which would make the restarted master fail to bind. End them before the restart.
        self._stop_orphans(exclude=self._known())
        self._died(child, now)

    def _died(self, child: Child, now: float) -> None:
        child.proc = None
        child.deaths.append(now)
        while child.deaths and now - child.deaths[0] > RESTART_WINDOW:
            child.deaths.popleft()
        if len(child.deaths) >= MAX_DEATHS:
            log.error("%s died %d times in %.0f s: stopping everything", child.name, len(child.deaths), RESTART_WINDOW)
            self.exit_code = 1
            self.stopping = True
            return
        child.restart_at = now + child.backoff
        log.info("restarting %s in %.1f s", child.name, child.backoff)
        child.backoff = min(child.backoff * 2, MAX_BACKOFF)

    def _health(self) -> int | None:
        """The HTTP status of /healthz, or None while nothing answers yet."""
        url = f"http://127.0.0.1:{self.settings.port}/healthz"
        try:
            with _NO_PROXY.open(url, timeout=2) as resp:
                return resp.status
        except urllib.error.HTTPError as exc:
            return exc.code
        except (urllib.error.URLError, OSError):
            return None

    def _banner(self, token: str, health: int | None) -> None:
        redis_note = f"embedded, announced in {INSTANCE.name}/redis.url" if self.redis else "from REDIS_URL"
        redis_line = f"{self.env.get('REDIS_URL', '')}  ({redis_note})"
        print(banner(self.settings, self.pid, token, health, redis_line), flush=True)

    # ---- shutdown -----------------------------------------------------------------------------------------------

    def _reap_orphans(self) -> None:
        """Collect zombies of orphans reparented to us, so they do not pile up while we run."""
        known = self._known()
        for pid in children_of(self.pid):
            if pid not in known:
                alive(pid)

    def _known(self) -> set[int]:
        return {c.proc.pid for c in [*self.children, self.redis_child] if c and c.proc}

    def _stop_all(self, procs: list[subprocess.Popen], grace: float) -> None:
        """Wait `grace` for processes already signalled by the group, then terminate, wait, and kill."""
        deadline = time.monotonic() + grace
        while any(p.poll() is None for p in procs) and time.monotonic() < deadline and not self.force:
            time.sleep(0.05)
        for p in procs:
            if p.poll() is None:
                p.terminate()
        deadline = time.monotonic() + TERM_TIMEOUT
        while any(p.poll() is None for p in procs) and time.monotonic() < deadline and not self.force:
            time.sleep(0.05)
        for p in procs:
            if p.poll() is None:
                log.warning("pid %d did not stop in time: killing it", p.pid)
                p.kill()
                p.wait()

    def _stop_orphans(self, exclude: set[int]) -> None:
        pids = [pid for pid in children_of(self.pid) if pid not in exclude and alive(pid)]
        for pid in pids:
            log.info("terminating orphan pid %d", pid)
            send_signal(pid, signal.SIGTERM)
        deadline = time.monotonic() + TERM_TIMEOUT
        while pids and time.monotonic() < deadline and not self.force:
            pids = [pid for pid in pids if alive(pid)]
            time.sleep(0.05)
        for pid in pids:
            if alive(pid):
                send_signal(pid, signal.SIGKILL)
                alive(pid)

    def _shutdown(self) -> None:
        """In STOP_ORDER, one at a time, then orphans, then Redis (the others may use it until they end), then the
        URL file. The children are in process groups of their own: a signal to ours reached only us, so nothing
        stops before its turn."""
        self.stopping = True
        for name in STOP_ORDER:
            procs = [c.proc for c in self.children if c.name == name and c.proc is not None]
            if procs:
                log.info("stopping %s", name)
                self._stop_all(procs, grace=0)
        redis_pid = self.redis_child.proc.pid if self.redis_child and self.redis_child.proc else -1
        self._stop_orphans(exclude={redis_pid})
        if self.redis is not None:
            log.info("stopping embedded Redis")
            self.redis.stop()
        if self.url_written is not None:
            with contextlib.suppress(FileNotFoundError):
                if URL_FILE.read_text().strip() == self.url_written:
                    URL_FILE.unlink()
        self._stop_orphans(exclude=set())
        log.info("stopped")


_NO_PROXY = urllib.request.build_opener(urllib.request.ProxyHandler({}))  # loopback: never via http_proxy


def main() -> int:
    try:
        settings = Settings.from_env()
    except ConfigError as exc:
        configure_logging("INFO")
        log.error("configuration: %s", exc)
        return 2
    configure_logging(settings.log_level)
    return Supervisor(settings).run()


if __name__ == "__main__":
    sys.exit(main())
