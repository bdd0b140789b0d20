"""The sweeper: a ``failed`` result for every saga execution that ended without publishing one.

A saga execution publishes its own result (through saga_completion) unless the engine stops it first:
an Executions API cancel (``terminate_saga``, or by hand) ends it CANCELLED, an engine error (a
revision that cannot run, a limit, an argument it cannot read) ends it FAILED. One sweep lists the saga
workflow's executions that ended CANCELLED or FAILED within the last ``window_seconds`` (the Executions
API's ``filter`` on ``state`` and ``endTime``) and publishes, for each, a ``failed`` result on
``saga-results`` with ``cause: "terminated"`` (CANCELLED) or ``cause: "engine_error"`` (FAILED, with the
execution's error), and logs a line naming the saga and the execution.

Idempotent across runs: sweeps run every period (Cloud Scheduler on Google Cloud, the local stack's
timer locally) with a window longer than the period, so every ended execution is seen by at least one
sweep and usually by two; every sweep publishes the same result with the same deterministic
``ce-id`` the completion would have used (a hash of saga id and execution, ``events.event_id``), so
consumers dedupe the repeats. A sweep that misses more than a window (the scheduler stopped) leaves those
executions unswept: widen the window when restarting.

Not swept: an execution without a ``saga_id`` label (not started as a saga), and one that is not its
saga's first started execution (a duplicate start that yielded to the first and cancelled itself).

What a swept result says: the workflow's record of its steps is gone with it, so every step is listed
with status ``unknown`` and named in ``uncompensated_steps``: any of them may have had an effect that was
not undone; a person must look.
"""

from __future__ import annotations

import datetime
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any, Protocol

from saga_orchestrator.errors import FieldError, InvalidRequestError
from saga_orchestrator.events import encode_result, event_id, event_source
from saga_orchestrator.logging import get_logger, log_context
from saga_orchestrator.ports import Publisher, SagaStatus
from saga_orchestrator.result import SagaResult, StepResult

log = get_logger("saga_orchestrator.sweeper")

# The default of SAGA_SWEEP_WINDOW_SECONDS (deployment.env): two 5-minute periods and a minute.
DEFAULT_WINDOW_SECONDS = 660.0
CAUSES = {"CANCELLED": "terminated", "FAILED": "engine_error"}
REASONS = {
    "CANCELLED": "the execution was cancelled through the Executions API; nothing was compensated",
    "FAILED": "the Workflows engine failed the execution; nothing was compensated",
}


class EndedExecutions(Protocol):
    def ended(self, since: datetime.datetime) -> list[SagaStatus]: ...

    def first(self, saga_id: str) -> str | None: ...

    def argument(self, execution_name: str) -> Any: ...


def window_seconds(env: Mapping[str, str]) -> float:
    """``SAGA_SWEEP_WINDOW_SECONDS`` (default 660); raises ``InvalidRequestError`` naming it."""
    raw = (env.get("SAGA_SWEEP_WINDOW_SECONDS") or "").strip() or str(DEFAULT_WINDOW_SECONDS)
    try:
        value = float(raw)
    except ValueError:
        value = 0.0
    if value <= 0:
        raise InvalidRequestError([FieldError("SAGA_SWEEP_WINDOW_SECONDS", f"must be seconds > 0: {raw!r}")])
    return value


@dataclass(frozen=True)
class Swept:
    saga_id: str
    execution: str
    cause: str
    event_id: str


class Sweeper:
    def __init__(
        self,
        executions: EndedExecutions,
        publisher: Publisher,
        *,
        workflow_path: str,
        window_seconds: float = DEFAULT_WINDOW_SECONDS,
        clock: Callable[[], datetime.datetime] = lambda: datetime.datetime.now(datetime.UTC),
    ) -> None:
        self._executions = executions
        self._publisher = publisher
        self._source = event_source(workflow_path)
        self._window = datetime.timedelta(seconds=window_seconds)
        self._clock = clock

    def sweep(self) -> list[Swept]:
        """One sweep; publishing errors propagate (the next sweep publishes again)."""
        swept = []
        for status in self._executions.ended(self._clock() - self._window):
            saga_id = status.saga_id
            if not saga_id or self._executions.first(saga_id) != status.execution_name:
                continue
            swept.append(self._publish(status, saga_id))
        return swept

    def _publish(self, status: SagaStatus, saga_id: str) -> Swept:
        argument = self._executions.argument(status.execution_name) or {}
        result = swept_result(status, saga_id, argument)
        with log_context(saga_id=saga_id):
            self._publisher.publish(encode_result(result, source=self._source))
            log.warning(
                f"swept saga {saga_id}: execution {status.execution_name} ended {status.state} "
                f"without a result; published failed ({result.cause})",
                execution=status.execution_name,
                cause=result.cause,
            )
        return Swept(saga_id, status.execution_name, str(result.cause), event_id(result))


def swept_result(status: SagaStatus, saga_id: str, argument: Mapping[str, Any]) -> SagaResult:
    """The ``failed`` result of a swept execution (``argument``: its saga request, for step names and
    metadata)."""
    steps = [s["name"] for s in argument.get("steps") or [] if isinstance(s, dict) and "name" in s]
    metadata = argument.get("metadata")
    return SagaResult(
        saga_id=saga_id,
        status="failed",
        execution=status.execution_name,
        reason=REASONS[status.state],
        steps=tuple(StepResult(name=name, status="unknown") for name in steps),
        started_at=status.start_time,
        finished_at=status.end_time,
        metadata=metadata if isinstance(metadata, dict) else {},
        cause=CAUSES[status.state],
        error=_error(status),
        uncompensated_steps=tuple(steps),
    )


def _error(status: SagaStatus) -> dict[str, Any]:
    payload = status.error
    if isinstance(payload, dict) and isinstance(payload.get("message"), str):
        tags = payload.get("tags")
        return {
            "message": payload["message"],
            "tags": [str(t) for t in tags] if isinstance(tags, list) else [],
        }
    if status.state == "CANCELLED":
        return {"message": "execution cancelled through the Executions API", "tags": ["CancelledError"]}
    return {"message": str(payload) if payload else "execution failed", "tags": []}
