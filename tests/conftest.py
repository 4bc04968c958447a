"""Fixtures: a real (embedded) Redis per test session, a fresh migrated database per test, the app, its clients.

SQLite by default (migrated once into a template file, copied per test). With DATABASE_URL pointing at PostgreSQL,
each xdist worker gets a database of its own, migrated once and truncated between tests.
"""

from __future__ import annotations

import os
import shutil
from collections.abc import Iterator
from pathlib import Path

import pytest
import redis
import sqlalchemy as sa
from hypothesis import settings as hypothesis_settings

from foundation.config import Settings
from tests import applier_kit
from tests.browser_kit import browser, phone  # noqa: F401  (one session browser per worker, whichever module asks)
from tests.helpers import recreate_pg_database, serve
from welead.app import create_app
from welead.embedded import EmbeddedRedis
from welead.migrate import upgrade

PG_URL = os.environ.get("DATABASE_URL", "")
ENV_VARS = [
    "DATABASE_URL", "REDIS_URL", "PORT", "WELEAD_PUBLIC_URL", "WECHAT_APP_ID", "WECHAT_APP_SECRET", "WECHAT_TOKEN",
    "WECHAT_AES_KEY", "WECHAT_AES_KEY_PREVIOUS", "WECHAT_API_BASE", "WECOM_CORP_ID", "WECOM_AGENT_ID",
    "WECOM_SECRET", "WECOM_TOKEN", "WECOM_AES_KEY", "WECOM_API_BASE", "WELEAD_ADMIN_TOKEN", "WELEAD_REPLAY_WINDOW",
    "WELEAD_MAX_BODY", "LLM_API_BASE", "LLM_MODEL", "LLM_API_KEY", "LLM_TIMEOUT", "LLM_CONSIDER", "LLM_MAX_CHARS",
]  # fmt: skip
ADMIN_TOKEN = "test-admin-token"

# Property tests check correctness, not speed (speed is for bench/): no per-example deadline, which a loaded CI
# machine would otherwise turn into flaky failures.
hypothesis_settings.register_profile("welead", deadline=None)
hypothesis_settings.load_profile("welead")


@pytest.fixture(scope="session")
def redis_server() -> Iterator[EmbeddedRedis]:
    server = EmbeddedRedis()
    server.start()
    yield server
    server.stop()


@pytest.fixture
def redis_url(redis_server: EmbeddedRedis) -> str:
    redis.Redis.from_url(redis_server.url).flushdb()
    return redis_server.url


def _pg_database(worker: str) -> str:
    url = sa.engine.make_url(PG_URL.replace("postgresql://", "postgresql+psycopg://", 1))
    return recreate_pg_database(url, f"{url.database}_test_{worker}")


@pytest.fixture(scope="session")
def database_template(tmp_path_factory: pytest.TempPathFactory, worker_id: str) -> str:
    """A migrated database: a SQLite file to copy, or a PostgreSQL database to truncate."""
    if PG_URL:
        url = _pg_database(worker_id)
        upgrade(url)
        return url
    path = tmp_path_factory.mktemp("db") / "template.db"
    upgrade(f"sqlite:///{path}")
    return str(path)


@pytest.fixture
def database_url(database_template: str, tmp_path: Path) -> str:
    if PG_URL:
        engine = sa.create_engine(database_template)
        with engine.begin() as conn:
            tables = [r[0] for r in conn.execute(sa.text("SELECT tablename FROM pg_tables WHERE schemaname='public'"))]
            tables = [t for t in tables if t != "alembic_version"]
            conn.execute(sa.text(f"TRUNCATE {', '.join(tables)} RESTART IDENTITY CASCADE"))
        engine.dispose()
        return database_template
    path = tmp_path / "welead.db"
    shutil.copy(database_template, path)
    return f"sqlite:///{path}"


@pytest.fixture
def settings(monkeypatch: pytest.MonkeyPatch, database_url: str, redis_url: str) -> Settings:
    for name in ENV_VARS:
        monkeypatch.delenv(name, raising=False)
    return Settings.from_env().replace(database_url=database_url, redis_url=redis_url, admin_token=ADMIN_TOKEN)


@pytest.fixture
def app(settings: Settings):
    from welead.auth import ensure_admin

    app = create_app(settings)
    app.config["TESTING"] = True
    svc = app.extensions["welead"]
    ensure_admin(svc.db, ADMIN_TOKEN, Path("/nonexistent"))
    yield app
    svc.close()


@pytest.fixture
def client(app):
    return app.test_client()


@pytest.fixture
def runner(app):
    return app.test_cli_runner()


@pytest.fixture
def auth_headers() -> dict[str, str]:
    return {"Authorization": f"Bearer {ADMIN_TOKEN}"}


@pytest.fixture(scope="module")
def killable_redis() -> Iterator[EmbeddedRedis]:
    """A Redis of the module's own, for tests that kill and restart it (use it to override `redis_url`)."""
    server = EmbeddedRedis()
    server.start()
    yield server
    server.stop()


@pytest.fixture
def live(app) -> Iterator[str]:
    """The app served over real HTTP on a random port, with the sandbox as its WeChat API (for jobs)."""
    with serve(app) as base:
        svc = app.extensions["welead"]
        svc.settings = svc.settings.replace(
            public_url=base,
            wechat_api_base=f"{base}/sandbox/oa/cgi-bin/",
            wecom_api_base=f"{base}/sandbox/wecom/cgi-bin/",
        )
        yield base


@pytest.fixture
def refuse_tags():
    """tests.applier_kit.refuse_tags, undone after the test."""
    installed = []

    def install(db, pattern: str) -> None:
        applier_kit.refuse_tags(db, pattern)
        installed.append(db)

    yield install
    for db in installed:
        applier_kit.allow_tags(db)
