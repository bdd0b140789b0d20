"""What a demo participant remembers: its resources, the failure switch, the list of calls it has seen,
its ``saga_participant`` barrier (answers per ``Idempotency-Key``, the execute/compensate barrier per
saga step, the effects applied) and a journal of every business decision (``Book``).

By default all of it is in memory (the barrier in an in-memory SQLite store) and a restart forgets it.
With a state file (``Ledger.open(path)``, ``--state-dir``), the barrier, the resources and the journal
live in one SQLite database on disk, as a real participant keeps them in its database: the business
writes go through the barrier transaction's connection, so an effect, its journal entry and the barrier's
record commit together or not at all, and a process killed at any moment (SIGKILL) restarts with exactly
what was committed. The failure switch, the attempt counts and the list of calls stay in memory.

Plain objects, no HTTP: ``pipeline.py`` drives them, from several threads at once (a web layer's
request threads or worker threads), so what several calls change together is guarded by a lock. The barrier follows DTM's
(https://en.dtm.pub/practice/barrier.html): a compensation with no execute before it is a recorded
no-op (a "null compensation"), and an execution that arrives after it is refused with 409 (a "hanging"
execution never takes effect). The business effect runs inside the barrier's transaction, so concurrent
attempts with one key wait for the first and get its answer.
"""

from __future__ import annotations

import contextlib
import dataclasses
import hashlib
import json
import sqlite3
import threading
import time
from collections import deque
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any, Literal, Protocol

from saga_participant import Barrier, SQLiteStore

Action = Literal["execute", "compensate"]
Result = Literal["SUCCESS", "FAILURE", "ONGOING", "ERROR", "HANG"]

RESULTS: tuple[Result, ...] = ("SUCCESS", "FAILURE", "ONGOING", "ERROR", "HANG")
ACTIONS: tuple[Action, ...] = ("execute", "compensate")
# What each injected result answers (DTM's mapping; HANG answers nothing until it gives up).
RESULT_STATUS: dict[Result, int] = {"SUCCESS": 200, "FAILURE": 409, "ONGOING": 425, "ERROR": 500, "HANG": 503}
# Statuses the saga engine retries; answers with them are never remembered for replay.
TRANSIENT_STATUSES = frozenset({408, 425, 429})


class InjectionError(ValueError):
    """A malformed failure-injection request (switch body or payload ``simulate`` field)."""


@dataclass(frozen=True)
class Injection:
    """One injected outcome: the result, and optionally the exact status, message and hang length."""

    result: Result
    status: int | None = None
    reason: str | None = None
    seconds: float | None = None
    # Apply the business effect first, then answer with the injection (a lost response).
    after_effect: bool = False

    def answer_status(self) -> int:
        return self.status if self.status is not None else RESULT_STATUS[self.result]

    def to_dict(self) -> dict[str, Any]:
        return {
            "result": self.result,
            "status": self.status,
            "reason": self.reason,
            "seconds": self.seconds,
            "after_effect": self.after_effect,
        }


def parse_injection(raw: Any) -> Injection:
    """``"FAILURE"`` or ``{"result": "ERROR", "status": 503, "reason": "...", "seconds": 2, "after_effect": true}``."""
    if isinstance(raw, str):
        raw = {"result": raw}
    if not isinstance(raw, dict):
        raise InjectionError("an injection is a result name or an object with a 'result'")
    result = str(raw.get("result", "")).upper()
    if result not in RESULTS:
        raise InjectionError(f"result must be one of {', '.join(RESULTS)}, got {raw.get('result')!r}")
    status = raw.get("status")
    if status is not None and (
        not isinstance(status, int) or isinstance(status, bool) or not 200 <= status <= 599
    ):
        raise InjectionError("status must be an HTTP status code (200..599)")
    reason = raw.get("reason")
    if reason is not None and not isinstance(reason, str):
        raise InjectionError("reason must be a string")
    seconds = raw.get("seconds")
    if seconds is not None and (
        not isinstance(seconds, int | float) or isinstance(seconds, bool) or seconds < 0
    ):
        raise InjectionError("seconds must be a non-negative number")
    after_effect = raw.get("after_effect", False)
    if not isinstance(after_effect, bool):
        raise InjectionError("after_effect must be true or false")
    return Injection(
        after_effect=after_effect,
        result=result,
        status=status,
        reason=reason,
        seconds=None if seconds is None else float(seconds),
    )


