"""Imports every model module so Base.metadata is complete (Alembic, tests)."""

from scrm import models  # noqa: F401
