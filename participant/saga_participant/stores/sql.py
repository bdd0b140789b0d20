"""The barrier's statements, shared by the SQL stores: the same SQL in each database's parameter style
(``?`` for sqlite3, ``%s`` for psycopg), always parameterised."""

from __future__ import annotations

import time
from typing import Any

from saga_participant.barrier import BarrierRecord, Effect
from saga_participant.protocol import Action

COLUMNS = "scope, saga_id, step, action, state, idempotency_key, at_epoch, status, body"


class SqlPair:
    """One ``(scope, saga, step)`` of the barrier on a DB-API connection whose ``execute`` returns a
    cursor (sqlite3 and psycopg 3 both do); ``mark`` is the connection's parameter placeholder."""

    mark = "?"

    def __init__(self, connection: Any, scope: str, saga_id: str, step: str) -> None:
        self._db = connection
        self._key = (scope, saga_id, step)

    def _sql(self, text: str) -> str:
        return text.replace("?", self.mark)

    def get(self, action: Action) -> BarrierRecord | None:
        row = self._db.execute(
            self._sql(
                f"SELECT {COLUMNS} FROM saga_barrier WHERE scope = ? AND saga_id = ? AND step = ? AND action = ?"
            ),
            (*self._key, action),
        ).fetchone()
        return None if row is None else BarrierRecord(*row)

    def put(self, record: BarrierRecord) -> None:
        self._db.execute(
            self._sql(
                f"INSERT INTO saga_barrier ({COLUMNS}) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?) "
                "ON CONFLICT (scope, saga_id, step, action) DO UPDATE SET state = excluded.state, "
                "idempotency_key = excluded.idempotency_key, at_epoch = excluded.at_epoch, "
                "status = excluded.status, body = excluded.body"
            ),
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
            self._sql("DELETE FROM saga_barrier WHERE scope = ? AND saga_id = ? AND step = ? AND action = ?"),
            (*self._key, action),
        )

    def add_effect(self, effect: Effect) -> None:
        self._db.execute(
            self._sql(
                "INSERT INTO saga_effect (scope, saga_id, step, action, idempotency_key, at_epoch) "
                "VALUES (?, ?, ?, ?, ?, ?)"
            ),
            (self._key[0], self._key[1], effect.step, effect.action, effect.idempotency_key, time.time()),
        )