@dataclass
class _Armed:
    injection: Injection
    remaining: int
    action: Action | None


class FailureSwitch:
    """DTM's one-shot switches, generalised: ``arm(injection, count, action)`` makes the next ``count``
    calls (of ``action`` only, when given) answer with ``injection``. Armed rules are used in order."""

    def __init__(self) -> None:
        self._armed: deque[_Armed] = deque()
        self._lock = threading.Lock()

    def arm(self, injection: Injection, count: int = 1, action: Action | None = None) -> None:
        if count < 1:
            raise InjectionError("count must be at least 1")
        with self._lock:
            self._armed.append(_Armed(injection, count, action))

    def take(self, action: Action) -> Injection | None:
        with self._lock:
            for rule in self._armed:
                if rule.action in (None, action):
                    rule.remaining -= 1
                    if rule.remaining == 0:
                        self._armed.remove(rule)
                    return rule.injection
        return None

    def pending(self) -> list[dict[str, Any]]:
        with self._lock:
            return [{**r.injection.to_dict(), "count": r.remaining, "action": r.action} for r in self._armed]

    def clear(self) -> None:
        with self._lock:
            self._armed.clear()


@dataclass
class CallRecord:
    """One call as the participant saw it. ``status`` is None while the call is still being answered
    (a HANG); ``effect`` is True when this call changed business state (created or undid a resource)."""

    seq: int
    service: str
    method: str
    path: str
    action: Action
    saga_id: str | None
    step: str | None
    idempotency_key: str | None
    caller: str | None = None
    status: int | None = None
    effect: bool = False
    outcome: str = ""
    at: float = field(default_factory=time.time)

    def to_dict(self) -> dict[str, Any]:
        return {
            "seq": self.seq,
            "service": self.service,
            "method": self.method,
            "path": self.path,
            "action": self.action,
            "saga_id": self.saga_id,
            "step": self.step,
            "idempotency_key": self.idempotency_key,
            "caller": self.caller,
            "status": self.status,
            "effect": self.effect,
            "outcome": self.outcome,
            "at": self.at,
        }


@dataclass(frozen=True)
class Answer:
    status: int
    body: Any  # JSON


@dataclass
class Resource:
    """A booking, reservation or charge."""

    id: str
    status: str
    saga_id: str | None
    step: str | None
    payload: dict[str, Any]


def pair_of(idempotency_key: str, saga_id: str | None, step: str | None, action: Action) -> str:
    """The barrier key shared by a step's execute and compensate: saga id + step when both headers are
    present, else the ``Idempotency-Key`` without its trailing action (``trip-1:book_flight:execute``)."""
    if saga_id and step:
        return f"{saga_id}\x1f{step}"
    for candidate in ACTIONS:
        if idempotency_key.endswith(candidate):
            stem = idempotency_key[: -len(candidate)]
            return stem[:-1] if stem and stem[-1] in ":-_/." else stem
    return idempotency_key


def new_barrier(path: str = ":memory:") -> Barrier:
    # A compensation may name what another step created (a ``$ref`` to its output): it always runs,
    # and answers "nothing_to_undo" when there is nothing.
    return Barrier(SQLiteStore(path), run_orphan_compensations=True)


@dataclass(frozen=True)
class JournalEntry:
    """One business decision (``services.decide`` ran, inside the barrier's transaction): ``effect`` is
    True when it changed business state. ``seq`` orders the entries of one participant (the book numbers
    them as it keeps them)."""

    seq: int
    at: float
    saga_id: str | None
    step: str | None
    action: Action
    idempotency_key: str
    effect: bool
    outcome: str
    resource_id: str | None

    def to_dict(self) -> dict[str, Any]:
        return {
            "seq": self.seq,
            "at": self.at,
            "saga_id": self.saga_id,
            "step": self.step,
            "action": self.action,
            "idempotency_key": self.idempotency_key,
            "effect": self.effect,
            "outcome": self.outcome,
            "resource_id": self.resource_id,
        }


