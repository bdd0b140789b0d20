"""The sub-transaction barrier (after DTM's, https://en.dtm.pub/practice/barrier.html), keyed by
``(scope, saga_id, step, action)``, with the answer kept for the ``Idempotency-Key``.

Rules, decided while the store holds the step's pair of records locked (``BarrierStore.locked``):

| call | record found | outcome |
|---|---|---|
| any | a final answer under the same key | that answer again (a replay; no effect) |
| execute | a compensation of the step (or its marker) | 409 ``ALREADY_COMPENSATED``; never applied |
| execute | a success under another key | that success again (the effect happened once) |
| compensate | no execute, or an execute that failed | a recorded no-op (null compensation), 200 (with ``run_orphan_compensations``, no execute: the handler runs) |
| compensate | a success under another key | that answer again |
| any | a claim of another delivery, younger than ``lease_seconds`` | 425 ``IN_PROGRESS``, ``Retry-After`` |
| any | nothing, a business failure under another key (an operator's retry), an expired claim | the handler runs |

A null compensation also leaves a marker on the execute, so an execute that arrives after it (a "hanging"
execute, whose outcome was unknown to the orchestrator) is refused, never applied.

Two ways to run the handler:

- ``Barrier.run(call, handler)``: the step is claimed (committed), the handler runs outside any store
  transaction (it may call other services), and its answer is recorded afterwards. Concurrent duplicates
  see the claim and get 425. A process that dies mid-handler leaves a claim that another delivery takes
  over after ``lease_seconds``: the effect may then be applied twice, so a handler that can outlive the
  lease must itself be idempotent.
- ``Barrier.run(call, handler, transactional=True)``: the handler runs inside the store's transaction
  with ``call.connection``; its writes commit together with the barrier record or not at all. A
  concurrent duplicate waits on the store's lock and then replays the committed answer: exactly once.

Transient answers (408, 425, 429, 5xx) and exceptions are never recorded: the claim is released, so the
orchestrator's retry (same key) decides again. Atomicity comes from the store (PostgreSQL's advisory
transaction lock, SQLite's database write lock), never from a lock in this process, so several processes
may share one store (an in-memory SQLite store is one process's by nature).
"""

from __future__ import annotations

import dataclasses
import json
import logging
import time
from collections.abc import Callable
from contextlib import AbstractContextManager
from dataclasses import dataclass
from typing import Any, Literal, Protocol

from saga_participant.protocol import Action, Answer, SagaCall

State = Literal["claimed", "done", "blocked"]
DEFAULT_LEASE_SECONDS = 900.0
DEFAULT_SCOPE = "default"

log = logging.getLogger("saga_participant")


@dataclass(frozen=True)
class BarrierRecord:
    """One ``(scope, saga_id, step, action)``. ``blocked`` marks an execute that must never run (its step
    was compensated first); ``claimed`` is a delivery at work since ``at`` (epoch seconds)."""

    scope: str
    saga_id: str
    step: str
    action: Action
    state: State
    idempotency_key: str
    at: float
    status: int | None = None
    body: str | None = None  # the answer's JSON text

    def answer(self) -> Answer:
        body = None if self.body is None else json.loads(self.body)
        return Answer(self.status or 200, body, effect=False)


@dataclass(frozen=True)
class Effect:
    """A business effect actually applied, as listed by ``GET /_saga/effects``."""

    step: str
    action: Action
    idempotency_key: str

    def to_json(self) -> dict[str, str]:
        return {"step": self.step, "action": self.action, "idempotency_key": self.idempotency_key}


class PairTransaction(Protocol):
    """The records of one saga step, locked against every other delivery until the transaction ends."""

    @property
    def connection(self) -> Any: ...

    def get(self, action: Action) -> BarrierRecord | None: ...

    def put(self, record: BarrierRecord) -> None: ...

    def delete(self, action: Action) -> None: ...

    def add_effect(self, effect: Effect) -> None: ...


class BarrierStore(Protocol):
    """Where the barrier lives. ``locked`` opens a transaction that holds the step's records exclusively
    (committed on a normal exit, rolled back on an exception); with ``connection``, on the caller's own
    connection, so the caller's writes commit with it."""

    def locked(
        self, scope: str, saga_id: str, step: str, connection: Any = None
    ) -> AbstractContextManager[PairTransaction]: ...

    def effects(self, scope: str, saga_id: str) -> list[Effect]: ...


def _refused() -> Answer:
    return Answer(
        409,
        {
            "error": "ALREADY_COMPENSATED",
            "message": "this step was compensated before it executed; the execute is refused",
        },
        effect=False,
    )


def _in_progress(lease_left: float) -> Answer:
    seconds = max(1, min(int(lease_left), 30))
    body = {"error": "IN_PROGRESS", "message": "another delivery of this step is being handled"}
    return Answer(425, body, {"Retry-After": str(seconds)}, effect=False)


NULL_COMPENSATION: dict[str, Any] = {
    "status": "nothing_to_undo",
    "message": "the step never took effect here; nothing to undo",
}

Handler = Callable[[SagaCall], Answer]


class _Transient(Exception):
    def __init__(self, answer: Answer) -> None:
        super().__init__(answer.status)
        self.answer = answer


