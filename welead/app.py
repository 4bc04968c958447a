"""The app factory: settings, then services, then blueprints and CLI commands."""

from __future__ import annotations

import logging

from apiflask import APIFlask

from foundation.config import INSTANCE, Settings
from foundation.db import Database
from foundation.services import EXTENSION, Services
from welead import wire


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
    wire.install(app)  # body cap without Content-Length, strict JSON in and out, bounded <int:...> ids
    app.config.update(
        MAX_CONTENT_LENGTH=settings.max_body,
        SECRET_KEY=settings.secret_key,
        SESSION_COOKIE_SAMESITE="Lax",  # the rep pages' session (welead.rep_pages); HttpOnly is Flask's default
        SESSION_COOKIE_SECURE=settings.public_url.startswith("https://"),
        JSON_SORT_KEYS=False,
        AUTO_404_RESPONSE=False,
        SECURITY_SCHEMES={"BearerAuth": {"type": "http", "scheme": "bearer"}},
    )
    configure_logging(settings.log_level)

    app.extensions[EXTENSION] = Services(settings, Database(settings.database_url))
    _register(app, settings)
    return app


# Loggers that say the same thing every few seconds while nothing happens (RQ: three lines per periodic job, each
# cron enqueue; alembic: its plugins at every `db upgrade`). Warnings and errors still show; DEBUG shows it all.
CHATTY = ("rq.worker", "rq.job", "rq.cron", "rq.scheduler", "alembic.runtime.plugins")
LOG_FORMAT = "%(asctime)s %(levelname)s %(name)s: %(message)s"


def configure_logging(level: str) -> None:
    """WELEAD_LOG_LEVEL for WeLead's own loggers; the chatty ones at WARNING unless it is DEBUG."""
    logging.basicConfig(level=level, format=LOG_FORMAT)
    for name in CHATTY:
        logging.getLogger(name).setLevel(level if level == "DEBUG" else "WARNING")


def _register(app: APIFlask, settings: Settings) -> None:
    from handlers.views import bp as callbacks
    from welead import apidocs
    from welead.api import bp as api
    from welead.api import json_errors
    from welead.cli import register_cli
    from welead.event_pages import bp as event_pages
    from welead.form_pages import bp as form_pages
    from welead.health import bp as health
    from welead.landing import bp as landing
    from welead.metrics import bp as metrics
    from welead.rep_pages import bp as rep_pages

    app.register_blueprint(callbacks)
    app.register_blueprint(health)
    app.register_blueprint(landing)
    app.register_blueprint(metrics)
    app.register_blueprint(api)
    app.register_blueprint(rep_pages)
    app.register_blueprint(form_pages)
    app.register_blueprint(event_pages)
    apidocs.init_app(app)
    json_errors(app)
    if settings.sandbox:
        from wechat.sandbox import mount

        svc = app.extensions[EXTENSION]
        mount(app, settings=lambda: svc.settings, connection=lambda: svc.redis_slow)
    register_cli(app)
