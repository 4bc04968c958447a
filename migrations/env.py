"""Alembic environment: the URL comes from the caller (welead.migrate) or DATABASE_URL."""

from alembic import context

import scrm.schema  # noqa: F401  (imports every model module so metadata is complete)
from foundation.config import Settings
from foundation.db import Base, make_engine

config = context.config


def run_migrations_online() -> None:
    connection = config.attributes.get("connection")
    if connection is not None:
        _run(connection)
        return
    url = config.get_main_option("sqlalchemy.url") or Settings.from_env().database_url
    engine = make_engine(url)
    try:
        with engine.connect() as conn:
            _run(conn)
    finally:
        engine.dispose()


def _run(connection) -> None:
    context.configure(connection=connection, target_metadata=Base.metadata, render_as_batch=True, compare_type=True)
    with context.begin_transaction():
        context.run_migrations()
    connection.commit()


run_migrations_online()
