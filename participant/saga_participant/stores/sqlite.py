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
import time
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

from saga_participant.barrier import BarrierRecord, Effect, PairTransaction
from saga_participant.protocol import Action

_COLUMNS = "scope, saga_id, step, action, state, idempotency_key, at_epoch, status, body"


class _SQLitePair:
    def __init__(self, connection: sqlite3.Connection, scope: str, saga_id: str, step: str) -> None:
        self._db = connection
        self._key = (scope, saga_id, step)

    @property
    def connection(self) -> sqlite3.Connection:
        return self._db

    def get(self, action: Action) -> BarrierRecord | None:
        row = self._db.execute(
            f"SELECT {_COLUMNS} FROM saga_barrier WHERE scope = ? AND saga_id = ? AND step = ? AND action = ?",
            (*self._key, action),
        ).fetchone()
        return None if row is None else BarrierRecord(*row)

    def put(self, record: BarrierRecord) -> None:
        self._db.execute(
            f"INSERT INTO saga_barrier ({_COLUMNS}) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?) "
            "ON CONFLICT (scope, saga_id, step, action) DO UPDATE SET state = excluded.state, "
            "idempotency_key = excluded.idempotency_key, at_epoch = excluded.at_epoch, "
            "status = excluded.status, body = excluded.body",
            (
                record.scope,
                record.saga_id,
                record.step,
                record.action,
                record.state,
                record.idempotency_key,
                record.at,
                record.status,
                record.body,
            ),
        )

    def delete(self, action: Action) -> None:
        self._db.execute(
            "DELETE FROM saga_barrier WHERE scope = ? AND saga_id = ? AND step = ? AND action = ?",
            (*self._key, action),
        )

    def add_effect(self, effect: Effect) -> None:
        self._db.execute(
            "INSERT INTO saga_effect (scope, saga_id, step, action, idempotency_key, at_epoch) "
            "VALUES (?, ?, ?, ?, ?, ?)",
            (self._key[0], self._key[1], effect.step, effect.action, effect.idempotency_key, time.time()),
        )


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
