"""Dialect-aware statements the ORM does not spell portably."""

from __future__ import annotations

from typing import Any

from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.orm import Session


def insert_ignore(session: Session, model: Any, conflict: list[str]) -> Any:
    """INSERT ... ON CONFLICT (cols) DO NOTHING: the idempotent write every retried callback relies on."""
    dialect = session.get_bind().dialect.name
    module = postgresql if dialect == "postgresql" else sqlite
    return module.insert(model).on_conflict_do_nothing(index_elements=conflict)


def upsert(
    session: Session,
    model: Any,
    conflict: list[str],
    values: dict[str, Any],
    update: list[str],
) -> Any:
    """INSERT ... ON CONFLICT (cols) DO UPDATE SET the named columns from the new row."""
    dialect = session.get_bind().dialect.name
    module = postgresql if dialect == "postgresql" else sqlite
    stmt = module.insert(model).values(**values)
    return stmt.on_conflict_do_update(index_elements=conflict, set_={c: stmt.excluded[c] for c in update})
