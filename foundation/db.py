"""Engine and sessions: one place that knows SQLite needs WAL, a busy timeout and immediate transactions."""

from __future__ import annotations

import fcntl
import os
import threading
from collections.abc import Iterator
from contextlib import contextmanager, nullcontext
from typing import Any

from sqlalchemy import BigInteger, Connection, Engine, Integer, create_engine, event
from sqlalchemy.dialects.postgresql import JSONB
from sqlalchemy.orm import DeclarativeBase, Session, sessionmaker
from sqlalchemy.types import JSON

# Big tables get 64-bit keys on PostgreSQL; SQLite needs INTEGER for its rowid alias.
BigId = BigInteger().with_variant(Integer, "sqlite")
Json = JSON().with_variant(JSONB(), "postgresql")


class Base(DeclarativeBase):
    pass


def make_engine(url: str, *, immediate: bool = True, name: str = "welead") -> Engine:
    """`immediate` (SQLite): every transaction takes the write lock up front; readers use deferred ones. `name` is
    the PostgreSQL application_name (appliers count their peers by it)."""
    if url.startswith("sqlite"):
        engine = create_engine(url, connect_args={"timeout": 30, "check_same_thread": False})
        event.listen(engine, "connect", _sqlite_connect)
        begin = "BEGIN IMMEDIATE" if immediate else "BEGIN"
        event.listen(engine, "begin", lambda conn: conn.exec_driver_sql(begin))
        return engine
    if url.startswith("postgresql://"):
        url = "postgresql+psycopg://" + url.removeprefix("postgresql://")
    connect_args = {"application_name": name}
    return create_engine(url, pool_size=10, max_overflow=20, pool_pre_ping=True, connect_args=connect_args)


SQLITE_PRAGMAS = ["journal_mode=WAL", "busy_timeout=30000", "synchronous=NORMAL", "foreign_keys=ON"]


def _sqlite_connect(dbapi_conn, _record) -> None:
    # Let SQLAlchemy's "begin" event issue BEGIN IMMEDIATE: several processes write, and a deferred transaction
    # that upgrades to a writer mid-way fails with "database is locked" instead of waiting.
    dbapi_conn.isolation_level = None
    cur = dbapi_conn.cursor()
    for pragma in SQLITE_PRAGMAS:
        cur.execute(f"PRAGMA {pragma}")
    cur.close()


class Database:
    """Engines and session factories: `transaction()` for every write, `sessions()` for reads.

    On SQLite, writers from all processes queue on an flock beside the database file before BEGIN IMMEDIATE: the
    kernel wakes the next writer the moment the lock is free, where SQLite's own busy handler polls with sleeps of
    up to 100 ms (that polling, not the writes, is what made p99 latency under concurrent callbacks). Reads use
    deferred transactions on a separate engine: in WAL mode they neither block nor wait for writers.
    """

    def __init__(self, url: str, name: str = "welead") -> None:
        self.url = url
        self.engine = make_engine(url, name=name)
        self.reader = make_engine(url, immediate=False) if self.dialect == "sqlite" else self.engine
        self.sessions = sessionmaker(self.reader, expire_on_commit=False)
        self._writes = sessionmaker(self.engine, expire_on_commit=False)
        self._lock = _WriterLock(self.engine.url.database) if self.dialect == "sqlite" else None

    @property
    def dialect(self) -> str:
        return self.engine.dialect.name

    @contextmanager
    def transaction(self) -> Iterator[Session]:
        with self._lock or nullcontext(), self._writes() as session, session.begin():
            yield session

    @contextmanager
    def lazy_reader(self) -> Iterator[LazyConnection]:
        """A read connection opened only if something is executed: most callbacks need no read at all."""
        lazy = LazyConnection(self.reader)
        try:
            yield lazy
        finally:
            lazy.close()

    @contextmanager
    def write(self) -> Iterator[Connection]:
        """A short Core write transaction, no ORM session: the callback path's one insert."""
        with self._lock or nullcontext(), self.engine.begin() as conn:
            yield conn

    def writer_lock(self) -> Any:
        """The lock SQLite writers queue on (nothing on PostgreSQL), for a write transaction on a connection the
        caller holds itself (the fan-out keeps one for its temporary table)."""
        return self._lock or nullcontext()

    def dispose(self) -> None:
        self.engine.dispose()
        self.reader.dispose()


class LazyConnection:
    """The part of Connection the callback path's reads use (`engine`, `execute`), connecting on first execute."""

    def __init__(self, engine: Engine) -> None:
        self.engine = engine
        self._conn: Connection | None = None

    def execute(self, statement: Any, parameters: Any = None) -> Any:
        if self._conn is None:
            self._conn = self.engine.connect()
        return self._conn.execute(statement, parameters)

    def close(self) -> None:
        if self._conn is not None:
            self._conn.close()
            self._conn = None


class _WriterLock:
    """An exclusive flock per thread on `<database>.lock`; absent (no lock) when the file cannot be opened, so a
    missing database directory still surfaces as SQLite's own error."""

    def __init__(self, database: str | None) -> None:
        self.path = f"{database}.lock" if database and database != ":memory:" else None
        self.local = threading.local()

    def _fd(self) -> int | None:
        fd = getattr(self.local, "fd", None)
        if fd is None and self.path:
            try:
                fd = self.local.fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o600)
            except OSError:
                return None
        return fd

    def __enter__(self) -> None:
        fd = self.local.held = self._fd()
        if fd is not None:
            fcntl.flock(fd, fcntl.LOCK_EX)

    def __exit__(self, *exc: object) -> None:
        if self.local.held is not None:
            fcntl.flock(self.local.held, fcntl.LOCK_UN)
