"""What a demo participant remembers: its resources, the failure switch, the list of calls it has seen,
and its ``saga_participant`` barrier (answers per ``Idempotency-Key``, the execute/compensate barrier per
saga step, the effects applied) in an in-memory SQLite store.

Plain objects, no HTTP: ``pipeline.py`` drives them, from several threads at once (a web layer's
request threads or worker threads), so what several calls change together is guarded by a lock. The barrier follows DTM's
(https://en.dtm.pub/practice/barrier.html): a compensation with no execute before it is a recorded
no-op (a "null compensation"), and an execution that arrives after it is refused with 409 (a "hanging"
execution never takes effect). The business effect runs inside the barrier's transaction, so concurrent
attempts with one key wait for the first and get its answer.
"""

from __future__ import annotations

import hashlib
import threading
import time
from collections import deque
from dataclasses import dataclass, field
from typing import Any, Literal

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


def new_barrier() -> Barrier:
    # A compensation may name what another step created (a ``$ref`` to its output): it always runs,
    # and answers "nothing_to_undo" when there is nothing.
    return Barrier(SQLiteStore(":memory:"), run_orphan_compensations=True)


@dataclass
class Ledger:
    """The participant's whole memory; ``reset()`` forgets everything. ``booked`` maps a step's pair
    (``pair_of``) to the resource its execute created."""

    calls: list[CallRecord] = field(default_factory=list)
    attempts: dict[str, int] = field(default_factory=dict)
    booked: dict[str, str] = field(default_factory=dict)
    resources: dict[str, Resource] = field(default_factory=dict)
    switch: FailureSwitch = field(default_factory=FailureSwitch)
    barrier: Barrier = field(default_factory=new_barrier)
    _lock: threading.Lock = field(default_factory=threading.Lock, repr=False, compare=False)

    def record(self, **fields: Any) -> CallRecord:
        with self._lock:
            record = CallRecord(seq=len(self.calls) + 1, **fields)
            self.calls.append(record)
        return record

    def count_attempt(self, idempotency_key: str) -> int:
        """The attempt number of this call for its key (1 for the first)."""
        with self._lock:
            self.attempts[idempotency_key] = self.attempts.get(idempotency_key, 0) + 1
            return self.attempts[idempotency_key]

    def reset(self) -> None:
        with self._lock:
            self.calls.clear()
            self.attempts.clear()
        self.booked.clear()
        self.resources.clear()
        self.switch.clear()
        self.barrier = new_barrier()

    def snapshot(self) -> dict[str, Any]:
        return {
            "resources": {
                rid: {"status": r.status, "saga_id": r.saga_id, "step": r.step, "payload": r.payload}
                for rid, r in self.resources.items()
            },
            "executed": sorted(self.booked),
            "armed": self.switch.pending(),
        }


def resource_id(prefix: str, idempotency_key: str) -> str:
    """Deterministic per key, so a demo run reads the same every time."""
    return f"{prefix}-{hashlib.sha256(idempotency_key.encode()).hexdigest()[:10].upper()}"
