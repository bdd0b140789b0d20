"""The barrier in PostgreSQL, with psycopg 3 and parameterised SQL only.

The schema is the migration ``saga_participant/migrations/postgresql/0001_barrier.sql``: apply it with
``psql -f`` in your own migration tool, or call ``PostgresStore.migrate()`` once at deploy time.

Each barrier transaction first takes ``pg_advisory_xact_lock`` on a 64-bit hash of ``(scope, saga, step)``,
so deliveries of one step are decided one after the other, in any number of processes; the lock ends
with the transaction. Two different steps whose hashes collide merely wait for each other.

Connections: ``PostgresStore(conninfo)`` opens one per barrier transaction; pass ``connect=pool.connection``
(psycopg_pool) to reuse them. Passing your own connection to ``Barrier.run(..., connection=conn)`` runs
the barrier in ``conn.transaction()``: a new transaction, or a savepoint of the one you are in, in
which case nothing (barrier record or business write) is final until you commit.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import AbstractContextManager, contextmanager
from typing import Any

import psycopg

from saga_participant.barrier import Effect, PairTransaction
from saga_participant.stores.sql import SqlPair


class _PostgresPair(SqlPair):
    mark = "%s"

    @property
    def connection(self) -> psycopg.Connection[Any]:
        return self._db


Connect = Callable[[], AbstractContextManager[psycopg.Connection[Any]]]


class PostgresStore:
    """``conninfo``: a libpq connection string or URL; or ``connect``: a factory of connection context
    managers (e.g. ``psycopg_pool.ConnectionPool(...).connection``)."""

    def __init__(self, conninfo: str | None = None, *, connect: Connect | None = None) -> None:
        if (conninfo is None) == (connect is None):
            raise ValueError("give PostgresStore either conninfo or connect")
        self._connect: Connect = connect or (lambda: psycopg.connect(conninfo or "", autocommit=True))

    def migrate(self) -> None:
        """Apply the bundled schema (idempotent)."""
        from saga_participant.stores import migration

        with self._connect() as db, db.transaction():
            db.execute(migration("postgresql").encode())

    @contextmanager
    def locked(
        self, scope: str, saga_id: str, step: str, connection: Any = None
    ) -> Iterator[PairTransaction]:
        if connection is not None:
            if not isinstance(connection, psycopg.Connection):
                raise TypeError("PostgresStore works on a psycopg.Connection")
            with connection.transaction():
                yield self._lock(connection, scope, saga_id, step)
            return
        with self._connect() as db, db.transaction():
            yield self._lock(db, scope, saga_id, step)

    @staticmethod
    def _lock(db: psycopg.Connection[Any], scope: str, saga_id: str, step: str) -> _PostgresPair:
        db.execute(
            "SELECT pg_advisory_xact_lock(hashtextextended(%s, 0))", ("\x1f".join((scope, saga_id, step)),)
        )
        return _PostgresPair(db, scope, saga_id, step)

    def effects(self, scope: str, saga_id: str) -> list[Effect]:
        with self._connect() as db, db.cursor() as cursor:
            cursor.execute(
                "SELECT step, action, idempotency_key FROM saga_effect "
                "WHERE scope = %s AND saga_id = %s ORDER BY seq",
                (scope, saga_id),
            )
            rows = cursor.fetchall()
        return [Effect(step, action, key) for step, action, key in rows]