class Barrier:
    """Use one per store; thread-safe as far as the store is (both bundled stores are)."""

    def __init__(
        self,
        store: BarrierStore,
        *,
        scope: str = DEFAULT_SCOPE,
        lease_seconds: float = DEFAULT_LEASE_SECONDS,
        clock: Callable[[], float] = time.time,
        run_orphan_compensations: bool = False,
    ) -> None:
        """``run_orphan_compensations``: a compensate with no execute of its step recorded here still
        runs the handler (for a participant whose undo may target what another step created, named in
        the payload); the handler must then answer ``success(..., effect=False)`` when there is nothing
        to undo. A late execute of the step is refused either way."""
        self.store = store
        self.scope = scope
        self.lease_seconds = lease_seconds
        self._clock = clock
        self.run_orphan_compensations = run_orphan_compensations

    def run(
        self, call: SagaCall, handler: Handler, *, transactional: bool = False, connection: Any = None
    ) -> Answer:
        """The answer to ``call``: a replay, a barrier answer, or the handler's (see the module docstring).
        ``connection``: run transactionally on the caller's own database connection."""
        if transactional or connection is not None:
            return self._run_in_transaction(call, handler, connection)
        with self._locked(call) as tx:
            early = self._decide(tx, call)
            if early is not None:
                return early
            tx.put(self._record(call, "claimed"))
        try:
            answer = handler(call)
        except BaseException:
            self.release(call)
            raise
        return self.finish(call, answer)

    def begin(self, call: SagaCall) -> Answer | None:
        """The first half of ``run`` for handlers that cannot run in this thread (async ones): the early
        answer, or None when the step is now claimed and the handler must run, then ``finish`` or
        ``release``."""
        with self._locked(call) as tx:
            early = self._decide(tx, call)
            if early is None:
                tx.put(self._record(call, "claimed"))
            return early

    def finish(self, call: SagaCall, answer: Answer) -> Answer:
        with self._locked(call) as tx:
            self._record_answer(tx, call, answer)
        return answer

    def release(self, call: SagaCall) -> None:
        """Forget this delivery's claim (its handler failed): the next delivery decides again."""
        with self._locked(call) as tx:
            mine = tx.get(call.action)
            if mine is not None and mine.state == "claimed" and mine.idempotency_key == call.idempotency_key:
                tx.delete(call.action)

    def effects(self, saga_id: str) -> list[Effect]:
        return self.store.effects(self.scope, saga_id)

    def _locked(self, call: SagaCall, connection: Any = None) -> AbstractContextManager[PairTransaction]:
        return self.store.locked(self.scope, call.saga_id, call.step, connection)

    def _run_in_transaction(self, call: SagaCall, handler: Handler, connection: Any) -> Answer:
        try:
            with self._locked(call, connection) as tx:
                early = self._decide(tx, call)
                if early is not None:
                    return early
                answer = handler(dataclasses.replace(call, connection=tx.connection))
                if not answer.final:
                    raise _Transient(answer)  # nothing recorded, the handler's writes rolled back
                tx.put(self._record(call, "done", answer=answer))
                if 200 <= answer.status < 300 and answer.effect:
                    tx.add_effect(Effect(call.step, call.action, call.idempotency_key))
        except _Transient as transient:
            return transient.answer
        return answer

    def _decide(self, tx: PairTransaction, call: SagaCall) -> Answer | None:
        mine = tx.get(call.action)
        if mine is not None and mine.state == "done" and mine.idempotency_key == call.idempotency_key:
            return mine.answer()
        if call.action == "execute":
            if tx.get("compensate") is not None or (mine is not None and mine.state == "blocked"):
                return _refused()
        elif mine is None or mine.state != "done":
            early = self._before_compensation(tx, call)
            if early is not None:
                return early
        if mine is None:
            return None
        if mine.state == "done":
            # Another key: an operator's new round after a refusal decides again; a success stands.
            return mine.answer() if _succeeded(mine) else None
        return self._while_claimed(mine)

    def _before_compensation(self, tx: PairTransaction, call: SagaCall) -> Answer | None:
        execute = tx.get("execute")
        if execute is None and self.run_orphan_compensations:
            tx.put(self._record(call, "blocked", action="execute"))
            return None
        if execute is None:
            return self._null_compensation(tx, call, block=True)
        if execute.state == "claimed":
            # Undo after the execute is answered; an expired claim (a dead process) is undone now.
            return self._while_claimed(execute)
        if execute.state == "done" and not _succeeded(execute):
            return self._null_compensation(tx, call, block=False)
        return None

    def _while_claimed(self, record: BarrierRecord) -> Answer | None:
        lease_left = record.at + self.lease_seconds - self._clock()
        return _in_progress(lease_left) if lease_left > 0 else None

    def _null_compensation(self, tx: PairTransaction, call: SagaCall, *, block: bool) -> Answer:
        if block:
            tx.put(self._record(call, "blocked", action="execute"))
        answer = Answer(200, NULL_COMPENSATION, effect=False)
        tx.put(self._record(call, "done", answer=answer))
        return answer

    def _record_answer(self, tx: PairTransaction, call: SagaCall, answer: Answer) -> None:
        mine = tx.get(call.action)
        if mine is None or mine.state != "claimed" or mine.idempotency_key != call.idempotency_key:
            # Our claim expired and another delivery took over: its record stands, but an effect we
            # applied is still listed.
            log.warning("barrier claim of %s lost before its answer was recorded", call.idempotency_key)
        elif not answer.final:
            tx.delete(call.action)
        else:
            tx.put(self._record(call, "done", answer=answer))
        if answer.final and 200 <= answer.status < 300 and answer.effect:
            tx.add_effect(Effect(call.step, call.action, call.idempotency_key))

    def _record(
        self, call: SagaCall, state: State, *, answer: Answer | None = None, action: Action | None = None
    ) -> BarrierRecord:
        return BarrierRecord(
            scope=self.scope,
            saga_id=call.saga_id,
            step=call.step,
            action=action or call.action,
            state=state,
            idempotency_key=call.idempotency_key,
            at=self._clock(),
            status=None if answer is None else answer.status,
            body=None if answer is None else json.dumps(answer.body, separators=(",", ":")),
        )


def _succeeded(record: BarrierRecord) -> bool:
    return record.status is not None and 200 <= record.status < 300
