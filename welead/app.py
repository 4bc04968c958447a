"""The app factory: settings, then services, then blueprints and CLI commands."""

from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import Any

import redis
from apiflask import APIFlask
from flask import current_app

from welead.config import INSTANCE, Settings
from welead.db import Database
from welead.redisconn import connect, resolve_url


@dataclass
class Services:
    """What a request or a job needs, built once per process."""

    settings: Settings
    db: Database
    redis_url: str
    redis: redis.Redis  # short timeouts: the callback path
    redis_slow: redis.Redis  # ordinary timeouts: jobs, CLI


def services() -> Services:
    return current_app.extensions["welead"]


def create_app(settings: Settings | None = None, **overrides: Any) -> APIFlask:
    settings = settings or Settings.from_env()
    if overrides:
        settings = settings.replace(**overrides)
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

    redis_url = resolve_url(settings.redis_url)
    app.extensions["welead"] = Services(
        settings=settings,
        db=Database(settings.database_url),
        redis_url=redis_url,
        redis=connect(redis_url, fast=True),
        redis_slow=connect(redis_url),
    )
    _register(app, settings)
    return app


def _register(app: APIFlask, settings: Settings) -> None:
    from handlers.views import bp as callbacks
    from welead.api import bp as api
    from welead.api import json_errors
    from welead.cli import register_cli
    from welead.health import bp as health

    app.register_blueprint(callbacks)
    app.register_blueprint(health)
    app.register_blueprint(api)
    json_errors(app)
    if settings.sandbox:
        from wechat.sandbox import bp as sandbox

        app.register_blueprint(sandbox)
    register_cli(app)
