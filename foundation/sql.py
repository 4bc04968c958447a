"""Dialect-aware statements the ORM does not spell portably, built once and reused.

A statement built per call with `.values(...)` pays for SQLAlchemy's cache-key generation every time; these are
compiled once per (dialect, table) and executed with parameters, which is most of the callback path's SQL cost.
"""

from __future__ import annotations

from functools import cache
from typing import Any

from sqlalchemy import Connection, Table
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.orm import Session


def _module(bind: Session | Connection):
    dialect = bind.get_bind().dialect if isinstance(bind, Session) else bind.dialect
    return postgresql if dialect.name == "postgresql" else sqlite


@cache
def _insert_ignore(module: Any, table: Table, conflict: tuple[str, ...], returning: str | None) -> Any:
    stmt = module.insert(table).on_conflict_do_nothing(index_elements=list(conflict))
    return stmt.returning(table.c[returning]) if returning else stmt


def insert_ignore(bind: Session | Connection, model: Any, conflict: list[str], returning: str | None = None) -> Any:
    """INSERT ... ON CONFLICT (cols) DO NOTHING [RETURNING col]: the idempotent write retried callbacks rely on.

    Execute it with a parameter dict: `session.execute(stmt, {...})`, or a list of them.
    """
    return _insert_ignore(_module(bind), model.__table__, tuple(conflict), returning)


def upsert(session: Session, model: Any, conflict: list[str], values: dict[str, Any], update: list[str]) -> Any:
    """INSERT ... ON CONFLICT (cols) DO UPDATE SET the named columns from the new row."""
    stmt = _module(session).insert(model.__table__).values(**values)
    return stmt.on_conflict_do_update(index_elements=conflict, set_={c: stmt.excluded[c] for c in update})
