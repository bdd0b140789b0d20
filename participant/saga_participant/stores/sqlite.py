"""The barrier in SQLite (the standard library's ``sqlite3``).

A file database may be shared by threads and processes: every transaction starts with ``BEGIN
IMMEDIATE``, which takes SQLite's write lock for the whole database, so two deliveries of one step are
decided one after the other (waiting up to ``busy_timeout`` seconds for the lock). The database runs in
WAL mode. ``":memory:"`` keeps the barrier in one connection of this process (lost when it exits), used
by one thread at a time.

Passing your own ``sqlite3.Connection`` to ``locked`` (through ``Barrier.run(..., connection=...)``)
makes your writes commit with the barrier's: the connection must not be inside a transaction already.
"""

from __future__ import annotations

import sqlite3
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

from saga_participant.barrier import Effect, PairTransaction
from saga_participant.stores.sql import SqlPair


class _SQLitePair(SqlPair):
    @property
    def connection(self) -> sqlite3.Connection:
        return self._db


class SQLiteStore:
    """``path``: a database file (created with the schema if missing) or ``":memory:"``."""

    def __init__(self, path: str = ":memory:", *, busy_timeout: float = 30.0) -> None:
        from saga_participant.stores import migration

        self.path = path
        self._busy_timeout = busy_timeout
        self._memory: sqlite3.Connection | None = None
        self._memory_guard = threading.Lock()
        with self._connection() as db:
            if path != ":memory:":
                db.execute("PRAGMA journal_mode=WAL")
            db.executescript(migration("sqlite"))

    @contextmanager
    def _connection(self) -> Iterator[sqlite3.Connection]:
        if self.path == ":memory:":
            with self._memory_guard:
                if self._memory is None:
                    self._memory = sqlite3.connect(":memory:", isolation_level=None, check_same_thread=False)
                yield self._memory
            return
        db = sqlite3.connect(self.path, timeout=self._busy_timeout, isolation_level=None)
        try:
            yield db
        finally:
            db.close()

    @contextmanager
    def locked(
        self, scope: str, saga_id: str, step: str, connection: Any = None
    ) -> Iterator[PairTransaction]:
        if connection is not None:
            if not isinstance(connection, sqlite3.Connection):
                raise TypeError("SQLiteStore works on a sqlite3.Connection")
            if connection.in_transaction:
                raise ValueError("the connection is inside a transaction; the barrier starts its own")
            with _immediate(connection):
                yield _SQLitePair(connection, scope, saga_id, step)
            return
        with self._connection() as db, _immediate(db):
            yield _SQLitePair(db, scope, saga_id, step)

    def effects(self, scope: str, saga_id: str) -> list[Effect]:
        with self._connection() as db:
            rows = db.execute(
                "SELECT step, action, idempotency_key FROM saga_effect "
                "WHERE scope = ? AND saga_id = ? ORDER BY seq",
                (scope, saga_id),
            ).fetchall()
        return [Effect(step, action, key) for step, action, key in rows]


@contextmanager
def _immediate(db: sqlite3.Connection) -> Iterator[None]:
    db.execute("BEGIN IMMEDIATE")
    try:
        yield
    except BaseException:
        db.execute("ROLLBACK")
        raise
    db.execute("COMMIT")
