"""Posting simulated callbacks through the Flask test client."""

from __future__ import annotations

import subprocess
import threading
from collections.abc import Iterator
from contextlib import contextmanager

import redis
import sqlalchemy as sa
from sqlalchemy import func, select
from werkzeug.serving import make_server

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


def stop_processes(procs: list) -> None:
    """Terminate (then kill) test subprocesses, closing their log files: `procs` holds (Popen, log file) pairs."""
    for proc, log in procs:
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
