"""Start, inspect and cancel sagas through the Workflows Executions API (the seed's Python API).

``execute_saga`` validates and normalizes exactly like the ``start_saga`` function, then starts one
execution of the saga workflow with the normalized request as its argument, labelled
``saga_id=<saga id>``. Starting is idempotent per saga id: if an execution with that label already
exists (any state), its name is returned and nothing new starts. Two starts racing within the same
instant can both pass that check, so a start also settles the race after it creates: it lists the
executions with the label again and, unless its own is the first started (start time, then name), it
cancels its own at once and answers with the first. The Executions API lists what it has created, so
of two racing starts the later one sees the earlier and yields; a step the cancelled execution may
already have sent carries the same ``Idempotency-Key`` as the winner's, so no effect is applied twice.
"""

from __future__ import annotations

import contextlib
import dataclasses
import json
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

from saga_orchestrator.clients import ClientFactory, default_factory
from saga_orchestrator.model import SagaRequest
from saga_orchestrator.settings import Settings
from saga_orchestrator.validation import validate_request


@dataclass(frozen=True)
class StartOutcome:
    execution_name: str
    created: bool


@dataclass(frozen=True)
class SagaStatus:
    execution_name: str
    # ACTIVE, SUCCEEDED, FAILED, CANCELLED, UNAVAILABLE, QUEUED (Executions API states)
    state: str
    # The workflow's result (the saga result) when SUCCEEDED, parsed from JSON.
    result: Any = None
    # The execution error's payload (parsed JSON when it is JSON) when FAILED or CANCELLED.
    error: Any = None
    start_time: str | None = None
    end_time: str | None = None
    saga_id: str | None = None


class SagaOrchestrator:
    def __init__(
        self,
        project_id: str,
        location: str,
        workflow_name: str,
        *,
        clients: ClientFactory | None = None,
        settings: Settings | None = None,
    ) -> None:
        self._clients = clients or default_factory()
        base = settings or Settings.from_env(self._clients.env)
        self.settings = dataclasses.replace(
            base, project_id=project_id, location=location, workflow=workflow_name
        )
        self.workflow_path = self.settings.workflow_path

    def execute_saga(
        self,
        steps: list[dict[str, Any]],
        *,
        saga_id: str | None = None,
        deadline_seconds: int | None = None,
        metadata: dict[str, Any] | None = None,
    ) -> str:
        """Validate, then start (or find) the saga's execution; returns the execution name.

        Raises ``InvalidRequestError`` naming every bad field; API errors propagate as
        ``google.api_core.exceptions``.
        """
        data: dict[str, Any] = {"steps": steps}
        if saga_id is not None:
            data["saga_id"] = saga_id
        if deadline_seconds is not None:
            data["deadline_seconds"] = deadline_seconds
        if metadata is not None:
            data["metadata"] = metadata
        request = validate_request(data, self.settings)
        return self.start(request).execution_name

    def find_execution(self, saga_id: str) -> str | None:
        """Name of an execution labelled with ``saga_id`` (newest first), if any."""
        return next((str(e.name) for e in self._labelled(saga_id, page_size=1)), None)

    def start(self, request: SagaRequest) -> StartOutcome:
        existing = self.find_execution(request.saga_id)
        if existing:
            return StartOutcome(existing, created=False)
        return self.create(request)

    def create(self, request: SagaRequest) -> StartOutcome:
        """Start a new execution without looking for one first (for a caller that just did), then settle
        a race with another start of the same saga (see the module's docstring)."""
        from google.api_core import exceptions
        from google.cloud.workflows import executions_v1

        client = self._clients.executions()
        execution = client.create_execution(
            parent=self.workflow_path,
            execution=executions_v1.Execution(
                argument=request.argument_json(), labels={"saga_id": request.saga_id}
            ),
        )
        mine = str(execution.name)
        first = self.first_execution(request.saga_id)
        if first is None or first == mine:
            return StartOutcome(mine, created=True)
        with contextlib.suppress(exceptions.FailedPrecondition):  # already ended: nothing left to stop
            client.cancel_execution(name=mine)
        return StartOutcome(first, created=False)

    def first_execution(self, saga_id: str) -> str | None:
        """The first started execution labelled with ``saga_id`` (start time, then name), if any."""
        found = [
            (e.start_time.timestamp() if e.start_time else 0.0, str(e.name))
            for e in self._labelled(saga_id, page_size=100)
        ]
        return min(found)[1] if found else None

    def _labelled(self, saga_id: str, *, page_size: int) -> Iterator[Any]:
        """The executions labelled ``saga_id=<saga_id>``, newest first (the Executions API's order)."""
        from google.cloud.workflows import executions_v1

        pager = self._clients.executions().list_executions(
            request=executions_v1.ListExecutionsRequest(
                parent=self.workflow_path, filter=f'labels.saga_id="{saga_id}"', page_size=page_size
            )
        )
        return (e for e in pager if e.labels.get("saga_id", saga_id) == saga_id)

    def get_saga_status(self, execution_name: str) -> SagaStatus:
        execution = self._clients.executions().get_execution(name=execution_name)
        state = type(execution).State(execution.state).name
        result = _json_or_text(execution.result) if execution.result else None
        error = None
        if execution.error and execution.error.payload:
            error = _json_or_text(execution.error.payload)
        return SagaStatus(
            execution_name=str(execution.name),
            state=state,
            result=result,
            error=error,
            start_time=_time(execution.start_time),
            end_time=_time(execution.end_time),
            saga_id=execution.labels.get("saga_id"),
        )

    def cancel_saga(self, execution_name: str) -> str:
        """Cancel a running saga; returns the state after the call. Compensations do NOT run: a
        cancelled saga stops where it is (use it for stuck sagas, after a person looked)."""
        execution = self._clients.executions().cancel_execution(name=execution_name)
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
