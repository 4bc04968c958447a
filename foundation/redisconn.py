"""Redis connections with timeouts: redis-py waits forever on a hung server unless told otherwise."""

from __future__ import annotations

from pathlib import Path

import redis

from foundation.config import INSTANCE

URL_FILE = INSTANCE / "redis.url"


class NoRedisConfigured(redis.ConnectionError):
    """No Redis to talk to: handled wherever an unreachable Redis is (the outbox keeps the work)."""


def resolve_url(configured: str, url_file: Path = URL_FILE) -> str:
    """REDIS_URL if set, else the embedded Redis that `make run` announced under instance/."""
    if configured:
        return configured
    if url_file.exists():
        return url_file.read_text().strip()
    raise NoRedisConfigured(
        "REDIS_URL is unset and no embedded Redis is running (start WeLead with `make run`, or set REDIS_URL)"
    )


def connect(url: str, *, fast: bool = False) -> redis.Redis:
    """`fast` is for the request path: fail in a fraction of a second and let the outbox sweeper catch up."""
    timeout = 0.25 if fast else 5.0
    return redis.Redis.from_url(
        url,
        socket_timeout=timeout,
        socket_connect_timeout=timeout,
        health_check_interval=30,
    )
