"""The saga participant protocol in data: what a call carries and how a participant answers.

What the orchestrator sends with every call (``POST`` by default, or the step's method):

| header | value |
|---|---|
| ``Idempotency-Key`` | stable per saga, step and action; a retry repeats it; an operator's retry of a refused action appends ``:<round>`` |
| ``X-Saga-Id``, ``X-Saga-Step``, ``X-Saga-Action`` | the saga, the step name, ``execute`` or ``compensate`` |
| ``traceparent`` | W3C trace context of the saga |
| ``Authorization`` | ``Bearer <OIDC ID token>``, audience = the participant URL's origin |

The body is the step's JSON payload with every ``{"$ref": ...}`` already resolved by the orchestrator.

How the orchestrator reads the answer (the participant's side of the contract):

| answer | meaning | kept for the ``Idempotency-Key`` |
|---|---|---|
| 2xx (JSON body = the step's output) | success | yes |
| 409, 422, other 4xx except 408/425/429 | business failure: the saga compensates | yes |
| 408, 425, 429 (``Retry-After``), 5xx | transient: the orchestrator retries | no |
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, Literal

Action = Literal["execute", "compensate"]
ACTIONS: tuple[Action, ...] = ("execute", "compensate")

IDEMPOTENCY_KEY = "Idempotency-Key"
SAGA_ID = "X-Saga-Id"
SAGA_STEP = "X-Saga-Step"
SAGA_ACTION = "X-Saga-Action"
TRACEPARENT = "traceparent"
AUTHORIZATION = "Authorization"

TRANSIENT_STATUSES = frozenset({408, 425, 429})


def is_final(status: int) -> bool:
    """A success or a business failure: the answer a repeat of the same key must get again."""
    return status < 500 and status not in TRANSIENT_STATUSES


@dataclass(frozen=True)
class Answer:
    """A participant's answer. ``body`` is JSON-serialisable. ``effect`` says whether a successful answer
    applied a business effect (False for "nothing to undo"); it decides what ``/_saga/effects`` lists."""

    status: int
    body: Any = None
    headers: Mapping[str, str] = field(default_factory=dict)
    effect: bool = True

    @property
    def final(self) -> bool:
        return is_final(self.status)


def success(output: Any = None, *, status: int = 200, effect: bool = True) -> Answer:
    """The step succeeded; ``output`` (JSON) becomes the step's output in the saga."""
    if not 200 <= status < 300:
        raise ValueError(f"a success is a 2xx status, not {status}")
    return Answer(status, output, effect=effect)


def business_failure(error: str, message: str, *, status: int = 409, **details: Any) -> Answer:
    """A refusal the saga must not retry: it compensates the steps already done. Kept for the key."""
    if not 400 <= status < 500 or status in TRANSIENT_STATUSES:
        raise ValueError(f"a business failure is a 4xx other than 408/425/429, not {status}")
    return Answer(status, {"error": error, "message": message, **details}, effect=False)


def retry_later(
    message: str = "not ready yet, retry later", *, seconds: int = 1, status: int = 425
) -> Answer:
    """Transient: the orchestrator calls again with the same key (after at least ``seconds``)."""
    if is_final(status):
        raise ValueError(f"retry later is 408, 425, 429 or 5xx, not {status}")
    return Answer(
        status, {"error": "RETRY_LATER", "message": message}, {"Retry-After": str(int(seconds))}, False
    )


@dataclass(frozen=True)
class SagaCall:
    """One call from the orchestrator, read from its headers and body.

    ``connection`` is the database connection of the barrier's transaction when the business write must
    commit with the barrier record (see ``Barrier.run``), else None."""

    saga_id: str
    step: str
    action: Action
    idempotency_key: str
    payload: Any
    traceparent: str | None = None
    caller: str | None = None
    headers: Mapping[str, str] = field(default_factory=dict, repr=False)
    connection: Any = field(default=None, repr=False, compare=False)

    @property
    def trace_id(self) -> str | None:
        """The 32-hex trace id of ``traceparent`` (``00-<trace>-<span>-<flags>``), for log correlation."""
        parts = (self.traceparent or "").split("-")
        return parts[1] if len(parts) == 4 and len(parts[1]) == 32 else None


class CallError(ValueError):
    """A call that does not follow the protocol; ``problems`` lists every fault at once (answered 400)."""

    def __init__(self, problems: list[str]) -> None:
        super().__init__("; ".join(problems))
        self.problems = problems


def read_call(
    headers: Mapping[str, str], payload: Any, *, action: Action | None = None, caller: str | None = None
) -> SagaCall:
    """The call's context. ``action`` is the endpoint's own action when it has one; the
    ``X-Saga-Action`` header must then agree. ``headers`` must look names up case-insensitively."""
    problems: list[str] = []
    values = {name: (headers.get(name) or "").strip() for name in (IDEMPOTENCY_KEY, SAGA_ID, SAGA_STEP)}
    problems += [f"the {name} header is required" for name, value in values.items() if not value]
    said = (headers.get(SAGA_ACTION) or "").strip() or None
    if said is not None and said not in ACTIONS:
        problems.append(f"{SAGA_ACTION} must be execute or compensate, not {said!r}")
    elif action is not None and said is not None and said != action:
        problems.append(f"{SAGA_ACTION} says {said} but this endpoint is for {action}")
    chosen = action or said
    if chosen is None and not problems:
        problems.append(f"the {SAGA_ACTION} header is required")
    if problems:
        raise CallError(problems)
    assert chosen in ACTIONS
    return SagaCall(
        saga_id=values[SAGA_ID],
        step=values[SAGA_STEP],
        action=chosen,
        idempotency_key=values[IDEMPOTENCY_KEY],
        payload=payload,
        traceparent=headers.get(TRACEPARENT),
        caller=caller,
        headers=headers,
    )