class Book(Protocol):
    """The business state of one service: its resources, the resource each step's execute created (by
    the step's pair, ``pair_of``) and the journal of decisions. Writes take the barrier transaction's
    connection (``SagaCall.connection``), so they commit with the barrier record; a journal entry with
    no connection (a call the barrier refused) is written on its own."""

    def resource(self, resource_id: str, connection: Any) -> Resource | None: ...

    def created_by(self, pair: str, connection: Any) -> str | None: ...

    def create(self, pair: str, resource: Resource, connection: Any) -> None: ...

    def set_status(self, resource_id: str, status: str, connection: Any) -> None: ...

    def journal(self, entry: JournalEntry, connection: Any) -> None: ...

    def resources(self) -> dict[str, Resource]: ...

    def executed(self) -> list[str]: ...

    def entries(self) -> list[JournalEntry]: ...

    def clear(self) -> None: ...


class MemoryBook:
    """The book in dictionaries (the connection is not used): gone when the process ends. The in-memory
    barrier runs one transaction at a time, so the effects it wraps never interleave."""

    def __init__(self) -> None:
        self._resources: dict[str, Resource] = {}
        self._booked: dict[str, str] = {}
        self._journal: list[JournalEntry] = []

    def resource(self, resource_id: str, connection: Any) -> Resource | None:
        return self._resources.get(resource_id)

    def created_by(self, pair: str, connection: Any) -> str | None:
        return self._booked.get(pair)

    def create(self, pair: str, resource: Resource, connection: Any) -> None:
        self._resources[resource.id] = resource
        self._booked[pair] = resource.id

    def set_status(self, resource_id: str, status: str, connection: Any) -> None:
        self._resources[resource_id].status = status

    def journal(self, entry: JournalEntry, connection: Any) -> None:
        self._journal.append(dataclasses.replace(entry, seq=len(self._journal) + 1))

    def resources(self) -> dict[str, Resource]:
        return dict(self._resources)

    def executed(self) -> list[str]:
        return sorted(self._booked)

    def entries(self) -> list[JournalEntry]:
        return list(self._journal)

    def clear(self) -> None:
        self._resources.clear()
        self._booked.clear()
        self._journal.clear()


_BOOK_SCHEMA = """
CREATE TABLE IF NOT EXISTS demo_resource (
    id       TEXT PRIMARY KEY,
    status   TEXT NOT NULL,
    saga_id  TEXT,
    step     TEXT,
    pair     TEXT NOT NULL,
    payload  TEXT NOT NULL
);
CREATE INDEX IF NOT EXISTS demo_resource_by_pair ON demo_resource (pair);
CREATE TABLE IF NOT EXISTS demo_journal (
    seq             INTEGER PRIMARY KEY AUTOINCREMENT,
    at_epoch        REAL    NOT NULL,
    saga_id         TEXT,
    step            TEXT,
    action          TEXT    NOT NULL,
    idempotency_key TEXT    NOT NULL,
    effect          INTEGER NOT NULL,
    outcome         TEXT    NOT NULL,
    resource_id     TEXT
);
"""


