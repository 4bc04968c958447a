"""`make run`'s supervisor: children stop one after another, the embedded Redis last and out of reach of a group
signal; quiet logs while idle (issue 13: 14, 15)."""

from __future__ import annotations

import logging
import os
import signal
import subprocess
import sys
import textwrap
import time

import pytest
import redis
from rq import Queue

from foundation.config import ConfigError, Settings
from tasks.queue import QUEUE
from tasks.worker import QuietWorker, eventful
from welead.app import CHATTY, configure_logging

# A supervisor with four fake children that note their name when SIGTERM reaches them. It runs in a session of its
# own, so its shutdown (which also ends orphans among its children) never touches the test's own processes.
FAKE_STACK = textwrap.dedent(
    """
    import signal, sys, time
    from foundation.config import Settings
    from welead.processes import popen
    from welead.run import Child, Supervisor

    NOTE = "import signal, sys, time; signal.signal(signal.SIGTERM, lambda *a: (open(sys.argv[1], 'a').write("
    NOTE += "sys.argv[2] + ' '), sys.exit(0))); print('up', flush=True); time.sleep(60)"

    def stop(*_):
        raise SystemExit

    signal.signal(signal.SIGTERM, stop)
    sup = Supervisor(Settings())
    try:
        for name in ("web", "worker", "scheduler", "applier"):
            argv = [sys.executable, "-c", NOTE, sys.argv[1], name]
            child = Child(name, lambda argv=argv: popen(argv, sup.env, separate=True, stdout=-1))
            child.start()
            child.proc.stdout.readline()
            sup.children.append(child)
        print("ready", flush=True)
        time.sleep(60)
    finally:
        sup._shutdown()
    """
)


def test_group_signal_stops_children_in_order(tmp_path):
    notes = tmp_path / "order.txt"
    argv = [sys.executable, "-c", FAKE_STACK, str(notes)]
    with subprocess.Popen(argv, start_new_session=True, stdout=subprocess.PIPE, text=True) as proc:
        try:
            assert proc.stdout.readline().strip() == "ready"
            os.killpg(proc.pid, signal.SIGTERM)  # what `kill -TERM -- -PGID` and Ctrl-C do: the whole group
            proc.wait(30)
        finally:
            if proc.poll() is None:
                os.killpg(proc.pid, signal.SIGKILL)
    assert notes.read_text().split() == ["web", "scheduler", "worker", "applier"]


HOLDER = textwrap.dedent(
    """
    import signal, time
    from welead.embedded import EmbeddedRedis
    from welead.processes import own_group

    signal.signal(signal.SIGTERM, signal.SIG_IGN)  # the holder outlives the group signal, like the supervisor
    server = EmbeddedRedis()
    server.start(**own_group())
    print(server.proc.pid, server.url, flush=True)
    time.sleep(60)
    """
)


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="parent-death signal is Linux-only")
def test_embedded_redis_ignores_the_group_signal_and_dies_with_the_supervisor():
    argv = [sys.executable, "-c", HOLDER]
    with subprocess.Popen(argv, start_new_session=True, stdout=subprocess.PIPE, text=True) as holder:
        _hold(holder)


def _hold(holder: subprocess.Popen) -> None:
    try:
        pid, url = holder.stdout.readline().split()
        assert os.getpgid(int(pid)) != holder.pid  # a group of its own
        os.killpg(holder.pid, signal.SIGTERM)
        time.sleep(0.3)
        assert redis.Redis.from_url(url, socket_timeout=2).ping()  # still serving the others while they stop
        holder.kill()  # the supervisor killed outright: Redis goes with it (parent-death signal)
        holder.wait(5)
        deadline = time.monotonic() + 5
        while time.monotonic() < deadline and _alive(int(pid)):
            time.sleep(0.05)
        assert not _alive(int(pid))
    finally:
        if holder.poll() is None:
            os.killpg(holder.pid, signal.SIGKILL)


def _alive(pid: int) -> bool:
    try:
        with open(f"/proc/{pid}/stat") as stat:
            return stat.read().rsplit(")", 1)[1].split()[0] != "Z"
    except FileNotFoundError:
        return False


# --- logs ---------------------------------------------------------------------------------------------------------


def test_log_level_setting(monkeypatch):
    assert Settings.from_env().log_level == "INFO"
    monkeypatch.setenv("WELEAD_LOG_LEVEL", "debug")
    assert Settings.from_env().log_level == "DEBUG"
    monkeypatch.setenv("WELEAD_LOG_LEVEL", "loud")
    with pytest.raises(ConfigError, match="WELEAD_LOG_LEVEL"):
        Settings.from_env()


def test_chatty_loggers_are_quiet_unless_debug():
    saved = {name: logging.getLogger(name).level for name in CHATTY}
    try:
        configure_logging("INFO")
        assert all(logging.getLogger(name).level == logging.WARNING for name in CHATTY)
        configure_logging("DEBUG")
        assert all(logging.getLogger(name).level == logging.DEBUG for name in CHATTY)
    finally:
        for name, level in saved.items():
            logging.getLogger(name).setLevel(level)


def test_what_counts_as_something_happening():
    assert not any(eventful(r) for r in (None, 0, "skipped", {"disabled": True}, {"pushed": 0, "stopped": ""}, []))
    assert all(eventful(r) for r in (3, "done", {"pushed": 0, "lost": 2}, {"created": 1, "stopped": "busy"}))


def test_worker_logs_one_line_per_job_that_did_something(redis_url, caplog):
    conn = redis.Redis.from_url(redis_url)
    queue = Queue(QUEUE, connection=conn)
    queue.enqueue("operator.add", 0, 0)  # an idle periodic job: nothing at INFO
    busy = queue.enqueue("operator.add", 2, 3)
    configure_logging("INFO")
    with caplog.at_level(logging.INFO):
        QuietWorker([QUEUE], connection=conn).work(burst=True, logging_level=None)
    lines = [r.getMessage() for r in caplog.records if r.levelno >= logging.INFO]
    assert lines == [f"job operator.add ({busy.id}): 5"], lines
