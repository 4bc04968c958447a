"""What a request or a job needs, built once per process by the app factory and found through the app context.

Jobs and handlers call `services()` instead of importing the app layer: the factory puts the object under
`app.extensions["welead"]`, and whatever runs inside that app's context reads it from there.
"""

from __future__ import annotations

from functools import cached_property

import redis
from flask import current_app

from foundation.config import Settings
from foundation.db import Database
from foundation.redisconn import connect, resolve_url
from foundation.signing import Signer

EXTENSION = "welead"


class Services:
    """Settings, database and Redis connections. Redis is connected on first use, so commands that need only the
    database (`flask db upgrade`) run without one."""

    def __init__(self, settings: Settings, db: Database) -> None:
        self.settings = settings
        self.db = db

    @cached_property
    def redis_url(self) -> str:
        return resolve_url(self.settings.redis_url)

    @cached_property
    def redis(self) -> redis.Redis:
        """Short timeouts: the callback path gives up fast and leaves the work to the outbox sweeper."""
        return connect(self.redis_url, fast=True)

    @cached_property
    def redis_slow(self) -> redis.Redis:
        """Ordinary timeouts: jobs and CLI commands."""
        return connect(self.redis_url)

    @cached_property
    def signer(self) -> Signer:
        """Signs the links WeLead sends (lead cards, forms); the key is Settings.secret_key."""
        return Signer(self.settings.secret_key)

    def close(self) -> None:
        self.db.dispose()
        for name in ("redis", "redis_slow"):
            if name in self.__dict__:
                self.__dict__[name].close()


def services() -> Services:
    """The current app's services (needs an app context: a request, a job, a CLI command)."""
    return current_app.extensions[EXTENSION]