class SQLiteBook:
    """The book in tables of the barrier's SQLite database file (``demo_resource``, ``demo_journal``):
    every write runs on the barrier transaction's connection and commits with it; reads outside a call
    open a connection of their own."""

    def __init__(self, path: str) -> None:
        self.path = path
        with self._connection() as db:
            db.executescript(_BOOK_SCHEMA)

    @contextlib.contextmanager
    def _connection(self) -> Iterator[sqlite3.Connection]:
        db = sqlite3.connect(self.path, timeout=30.0, isolation_level=None)
        try:
            yield db
        finally:
            db.close()

    def resource(self, resource_id: str, connection: Any) -> Resource | None:
        row = connection.execute(
            "SELECT id, status, saga_id, step, payload FROM demo_resource WHERE id = ?", (resource_id,)
        ).fetchone()
        return None if row is None else Resource(row[0], row[1], row[2], row[3], json.loads(row[4]))

    def created_by(self, pair: str, connection: Any) -> str | None:
        row = connection.execute(
            "SELECT id FROM demo_resource WHERE pair = ? ORDER BY rowid DESC LIMIT 1", (pair,)
        ).fetchone()
        return None if row is None else str(row[0])

    def create(self, pair: str, resource: Resource, connection: Any) -> None:
        connection.execute(
            "INSERT OR REPLACE INTO demo_resource (id, status, saga_id, step, pair, payload) "
            "VALUES (?, ?, ?, ?, ?, ?)",
            (
                resource.id,
                resource.status,
                resource.saga_id,
                resource.step,
                pair,
                json.dumps(resource.payload),
            ),
        )

    def set_status(self, resource_id: str, status: str, connection: Any) -> None:
        connection.execute("UPDATE demo_resource SET status = ? WHERE id = ?", (status, resource_id))

    def journal(self, entry: JournalEntry, connection: Any) -> None:
        if connection is None:
            with self._connection() as db:
                self.journal(entry, db)
            return
        connection.execute(
            "INSERT INTO demo_journal (at_epoch, saga_id, step, action, idempotency_key, effect, outcome, "
            "resource_id) VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
            (
                entry.at,
                entry.saga_id,
                entry.step,
                entry.action,
                entry.idempotency_key,
                int(entry.effect),
                entry.outcome,
                entry.resource_id,
            ),
        )

    def resources(self) -> dict[str, Resource]:
        with self._connection() as db:
            rows = db.execute("SELECT id, status, saga_id, step, payload FROM demo_resource").fetchall()
        return {row[0]: Resource(row[0], row[1], row[2], row[3], json.loads(row[4])) for row in rows}

    def executed(self) -> list[str]:
        with self._connection() as db:
            return sorted(row[0] for row in db.execute("SELECT DISTINCT pair FROM demo_resource"))

    def entries(self) -> list[JournalEntry]:
        with self._connection() as db:
            rows = db.execute(
                "SELECT seq, at_epoch, saga_id, step, action, idempotency_key, effect, outcome, resource_id "
                "FROM demo_journal ORDER BY seq"
            ).fetchall()
        return [
            JournalEntry(seq, at, saga_id, step, action, key, bool(effect), outcome, resource)
            for seq, at, saga_id, step, action, key, effect, outcome, resource in rows
        ]

    def clear(self) -> None:
        """Forgets the book and the barrier's records in the same file."""
        with self._connection() as db:
            for table in ("demo_resource", "demo_journal", "saga_barrier", "saga_effect"):
                db.execute(f"DELETE FROM {table}")


@dataclass
class Ledger:
    """The participant's whole memory; ``reset()`` forgets everything. ``Ledger()`` keeps it in memory,
    ``Ledger.open(path)`` in a SQLite file (see the module docstring)."""

    calls: list[CallRecord] = field(default_factory=list)
    attempts: dict[str, int] = field(default_factory=dict)
    book: Book = field(default_factory=MemoryBook)
    switch: FailureSwitch = field(default_factory=FailureSwitch)
    barrier: Barrier = field(default_factory=new_barrier)
    state_file: str | None = None
    _lock: threading.Lock = field(default_factory=threading.Lock, repr=False, compare=False)

    @classmethod
    def open(cls, state_file: str | None) -> Ledger:
        """In memory when ``state_file`` is None, else in that SQLite file (created if missing, its
        barrier, resources and journal kept as they are)."""
        if state_file is None:
            return cls()
        barrier = new_barrier(state_file)  # creates the file with the barrier's schema first
        return cls(book=SQLiteBook(state_file), barrier=barrier, state_file=state_file)

    def record(self, **fields: Any) -> CallRecord:
        with self._lock:
            record = CallRecord(seq=len(self.calls) + 1, **fields)
            self.calls.append(record)
        return record

    def count_attempt(self, idempotency_key: str) -> int:
        """The attempt number of this call for its key (1 for the first; counted since the process
        started)."""
        with self._lock:
            self.attempts[idempotency_key] = self.attempts.get(idempotency_key, 0) + 1
            return self.attempts[idempotency_key]

    def reset(self) -> None:
        with self._lock:
            self.calls.clear()
            self.attempts.clear()
        self.book.clear()
        self.switch.clear()
        if self.state_file is None:
            self.barrier = new_barrier()

    def snapshot(self) -> dict[str, Any]:
        return {
            "resources": {
                rid: {"status": r.status, "saga_id": r.saga_id, "step": r.step, "payload": r.payload}
                for rid, r in self.book.resources().items()
            },
            "executed": self.book.executed(),
            "armed": self.switch.pending(),
        }


def resource_id(prefix: str, idempotency_key: str) -> str:
    """Deterministic per key, so a demo run reads the same every time."""
    return f"{prefix}-{hashlib.sha256(idempotency_key.encode()).hexdigest()[:10].upper()}"
