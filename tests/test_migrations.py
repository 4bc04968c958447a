"""The Alembic migrations build exactly the schema the models describe (on this test run's database)."""

from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext

import scrm.schema  # noqa: F401
from foundation.db import Base, make_engine

POSTGRES_ONLY = {"ix_followers_source_pattern", "ix_tags_name_pattern"}  # text_pattern_ops LIKE indexes


def test_migrations_match_models(database_url):
    engine = make_engine(database_url)
    try:
        with engine.connect() as conn:
            diff = compare_metadata(MigrationContext.configure(conn), Base.metadata)
    finally:
        engine.dispose()
    if engine.dialect.name == "sqlite":
        diff = [d for d in diff if not (d[0] == "add_index" and d[1].name in POSTGRES_ONLY)]
    assert diff == []
