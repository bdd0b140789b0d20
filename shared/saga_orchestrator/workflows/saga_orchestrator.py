"""Start, inspect and cancel sagas through the Workflows Executions API (the seed's Python API).

``execute_saga`` validates and normalizes exactly like the ``start_saga`` function, then starts one
execution of the saga workflow with the normalized request as its argument, labelled
``saga_id=<saga id>``. Starting is idempotent per saga id, and two racing starts leave one execution
running: ``saga_orchestrator.executions`` (the adapter both this façade and start_saga use) says how.
"""

from __future__ import annotations

import dataclasses
from typing import Any

from saga_orchestrator.clients import ClientFactory, default_factory
from saga_orchestrator.executions import WorkflowExecutions
from saga_orchestrator.model import SagaRequest
from saga_orchestrator.ports import SagaStatus, StartOutcome
from saga_orchestrator.settings import Settings
from saga_orchestrator.validation import validate_request

__all__ = ["SagaOrchestrator", "SagaStatus", "StartOutcome"]


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
        self.executions = WorkflowExecutions(self._clients.executions, self.workflow_path)

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
        return self.executions.find(saga_id)

    def start(self, request: SagaRequest) -> StartOutcome:
        """Start the validated ``request``, or find the execution already started for its saga id."""
        return self.executions.start(request)

    def create(self, request: SagaRequest) -> StartOutcome:
        """Start a new execution without looking for one first (for a caller that just did), then settle
        a race with another start of the same saga."""
        return self.executions.create(request)

    def first_execution(self, saga_id: str) -> str | None:
        """The first started execution labelled with ``saga_id`` (start time, then name), if any."""
        return self.executions.first(saga_id)

    def get_saga_status(self, execution_name: str) -> SagaStatus:
        return self.executions.status(execution_name)

    def cancel_saga(self, execution_name: str) -> str:
        """Cancel a running saga; returns the state after the call. Compensations do NOT run: a
        cancelled saga stops where it is (use it for stuck sagas, after a person looked)."""
        return self.executions.cancel(execution_name)
