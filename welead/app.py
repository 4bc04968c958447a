"""The app factory: settings, then services, then blueprints and CLI commands."""

from __future__ import annotations

import logging
from functools import cached_property

import redis
from apiflask import APIFlask
from flask import current_app

from welead.config import INSTANCE, Settings
from welead.db import Database
from welead.redisconn import connect, resolve_url


class Services:
    """What a request or a job needs, built once per process. Redis is connected on first use, so commands that
    need only the database (`flask db upgrade`) run without one."""

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

    def close(self) -> None:
        self.db.dispose()
        for name in ("redis", "redis_slow"):
            if name in self.__dict__:
                self.__dict__[name].close()


def services() -> Services:
    return current_app.extensions["welead"]


def create_app(settings: Settings | None = None) -> APIFlask:
    settings = settings or Settings.from_env()
    app = APIFlask(
        "welead",
        title="WeLead admin API",
        version="1",
        spec_path="/api/v1/openapi.json",
        docs_path="/api/v1/docs",
        instance_path=str(INSTANCE),
    )
    app.config.update(
        MAX_CONTENT_LENGTH=settings.max_body,
        JSON_SORT_KEYS=False,
        AUTO_404_RESPONSE=False,
        SECURITY_SCHEMES={"BearerAuth": {"type": "http", "scheme": "bearer"}},
    )
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")

    app.extensions["welead"] = Services(settings, Database(settings.database_url))
    _register(app, settings)
    return app


def _register(app: APIFlask, settings: Settings) -> None:
    from handlers.views import bp as callbacks
    from welead.api import bp as api
    from welead.api import json_errors
    from welead.cli import register_cli
    from welead.health import bp as health
    from welead.metrics import bp as metrics

    app.register_blueprint(callbacks)
    app.register_blueprint(health)
    app.register_blueprint(metrics)
    app.register_blueprint(api)
    json_errors(app)
    if settings.sandbox:
        from wechat.sandbox import bp as sandbox

        app.register_blueprint(sandbox)
    register_cli(app)
