"""Linux process plumbing for the `make run` supervisor: children that die with it, orphans found through /proc."""

from __future__ import annotations

import contextlib
import ctypes
import os
import signal
import socket
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

from foundation.config import ROOT

PR_SET_PDEATHSIG = 1
PR_SET_CHILD_SUBREAPER = 36

_LIBC = ctypes.CDLL(None, use_errno=True)
_LINUX = sys.platform.startswith("linux")


def prctl(option: int, value: int) -> None:
    if not _LINUX:
        raise OSError(0, "prctl is Linux-only")
    if _LIBC.prctl(option, value, 0, 0, 0) != 0:
        raise OSError(ctypes.get_errno(), os.strerror(ctypes.get_errno()))


def die_with(parent: int) -> Callable[[], None]:
    """preexec_fn: the child gets SIGTERM if the supervisor dies without cleaning up (SIGKILL, OOM)."""

    def setup() -> None:
        prctl(PR_SET_PDEATHSIG, signal.SIGTERM)
        if os.getppid() != parent:  # the parent died before prctl took effect
            os._exit(1)

    return setup


def own_group() -> dict[str, object]:
    """Popen options for a child that signals to the supervisor's process group must not reach (Ctrl-C, `kill --
    -PGID`): in a process group of its own, it is stopped by the supervisor only, in order, and dies with it."""
    return {"process_group": 0, "preexec_fn": die_with(os.getpid()) if _LINUX else None}


def popen(argv: list[str], env: dict[str, str], separate: bool = False, **kwargs: object) -> subprocess.Popen:
    """Popen in the repo root, dying with the supervisor. preexec_fn is safe here: the supervisor has no threads.

    `separate`: in a process group of its own (`own_group`), for the long-running children.
    """
    if separate:
        kwargs.update(own_group())
    else:
        kwargs["preexec_fn"] = die_with(os.getpid()) if _LINUX else None
    return subprocess.Popen(argv, cwd=ROOT, env=env, **kwargs)


def children_of(pid: int) -> list[int]:
    """Direct children, from /proc (Linux): the only way to find orphans that were reparented to us."""
    children = Path(f"/proc/{pid}/task/{pid}/children")
    if children.exists():
        try:
            return [int(p) for p in children.read_text().split()]
        except OSError:
            pass
    found = []
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            # the command name may contain spaces and parentheses: the fields after its last ")" are fixed
            if int(stat.read_text().rsplit(")", 1)[1].split()[1]) == pid:
                found.append(int(stat.parent.name))
        except (OSError, ValueError, IndexError):
            continue
    return found


def port_free(port: int) -> bool:
    """Checked before anything starts: otherwise gunicorn retries the bind, dies, and is restarted until we give up."""
    with socket.socket() as s:
        s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)  # as gunicorn binds: TIME_WAIT is no conflict
        try:
            s.bind(("127.0.0.1", port))
        except OSError:
            return False
    return True


def alive(pid: int) -> bool:
    """True while `pid` exists and is not a zombie; reaps it when it is our zombie."""
    try:
        done, _ = os.waitpid(pid, os.WNOHANG)
        return done == 0
    except ChildProcessError:  # not our child (or already reaped): ask the kernel directly
        try:
            os.kill(pid, 0)
        except ProcessLookupError:
            return False
        return True


def send_signal(pid: int, sig: int) -> None:
    with contextlib.suppress(ProcessLookupError):
        os.kill(pid, sig)


def web_workers(database_url: str = "") -> int:
    """Gunicorn's own WEB_CONCURRENCY wins. Callbacks are CPU-bound: on SQLite, whose writers queue on one lock, one
    worker per core measured best (336 vs 270 callbacks/s with 2 vs 4 on 2 cores); PostgreSQL's own processes
    overlap with ours, so two per core there (231 vs 222), at most 8."""
    raw = os.environ.get("WEB_CONCURRENCY", "")
    if raw.isdigit() and int(raw) > 0:
        return int(raw)
    cores = os.cpu_count() or 1
    per_core = 1 if (database_url or "sqlite").startswith("sqlite") else 2
    return max(2, min(8, per_core * cores))


def gunicorn_argv(app: str, bind: str, workers: int | None = None) -> list[str]:
    """The one gunicorn command line, shared by `make run` and bench/callback.py so the bench measures what runs.

    Timeouts: WeChat gives a callback 5 s, so a request stuck for 30 s is dead anyway; graceful shutdown gets 10 s.
    GUNICORN_CMD_ARGS (read by gunicorn itself) adds anything else, e.g. "--access-logfile -".
    """
    return [
        sys.executable, "-m", "gunicorn", app,
        "--bind", bind,
        "--workers", str(workers or web_workers()),
        "--timeout", "30",
        "--graceful-timeout", "10",
        "--keep-alive", "5",
        "--worker-tmp-dir", "/dev/shm" if Path("/dev/shm").is_dir() else "/tmp",
        "--no-control-socket",  # gunicorn 27's default socket is one per user: a second gunicorn would take it over
    ]  # fmt: skip


def flask_argv(*args: str) -> list[str]:
    return [sys.executable, "-m", "flask", "--app", "wsgi", *args]
