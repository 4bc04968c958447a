"""Alembic, driven from code: `flask db upgrade`, `make run` and the test fixtures all come through here."""

from __future__ import annotations

from alembic import command
from alembic.config import Config

from foundation.config import ROOT


def alembic_config(url: str) -> Config:
    cfg = Config(str(ROOT / "alembic.ini"))
    cfg.set_main_option("script_location", str(ROOT / "migrations"))
    cfg.set_main_option("sqlalchemy.url", url.replace("%", "%%"))
    return cfg


def upgrade(url: str, revision: str = "head") -> None:
    command.upgrade(alembic_config(url), revision)
