"""The Workflows Executions adapter: the executions of the saga workflow, labelled ``saga_id=<saga id>``.

It implements ``ports.SagaExecutions`` for the start_saga function and serves the seed's
``SagaOrchestrator`` (which adds validation), so both start a saga the same way.

Starting is idempotent per saga id: ``start`` looks for an execution with the label first (any state)
and returns it if there is one. Two starts racing within the same instant can both pass that check, so
``create`` settles the race after it creates: it lists the executions with the label again and, unless
its own is the first started (start time, then name), it cancels its own at once and answers with the
first. The Executions API lists what it has created, so of two racing starts the later one sees the
earlier and yields; a step the cancelled execution may already have sent carries the same
``Idempotency-Key`` as the winner's, so no effect is applied twice.

Google's client libraries are imported on first use, not with this module.
"""

from __future__ import annotations

import contextlib
import datetime
import json
from collections.abc import Callable, Iterator
from typing import TYPE_CHECKING, Any

from saga_orchestrator.errors import SagaNotFoundError
from saga_orchestrator.model import SagaRequest
from saga_orchestrator.ports import SagaStatus, StartOutcome

if TYPE_CHECKING:
    from google.cloud.workflows.executions_v1 import Execution, ExecutionsClient

LABEL = "saga_id"


class WorkflowExecutions:
    """``client`` builds (or returns the shared) ``ExecutionsClient`` when a call needs it."""

    def __init__(self, client: Callable[[], ExecutionsClient], workflow_path: str) -> None:
        self._client = client
        self.workflow_path = workflow_path

    def find(self, saga_id: str) -> str | None:
        """Name of an execution labelled with ``saga_id`` (newest first), if any."""
        return next((str(e.name) for e in self._labelled(saga_id, page_size=1)), None)

    def first(self, saga_id: str) -> str | None:
        """The first started execution labelled with ``saga_id`` (start time, then name), if any."""
        found = [
            (e.start_time.timestamp() if e.start_time else 0.0, str(e.name))
            for e in self._labelled(saga_id, page_size=100)
        ]
        return min(found)[1] if found else None

    def start(self, request: SagaRequest) -> StartOutcome:
        existing = self.find(request.saga_id)
        if existing:
            return StartOutcome(existing, created=False)
        return self.create(request)

    def create(self, request: SagaRequest) -> StartOutcome:
        """Start a new execution without looking for one first (for a caller that just did), then settle
        a race with another start of the same saga (see the module's docstring)."""
        from google.api_core import exceptions
        from google.cloud.workflows import executions_v1

        client = self._client()
        execution = client.create_execution(
            parent=self.workflow_path,
            execution=executions_v1.Execution(
                argument=request.argument_json(), labels={LABEL: request.saga_id}
            ),
        )
        mine = str(execution.name)
        first = self.first(request.saga_id)
        if first is None or first == mine:
            return StartOutcome(mine, created=True)
        with contextlib.suppress(exceptions.FailedPrecondition):  # already ended: nothing left to stop
            client.cancel_execution(name=mine)
        return StartOutcome(first, created=False)

    def status(self, execution_name: str) -> SagaStatus:
        return _status_of(self._client().get_execution(name=execution_name))

    def cancel(self, execution_name: str) -> str:
        """Cancel the execution; returns its state after the call."""
        return _state(self._client().cancel_execution(name=execution_name))

    def argument(self, execution_name: str) -> Any:
        """The execution's argument (the normalized saga request), parsed; None when it is not JSON."""
        text = self._client().get_execution(name=execution_name).argument
        value = _json_or_text(text) if text else None
        return value if isinstance(value, dict) else None

    def resolve(self, saga: str) -> SagaStatus:
        """The status of the execution ``saga`` names: an execution name of this workflow, or a saga id
        (its first started execution, the one that runs the saga). Raises ``SagaNotFoundError``."""
        from google.api_core import exceptions

        if "/executions/" in saga:
            if not saga.startswith(self.workflow_path + "/executions/"):
                raise SagaNotFoundError(saga)
            try:
                return self.status(saga)
            except (exceptions.NotFound, exceptions.InvalidArgument):
                raise SagaNotFoundError(saga) from None
        name = self.first(saga)
        if name is None:
            raise SagaNotFoundError(saga)
        return self.status(name)

    def ended(self, since: datetime.datetime) -> list[SagaStatus]:
        """The executions that ended CANCELLED or FAILED at or after ``since`` (UTC), with their error,
        through the Executions API's ``filter`` on ``state`` and ``endTime``
        (https://cloud.google.com/workflows/docs/reference/executions/rest/v1/projects.locations.workflows.executions/list)."""
        from google.cloud.workflows import executions_v1

        stamp = since.astimezone(datetime.UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")
        pager = self._client().list_executions(
            request=executions_v1.ListExecutionsRequest(
                parent=self.workflow_path,
                filter=f'(state="CANCELLED" OR state="FAILED") AND endTime>="{stamp}"',
                page_size=100,
                view=executions_v1.ExecutionView.FULL,
            )
        )
        # FULL: each listed execution carries its error and times, so no Get per execution.
        return [_status_of(e) for e in pager]

    def listed(self, *, filter: str = "", page_size: int = 100) -> Iterator[SagaStatus]:
        """The executions of the saga workflow, newest first, that match the Executions API ``filter``
        (state, startTime, endTime, labels.*), each in the FULL view (its result, error and current
        steps come with the page: no Get per execution); pages are fetched as the caller reads on."""
        from google.cloud.workflows import executions_v1

        pager = self._client().list_executions(
            request=executions_v1.ListExecutionsRequest(
                parent=self.workflow_path,
                filter=filter,
                page_size=min(max(page_size, 1), 100),
                view=executions_v1.ExecutionView.FULL,
            )
        )
        return (_status_of(execution) for execution in pager)

    def _labelled(self, saga_id: str, *, page_size: int) -> Iterator[Execution]:
        """The executions labelled ``saga_id=<saga_id>``, newest first (the Executions API's order)."""
        from google.cloud.workflows import executions_v1

        pager = self._client().list_executions(
            request=executions_v1.ListExecutionsRequest(
                parent=self.workflow_path, filter=f'labels.{LABEL}="{saga_id}"', page_size=page_size
            )
        )
        return (e for e in pager if e.labels.get(LABEL, saga_id) == saga_id)


def _state(execution: Execution) -> str:
    return str(type(execution).State(execution.state).name)


def _json_or_text(text: str) -> Any:
    try:
        return json.loads(text)
    except json.JSONDecodeError:
        return text


def _time(value: Any) -> str | None:
    if not value:
        return None
    try:
        return str(value.isoformat().replace("+00:00", "Z"))
    except AttributeError:
        return str(value)


def _status_of(execution: Execution) -> SagaStatus:
    """The saga's view of an execution as the Executions API returned it (FULL view)."""
    error = None
    steps = _current_steps(execution)
    if execution.error and execution.error.payload:
        error = _json_or_text(execution.error.payload)
    return SagaStatus(
        execution_name=str(execution.name),
        state=_state(execution),
        result=_json_or_text(execution.result) if execution.result else None,
        error=error,
        start_time=_time(execution.start_time),
        end_time=_time(execution.end_time),
        saga_id=execution.labels.get(LABEL),
        current_step=steps[-1] if steps else None,
        current_steps=steps,
    )


def _current_steps(execution: Execution) -> tuple[tuple[str, str], ...]:
    steps = list(execution.status.current_steps) if execution.status else []
    return tuple((str(step.routine), str(step.step)) for step in steps)
