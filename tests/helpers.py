"""Posting simulated callbacks through the Flask test client."""

from __future__ import annotations

import subprocess
import sys
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import redis
import sqlalchemy as sa
from sqlalchemy import func, select
from werkzeug.serving import make_server

from foundation.config import ROOT
from scrm.applier import Report
from scrm.models import Interaction, Outbox
from tasks.applier import drain as drain_applier
from wechat.simulate import build_callback, callback_path
from welead.embedded import EmbeddedRedis


def post(client, kind: str, *, apply: bool = True, **options):
    """POST a correctly signed (and, when configured, encrypted) callback built by the simulator, then wait for the
    applier (run here, the same code as the applier process) to apply everything pending; `apply=False` only posts.
    """
    settings = client.application.extensions["welead"].settings
    query, body = build_callback(kind, settings, **options)
    response = client.post(callback_path(kind), query_string=query, data=body)
    if apply:
        drain(client.application)
    return response


def drain(app) -> Report:
    """Apply every pending interaction, as the applier process would, and announce the outbox rows."""
    with app.app_context():
        return drain_applier(app.extensions["welead"])


def count(app, model, *where) -> int:
    with app.extensions["welead"].db.sessions() as session:
        return session.scalar(select(func.count()).select_from(model).where(*where))


def interactions(app) -> int:
    return count(app, Interaction)


def pending_outbox(app) -> int:
    return count(app, Outbox, Outbox.done_at.is_(None))


@contextmanager
def serve(app) -> Iterator[str]:
    """`app` over real HTTP on a random loopback port; yields its base URL."""
    server = make_server("127.0.0.1", 0, app, threaded=True)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_port}"
    finally:
        server.shutdown()
        thread.join(5)


def running_url(server: EmbeddedRedis) -> str:
    """The URL of a Redis a test may have killed: started again if it is down, emptied either way."""
    if server.proc is None or server.proc.poll() is not None:
        server.start()
    redis.Redis.from_url(server.url).flushdb()
    return server.url


class FlaskProcesses:
    """`flask --app wsgi <args>` as real processes (workers, appliers) for tests that kill and restart them; each
    run logs to `<log_dir>/<name>-<n>.log`."""

    def __init__(self, env: dict[str, str], log_dir: Path, name: str, *args: str) -> None:
        self.env, self.log_dir, self.name, self.args = env, log_dir, name, args
        self.procs: list[tuple[subprocess.Popen, Any]] = []

    def start(self) -> subprocess.Popen:
        log = open(self.log_dir / f"{self.name}-{len(self.procs)}.log", "wb")  # noqa: SIM115 (closed in stop)
        argv = [sys.executable, "-m", "flask", "--app", "wsgi", *self.args]
        proc = subprocess.Popen(argv, cwd=ROOT, env=self.env, stdout=log, stderr=subprocess.STDOUT)
        self.procs.append((proc, log))
        return proc

    def logs(self) -> str:
        return "\n".join(p.read_text(errors="replace") for p in sorted(self.log_dir.glob(f"{self.name}-*.log")))

    def stop(self) -> None:
        """Terminate (then kill) what still runs, and close the logs."""
        for proc, log in self.procs:
            if proc.poll() is None:
                proc.terminate()
                try:
                    proc.wait(10)
                except subprocess.TimeoutExpired:
                    proc.kill()
                    proc.wait(5)
            log.close()


def recreate_pg_database(url: sa.URL, name: str) -> str:
    """Drop and create database `name` beside `url`'s; its URL, password included."""
    admin = sa.create_engine(url, isolation_level="AUTOCOMMIT")
    with admin.connect() as conn:
        conn.execute(sa.text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
        conn.execute(sa.text(f'CREATE DATABASE "{name}"'))
    admin.dispose()
    return url.set(database=name).render_as_string(hide_password=False)
